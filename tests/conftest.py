"""Shared test set-up: one torch thread per xdist worker, an isolated data/zoo cache."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def isolated_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A per-session ADVLENS_DATA folder, so tests never touch the repository's caches."""
    path = tmp_path_factory.mktemp("advlens-data")
    os.environ["ADVLENS_DATA"] = str(path)
    os.environ.pop("ADVLENS_ZOO", None)
    return str(path)
