"""Shared test set-up: one torch thread per xdist worker, an isolated data/zoo cache, the
smoke-preset notebook runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock, Timeout

from advlens import runner

torch.set_num_threads(1)
# and one per notebook kernel (they inherit the environment): two xdist workers, each running a
# kernel with a thread per core, oversubscribe a 2-core machine (test_notebooks and test_book
# took 5 min 29 s that way here, 3 min 12 s with one thread each). So the smoke zoo and figures the
# tests make (and their provenance) come from one thread, not a user's default.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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


@pytest.fixture(scope="session")
def smoke_run(isolated_data: str) -> Callable[..., Path | None]:
    """``smoke_run(number, wait=True)``: the output folder of notebook ``number`` run on the smoke
    preset, executed once per test run and shared by the xdist workers: the notebook tests and the
    book read the same run (the book test used to run every notebook a second time). A notebook
    another worker is running is waited for, or, with ``wait=False``, answered with None. A
    notebook that failed fails every later call at once, with its error."""
    root = Path(isolated_data).parent / "smoke-run"
    root.mkdir(exist_ok=True)

    def run(number: str, *, wait: bool = True) -> Path | None:
        (path,) = runner.discover([number])
        # markers beside the notebook folders (the book reads */*.ipynb)
        done, failed = root / f"{path.stem}.done", root / f"{path.stem}.failed"
        try:
            with FileLock(root / f"{path.stem}.lock", timeout=-1 if wait else 0):
                if failed.exists():  # once per run: a second try would cost as long again
                    pytest.fail(f"{path.name} failed on the smoke preset in another test: "
                                f"{failed.read_text()}")
                if not done.exists():
                    try:
                        runner.run("smoke", only=[number], out=root, progress=False)
                    except Exception as error:
                        failed.write_text(f"{type(error).__name__}: {error}")
                        raise
                    done.touch()
        except Timeout:
            return None
        return root / path.stem

    return run


@pytest.fixture
def python_without_extraction_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    """This Python as 3.11.0-3.11.3 (pyproject admits them; Debian 12's is 3.11.2): no
    ``tarfile.data_filter``, and ``TarFile.extractall`` without its ``filter=`` keyword."""
    import tarfile

    extract = tarfile.TarFile.extractall

    def old_extractall(self: tarfile.TarFile, path: str = ".", members: object = None, *,
                       numeric_owner: bool = False) -> None:  # 3.11.2's signature
        extract(self, path, members, numeric_owner=numeric_owner, filter="data")

    monkeypatch.delattr(tarfile, "data_filter")
    monkeypatch.setattr(tarfile.TarFile, "extractall", old_extractall)
