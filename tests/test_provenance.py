"""Provenance: the commit's dirty flag sees code only, and run.json status is read once, here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from advlens import provenance


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root,
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway repository laid out like advlens': code in lib/, tracked outputs in figures/."""
    for name, text in {"lib/m.py": "x = 1\n", "notebooks/01.ipynb": "{}\n",
                       "figures/01/a.csv": "a\n1\n", "Makefile": "all:\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    monkeypatch.setattr(provenance, "repo_root", lambda: tmp_path)
    monkeypatch.setattr(provenance, "_package_dir", lambda: tmp_path / "lib" / "advlens")
    provenance.git_commit.cache_clear()
    yield tmp_path
    provenance.git_commit.cache_clear()


def _commit(root: Path) -> str:
    provenance.git_commit.cache_clear()
    return provenance.git_commit()


def test_outputs_a_run_writes_do_not_make_the_commit_dirty(repo: Path) -> None:
    """A run rewrites tracked figures/: that is not a code change (every figure said -dirty)."""
    head = _commit(repo)
    assert len(head) == 40 and "dirty" not in head
    (repo / "figures/01/a.csv").write_text("a\n2\n")
    (repo / "figures/01/new.png").write_bytes(b"png")
    assert _commit(repo) == head


def test_verify_measure_rewriting_its_tolerances_is_not_a_code_change(repo: Path) -> None:
    """`verify --measure` rewrites lib/advlens/tolerances.json, which only verify reads: every
    later run was recorded "-dirty" and a completed one reran (review)."""
    (repo / "lib/advlens").mkdir()
    (repo / "lib/advlens/tolerances.json").write_text("{}\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "tolerances")
    head = _commit(repo)
    (repo / "lib/advlens/tolerances.json").write_text('{"t": 0.1}\n')
    assert _commit(repo) == head
    (repo / "lib/m.py").write_text("x = 2\n")
    assert _commit(repo).startswith(f"{head}-dirty-")


def test_two_dirty_states_are_told_apart(repo: Path) -> None:
    head = _commit(repo)
    (repo / "lib/m.py").write_text("x = 2\n")
    first = _commit(repo)
    assert first.startswith(f"{head}-dirty-") and len(first) == len(head) + 7 + 12
    (repo / "lib/m.py").write_text("x = 3\n")
    second = _commit(repo)
    assert second.startswith(f"{head}-dirty-") and second != first
    (repo / "lib/m.py").write_text("x = 2\n")
    assert _commit(repo) == first  # the same code, the same mark
    (repo / "lib/new.py").write_text("y = 1\n")  # an untracked module is code too
    assert _commit(repo) not in (first, second)


def test_untracked_links_and_nested_repositories_keep_the_commit(repo: Path) -> None:
    """An untracked dangling link or nested repository under lib/ made the whole commit
    'unknown' (reading it as a file failed); the commit stays, marked dirty."""
    head = _commit(repo)
    (repo / "lib/link.py").symlink_to(repo / "nowhere.py")
    linked = _commit(repo)
    assert linked.startswith(f"{head}-dirty-")
    (repo / "lib/link.py").unlink()
    (repo / "lib/link.py").symlink_to(repo / "elsewhere.py")
    assert _commit(repo) not in (linked, head)  # another target, another mark
    (repo / "lib/link.py").unlink()
    (repo / "lib/vendored").mkdir()
    (repo / "lib/vendored/a.py").write_text("y = 1\n")
    subprocess.run(["git", "init", "-q"], cwd=repo / "lib/vendored", check=True)
    assert _commit(repo).startswith(f"{head}-dirty-")


def test_code_outside_the_repository_has_no_commit(
        repo: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit git finds is that of the code only where the advlens that runs is the
    repository's lib/advlens: an installed copy run from another project's repository, or a
    source tarball extracted (and edited) inside one, claimed that repository's clean HEAD."""
    head = _commit(repo)
    assert len(head) == 40
    # an installed copy (site-packages), run with the user's own repository as the folder
    site = tmp_path_factory.mktemp("site") / "advlens"
    site.mkdir()
    (site / "m.py").write_text("x = 0\n")
    monkeypatch.setattr(provenance, "_package_dir", lambda: site)
    assert _commit(repo) == "unknown"
    # ... unless it is a copy of the checkout's lib/advlens ($ADVLENS_HOME, pip install .)
    (repo / "lib/advlens").mkdir()
    (repo / "lib/advlens/m.py").write_text("x = 0\n")
    (site / "__pycache__").mkdir()
    (site / "__pycache__/m.cpython-311.pyc").write_bytes(b"\0")
    assert _commit(repo).startswith(f"{head}-dirty-")  # lib/advlens/m.py is not committed
    # verify --measure rewriting the installed copy's tolerance table: the same code (review)
    (site / "tolerances.json").write_text('{"t": 0.1}\n')
    assert _commit(repo).startswith(f"{head}-dirty-")
    (site / "tolerances.json").unlink()
    (repo / "lib/advlens/m.py").write_text("x = 1\n")  # the checkout edited since
    assert _commit(repo) == "unknown"
    (repo / "lib/advlens/m.py").unlink()
    (repo / "lib/advlens").rmdir()
    # a tarball's tree (no .git) inside the repository, git-ignored there
    tree = repo / "vendor" / "advlens-0.1.0"
    (tree / "lib" / "advlens").mkdir(parents=True)
    (tree / "pyproject.toml").write_text("[project]\n")
    (repo / ".gitignore").write_text("vendor/\n")
    _git(repo, "add", ".gitignore")
    _git(repo, "commit", "-q", "-m", "ignore vendor")
    monkeypatch.setattr(provenance, "repo_root", lambda: tree)
    monkeypatch.setattr(provenance, "_package_dir", lambda: tree / "lib" / "advlens")
    assert _commit(repo) == "unknown"


def test_the_commit_is_read_once_per_process(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = subprocess.run

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if args[0][0] == "git":
            calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(provenance.subprocess, "run", counting)
    first = provenance.git_commit()
    n = len(calls)
    assert n >= 1
    for _ in range(3):
        assert provenance.record({"preset": "smoke"})["git_commit"] == first
    assert len(calls) == n


def test_run_status_reads_run_json(tmp_path: Path) -> None:
    """The runner's contract: <run>/<notebook>/run.json; no file means a legacy or committed run
    (accepted), anything but 'completed' an interrupted or failed one."""
    run = tmp_path / "run"
    for name, record in {"01_a": {"status": "completed"}, "02_b": None,
                         "03_c": {"status": "failed", "error": "ValueError: boom"},
                         "04_d": {"status": "running"}, "05_e": "{broken"}.items():
        (run / name).mkdir(parents=True)
        if record is not None:
            text = record if isinstance(record, str) else json.dumps(
                {"notebook": f"{name}.ipynb", "preset": "smoke", "params": {}, **record})
            (run / name / "run.json").write_text(text)
    assert provenance.run_status(run / "01_a") == "completed"
    assert provenance.run_status(run / "02_b") is None
    assert provenance.run_status(run / "03_c") == "failed"
    assert provenance.run_status(run / "05_e").startswith("unreadable run.json")
    assert provenance.incomplete_notebooks(run) == {
        "03_c": "failed (ValueError: boom)", "04_d": "running",
        "05_e": provenance.run_status(run / "05_e")}
