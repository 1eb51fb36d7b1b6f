"""Shared test set-up: one torch thread per xdist worker, an isolated data/zoo cache."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def isolated_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An ADVLENS_DATA folder shared by the xdist workers of one run (never the repository's
    caches): the smoke zoo is trained once per run; the zoo's per-model locks make concurrent
    builds wait for each other instead of training twice."""
    run_dir = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # basetemp is <run>/popen-gwN under xdist
        run_dir = run_dir.parent
    path = run_dir / "advlens-data"
    path.mkdir(exist_ok=True)
    os.environ["ADVLENS_DATA"] = str(path)
    os.environ.pop("ADVLENS_ZOO", None)
    return str(path)
