"""Atomic io, input checks, statistics and provenance."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as sps

from advlens import checks, io, provenance, stats


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "result.json"
    io.atomic_write_json(target, {"x": 1})

    def explode(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_a_killed_writers_temporary_is_removed_once_stale(tmp_path: Path) -> None:
    """A writer killed mid-write (SIGKILL: no ``finally``) left its hidden temporary file for
    good (a zoo checkpoint's: megabytes). The next write of that file removes those older
    than a day; a live writer's (young) and other files' are kept."""
    import subprocess
    import sys
    import time

    target = tmp_path / "model.pt"
    code = ("import os\nfrom advlens import io\n"
            "def write(tmp):\n    tmp.write_bytes(b'x' * 1000)\n    os._exit(9)\n"
            f"io.atomic_write({str(target)!r}, write)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    left = list(tmp_path.glob(".model.pt.*.tmp"))
    assert len(left) == 1 and not target.exists()
    young = tmp_path / ".model.pt.0123456789ab.tmp"
    other = tmp_path / ".other.pt.0123456789ab.tmp"
    for path in (young, other):
        path.write_bytes(b"y")
    old = time.time() - io.STALE_TEMPORARY_S - 60
    for path in (left[0], other):
        os.utime(path, (old, old))
    io.atomic_write_bytes(target, b"ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.pt", young.name, other.name])


def test_a_dead_writers_temporary_is_removed_at_the_next_write_however_young(
        tmp_path: Path) -> None:
    """A resumed build rewrote the killed writer's checkpoint within minutes, so its temporary
    (younger than a day) was kept for good, and nothing wrote that path again. A temporary whose
    name says a writer on this host that has exited goes at once; a live writer's stays."""
    import subprocess
    import sys

    target = tmp_path / "model.pt"
    code = ("import os\nfrom advlens import io\n"
            "def write(tmp):\n    tmp.write_bytes(b'x' * 1000)\n    os._exit(9)\n"
            f"io.atomic_write({str(target)!r}, write)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    (left,) = tmp_path.glob(".model.pt.*.tmp")
    alive = tmp_path / f".model.pt.0123456789ab.p{os.getpid()}@{io._HOST}.tmp"
    elsewhere = tmp_path / ".model.pt.0123456789ab.p1@another-host.tmp"
    for path in (alive, elsewhere):
        path.write_bytes(b"y")
    io.atomic_write_bytes(target, b"ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.pt", alive.name, elsewhere.name])
    assert not left.exists()


def _assert_lock_waits_for_another_process(lock: Path, before: Callable[[], object] = lambda: None
                                           ) -> None:
    """Another process takes io.file_lock(lock); after ``before()``, a thread here must wait
    for it, and enter once that process is killed (SIGKILL: no handler runs, the kernel drops
    its lock)."""
    import threading

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom advlens import io\n"
         "with io.file_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n",
         str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before()
        entered = threading.Event()

        def enter() -> None:
            with io.file_lock(lock):
                entered.set()

        waiter = threading.Thread(target=enter)
        waiter.start()
        assert not entered.wait(0.5), "entered while another process held the lock"
    finally:
        holder.kill()
        holder.communicate()
    assert entered.wait(10), "the lock of a killed process was left stale"
    waiter.join()


def test_file_lock_waits_for_another_process_and_is_never_left_stale(tmp_path: Path) -> None:
    """io.file_lock serialises processes, and a holder killed (SIGKILL) inside it releases it."""
    _assert_lock_waits_for_another_process(tmp_path / ".x.lock")


def test_file_lock_holds_on_another_users_lock_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two users, one lock file (a book folder's and the tolerance table's live in the shared
    temporary folder): the second user may not open the first's lock file for writing, so
    io.file_lock ran unlocked beside the first. It now locks on a read-only descriptor (flock
    needs no write access), and a lock file it creates is writable by every user whatever the
    umask. Another user is simulated: opening the lock file for writing is refused (EACCES),
    as for a file of another owner with mode 0644."""
    import builtins

    lock = tmp_path / ".x.lock"
    old_umask = os.umask(0o077)
    try:
        with io.file_lock(lock):
            pass
    finally:
        os.umask(old_umask)
    assert lock.stat().st_mode & 0o777 == 0o666

    real_os_open, real_open = os.open, builtins.open

    def refused(path: object) -> bool:
        return Path(os.fsdecode(path)) == lock if isinstance(path, (str, bytes, Path)) else False

    def os_open(path: object, flags: int, *args: object, **kw: object) -> int:
        if refused(path) and flags & os.O_ACCMODE != os.O_RDONLY:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_os_open(path, flags, *args, **kw)

    def builtin_open(path: object, mode: str = "r", *args: object, **kw: object) -> object:
        if refused(path) and any(c in mode for c in "wax+"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, mode, *args, **kw)

    def as_another_user() -> None:
        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(builtins, "open", builtin_open)

    _assert_lock_waits_for_another_process(lock, as_another_user)


def test_file_lock_on_nfs_with_another_users_lock_file_warns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NFS emulates flock with byte-range locks, which refuse (EBADF) the read-only descriptor
    another user's lock file gets: that runs unlocked with a warning saying what to do, while
    EBADF on a descriptor opened for writing still raises (the other test below)."""
    import fcntl

    lock = tmp_path / ".x.lock"
    lock.touch()
    real_os_open = os.open

    def os_open(path: object, flags: int, *args: object, **kw: object) -> int:
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_os_open(path, flags, *args, **kw)

    def nfs(fd: object, operation: int) -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(fcntl, "flock", nfs)
    with pytest.warns(RuntimeWarning, match="another user's lock file.*writable by both"):
        with io.file_lock(lock):
            entered = True
    assert entered


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP])
def test_file_lock_on_a_file_system_without_flock_runs_unlocked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """flock refused by the file system (Lustre without -o flock: ENOSYS; NFS without its lock
    daemon: ENOLCK) made every io.file_lock raise, and with it every zoo load, grid point and
    forget_done there; it runs unlocked with a warning, as on Windows. Other errors still
    raise."""
    import fcntl

    from advlens import runner

    def refuse(fd: object, operation: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", refuse)
    with pytest.warns(RuntimeWarning, match="does not support file locks"):
        with io.file_lock(tmp_path / ".x.lock"):
            entered = True
    assert entered
    io.atomic_write_json(tmp_path / runner.POINT_DONE,
                         {"preset": "laptop", "params": {}, "runs": {"01_a.ipynb": {}}})
    with pytest.warns(RuntimeWarning):
        runner.forget_done(tmp_path, ["01_a.ipynb"])
    assert not (tmp_path / runner.POINT_DONE).exists()

    def bad_descriptor(fd: object, operation: int) -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", bad_descriptor)
    with pytest.raises(OSError, match="Bad file descriptor"):
        with io.file_lock(tmp_path / ".x.lock"):
            pass


def test_json_is_strict_nan_and_inf_become_null(tmp_path: Path) -> None:
    """Python's json writes bare NaN / Infinity, which browsers and jq refuse; ours writes null,
    inside numpy arrays, tensors and numpy scalars too, and the text parses as strict JSON."""
    record = {"nan": float("nan"), "inf": float("inf"), "ninf": -float("inf"), "ok": 0.5,
              "np": np.float32("nan"), "arr": np.array([1.0, np.nan]),
              "tensor": torch.tensor([np.inf, 2.0]), "nested": [{"v": (float("nan"), 3)}],
              "flag": np.bool_(True), "count": np.int64(4), "path": Path("a/b")}
    text = io.json_text(record)

    def refuse(token: str) -> None:
        raise ValueError(token)

    parsed = json.loads(text, parse_constant=refuse)
    assert parsed == {"nan": None, "inf": None, "ninf": None, "ok": 0.5, "np": None,
                      "arr": [1.0, None], "tensor": [None, 2.0], "nested": [{"v": [None, 3]}],
                      "flag": True, "count": 4, "path": "a/b"}
    io.atomic_write_json(tmp_path / "r.json", record)
    assert io.read_json(tmp_path / "r.json") == parsed


def test_json_keys_of_any_type_and_sets_are_written(tmp_path: Path) -> None:
    """Parameters holding class counts from np.unique (numpy keys), mixed key types or a set
    used to raise in the provenance write, after the figure's CSV was saved. Keys are written
    as the strings Python's json gives int/float/bool/None keys; sets as sorted lists."""
    from advlens import plots

    y = np.array([0, 1, 1, 2])
    params = {"counts": dict(zip(*np.unique(y, return_counts=True), strict=True)),
              "mixed": {0: "std", "at": 0.5, True: 1, None: 2, 1.5: 3},
              "archs": {"mlp-s", "cnn-s"}, "nan_key": {float("nan"): 1}}
    parsed = json.loads(io.json_text(params))
    expected = {"counts": {"0": 1, "1": 2, "2": 1},
                "mixed": {"0": "std", "at": 0.5, "true": 1, "null": 2, "1.5": 3},
                "archs": ["cnn-s", "mlp-s"], "nan_key": {"NaN": 1}}
    assert parsed == expected
    # keys Python's json already took are written as before
    plain = {"by_eps": {0: "std", 1.5: 3, 2: 1}, "flags": {True: 1}, "none": {None: 2}}
    assert io.json_text(plain) == json.dumps(plain, indent=2, sort_keys=True) + "\n"
    import pandas as pd

    saved = plots.save_table(pd.DataFrame({"a": [1]}), tmp_path, "t", params=params)
    assert io.read_json(saved["json"])["parameters"] == expected
    # keys that JSON writes alike are refused (one value was dropped, silently; review: io)
    for clash in ({1: "int", "1": "str"}, {"x": {True: 1, "true": 2}}, {None: 1, "null": 2}):
        with pytest.raises(ValueError, match="are both written .* one value would be lost"):
            io.json_text(clash)


def test_read_json_names_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        io.read_json(bad)


def test_config_hash_is_order_independent_and_sensitive() -> None:
    assert io.config_hash({"a": 1, "b": 2}) == io.config_hash({"b": 2, "a": 1})
    assert io.config_hash({"a": 1}) != io.config_hash({"a": 2})


def test_atomic_write_creates_missing_folders_and_writes_sorted_indented_json(
        tmp_path: Path) -> None:
    """The promised form is Python's json with sorted keys and an indent of 2 (diff-friendly,
    the same bytes whatever the insertion order)."""
    record = {"b": [1, 2.5], "a": {"z": "x", "c": None}}
    target = tmp_path / "new" / "deeper" / "r.json"
    io.atomic_write_json(target, record)
    assert target.read_text() == json.dumps(record, indent=2, sort_keys=True) + "\n"
    assert io.json_text({"a": {"c": None, "z": "x"}, "b": [1, 2.5]}) == target.read_text()


def test_config_hash_is_sha256_of_canonical_json(tmp_path: Path) -> None:
    """Cache names written by earlier versions must still be found: the hash is the first 12
    hex digits of SHA-256 over the key-sorted JSON (paths as strings)."""
    import hashlib

    config = {"width": 8, "name": "cnn", "eps": [0.5, 1.0], "root": Path("a/b")}
    text = json.dumps({**config, "root": "a/b"}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert io.config_hash(config) == digest[:12]
    assert io.config_hash(config, 8) == digest[:8]
    blob = bytes(range(256)) * 5000  # more than one read of the file
    (tmp_path / "blob").write_bytes(blob)
    assert io.sha256_file(tmp_path / "blob", chunk=4096) == hashlib.sha256(blob).hexdigest()


def test_check_images_rejects_out_of_range_and_nan() -> None:
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        checks.check_images(torch.full((1, 1, 2, 2), 1.5))
    with pytest.raises(ValueError, match="NaN"):
        checks.check_images(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        checks.check_images(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"an empty batch \(shape \(0, 3, 4, 4\)\)"):
        checks.check_images(torch.rand(0, 3, 4, 4))
    checks.check_images(torch.rand(2, 3, 4, 4))
    checks.check_images(torch.rand(2, 3, 4, 4).requires_grad_(True))  # no warning, no error


def test_same_label_pairs_rejected() -> None:
    with pytest.raises(ValueError, match="same label"):
        checks.check_different_labels(torch.tensor([0, 1, 2]), torch.tensor([1, 1, 0]))
    checks.check_different_labels(torch.tensor([0, 1]), torch.tensor([1, 0]))


def test_as_tensor_copies_only_the_views_torch_cannot_wrap() -> None:
    """A reversed view (negative stride) and a big-endian array are each copied on their own
    (torch.from_numpy refuses both); a plain array is wrapped, sharing its memory."""
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert torch.equal(checks.as_tensor(np.flip(a, 1)), torch.tensor(a[:, ::-1].tolist()))
    assert torch.equal(checks.as_tensor(a.astype(">f4")), torch.tensor(a.tolist()))
    wrapped = checks.as_tensor(a)
    a[0, 0] = 7.0
    assert float(wrapped[0, 0]) == 7.0


@pytest.mark.parametrize(("x_dtype", "model_dtype", "expected"), [
    (torch.float64, torch.float32, torch.float32), (torch.float64, torch.float64, torch.float64),
    (torch.float32, torch.float64, torch.float64), (torch.float16, torch.float32, torch.float32),
    (torch.bfloat16, torch.float32, torch.float32), (torch.float16, torch.float16, torch.float16),
    (torch.float32, torch.float16, torch.float32), (torch.bfloat16, torch.float64, torch.float64)])
def test_images_for_casts_to_a_float32_or_float64_model(
        x_dtype: torch.dtype, model_dtype: torch.dtype, expected: torch.dtype) -> None:
    """The documented rule: float64 and half-precision images meet a float32 model in float32,
    float32 and half-precision ones a float64 model in float64 (float32 images failed there in
    the first layer); nothing goes down to half precision."""
    model = torch.nn.Linear(2, 2).to(model_dtype)
    assert checks.images_for(model, torch.zeros(1, 2, dtype=x_dtype)).dtype == expected


def test_eval_mode_restores_mixed_modes() -> None:
    model = torch.nn.Sequential(torch.nn.Dropout(), torch.nn.BatchNorm1d(3))
    model.train()
    model[1].eval()
    with checks.frozen(model):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
    assert model.training and model[0].training and not model[1].training
    assert all(p.requires_grad for p in model.parameters())


def test_linear_fit_matches_scipy_and_covers_truth() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, 60)
    y = 2.0 * x - 1.0 + rng.normal(0, 0.3, 60)
    fit = stats.linear_fit(x, y, n_boot=500)
    ref = sps.linregress(x, y)
    assert fit.slope.value == pytest.approx(ref.slope, rel=1e-10)
    assert fit.intercept.value == pytest.approx(ref.intercept, rel=1e-10)
    assert fit.r2 == pytest.approx(ref.rvalue**2, rel=1e-10)
    assert fit.slope.lo < 2.0 < fit.slope.hi


def test_linear_fit_refuses_mismatched_or_degenerate_input() -> None:
    """Each condition alone is refused (a survivor of `make mutate` joined them with `and`)."""
    with pytest.raises(ValueError, match="1-D of equal length"):
        stats.linear_fit(np.arange(4.0), np.arange(5.0))  # both 1-D, lengths differ
    with pytest.raises(ValueError, match="1-D of equal length"):
        stats.linear_fit(np.ones((3, 2)), np.ones((3, 2)))  # same shape, not 1-D
    with pytest.raises(ValueError, match="distinct x"):
        stats.linear_fit(np.ones(5), np.arange(5.0))


def test_linear_fit_band_is_the_quantile_of_resampled_lines() -> None:
    """The band by hand: the same resamples (same generator, same skip rule), each refitted
    by scipy's linregress, lines evaluated on the grid, percentiles taken."""
    rng = np.random.default_rng(4)
    x = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0])  # ties: some resamples have one distinct x
    y = 0.5 * x + rng.normal(0, 0.2, x.size)
    grid = np.array([[0.0, 1.5], [2.0, 4.0]])
    fit = stats.linear_fit(x, y, n_boot=300, level=0.9, seed=7)
    draws = np.random.default_rng(7)
    lines, refits = [], []
    for _ in range(300):
        i = draws.integers(0, x.size, size=x.size)
        if np.ptp(x[i]) > 0:
            ref = sps.linregress(x[i], y[i])
            lines.append(ref.slope * grid + ref.intercept)
            refits.append((ref.slope, ref.intercept))
    lo, hi = fit.band(grid)
    assert lo.shape == grid.shape and len(lines) == fit.boots.shape[0] < 300
    np.testing.assert_allclose(lo, np.quantile(lines, 0.05, axis=0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(hi, np.quantile(lines, 0.95, axis=0), rtol=0, atol=1e-10)
    assert fit.slope.lo == pytest.approx(np.quantile(fit.boots[:, 0], 0.05), abs=1e-12)
    # the slope's and the intercept's CIs: the same percentiles of the refits by hand
    (slope_lo, intercept_lo), (slope_hi, intercept_hi) = np.quantile(refits, [0.05, 0.95], axis=0)
    assert (fit.slope.lo, fit.slope.hi) == pytest.approx((slope_lo, slope_hi), abs=1e-10)
    assert (fit.intercept.lo, fit.intercept.hi) == pytest.approx((intercept_lo, intercept_hi),
                                                                abs=1e-10)


def test_bootstrap_ci_brackets_mean_and_rejects_nan() -> None:
    values = np.random.default_rng(1).normal(3.0, 1.0, 400)
    est = stats.bootstrap_ci(values, n_boot=500)
    assert est.lo < est.value < est.hi and est.lo < 3.0 < est.hi
    assert est.value == pytest.approx(values.mean())
    with pytest.raises(ValueError, match="NaN"):
        stats.bootstrap_ci(np.array([1.0, np.nan]))


def test_provenance_record_has_versions_and_commit() -> None:
    rec = provenance.record({"preset": "smoke"}, seed=3, wall_time_s=1.23456)
    assert rec["seed"] == 3 and rec["wall_time_s"] == 1.235
    assert rec["versions"]["torch"].startswith("2.14.1")
    assert rec["git_commit"]
    # the image decoders and the paper models' package shape numbers too, as does cuDNN
    import importlib.metadata

    import torch

    for name in ("pillow", "simplejpeg", "robustness"):
        assert rec["versions"][name] == importlib.metadata.version(name)
    assert rec["compute"]["cuda_version"] == torch.version.cuda
    assert rec["compute"]["cudnn_version"] == torch.backends.cudnn.version()


def test_atomic_write_gives_usual_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0)
    os.umask(umask)
    path = io.atomic_write_bytes(tmp_path / "x.bin", b"1")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_io_never_touches_the_umask(tmp_path: Path, umask: int) -> None:
    """Importing advlens.io and writing atomically neither read nor change the process umask
    (os.umask is replaced by a function that fails), and files get 0666 & ~umask."""
    import subprocess
    import sys

    script = (f"import os; os.umask({umask})\n"
              "def refuse(*a): raise AssertionError('os.umask called')\n"
              "os.umask = refuse\n"
              "from advlens import io\n"
              f"p = io.atomic_write_bytes({str(tmp_path / 'y.bin')!r}, b'1')\n"
              "print(oct(p.stat().st_mode & 0o777))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == oct(0o666 & ~umask)
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"


def test_atomic_write_in_a_read_only_folder_names_the_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The error of a write into a read-only folder named the hidden temporary file
    (``.x.json.3fa2c1d0b9e8.tmp``), not the file being written, and said nothing of a fix."""
    real_open = os.open

    def read_only_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    with pytest.raises(OSError, match=r"cannot write .*x\.json: its folder is read-only") as info:
        io.atomic_write_json(tmp_path / "x.json", {"a": 1})
    assert info.value.errno == errno.EROFS and ".tmp" not in str(info.value).split(" (")[0]
    assert not list(tmp_path.iterdir())


def test_empty_path_variables_count_as_unset(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``ADVLENS_DATA=`` (``export VAR=``; docker-compose's ``VAR: ${VAR}`` with the host's
    unset) was the path ``.``: caches and a new zoo went into the process's working folder."""
    from advlens import paths

    checkout = Path(paths.__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    for name in ("ADVLENS_HOME", "ADVLENS_DATA", "ADVLENS_ZOO"):
        monkeypatch.setenv(name, "")
    if (checkout / "pyproject.toml").exists():  # not the working folder
        assert paths.repo_root() == checkout
    monkeypatch.setenv("ADVLENS_HOME", str(tmp_path / "home"))
    assert paths.data_dir() == tmp_path / "home" / "data"
    assert paths.zoo_dir() == tmp_path / "home" / "data" / "zoo"
    assert not (tmp_path / "zoo").exists()
