"""Hash-checked download cache and checksummed array caches."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from advlens.data.arraycache import cached_arrays, load_arrays, save_arrays
from advlens.data.cache import cached_path, fetch


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path / "cache"))


def _source(tmp_path, content=b"payload bytes"):
    src = tmp_path / "remote.bin"
    src.write_bytes(content)
    return src.as_uri(), hashlib.sha256(content).hexdigest()


def test_fetch_downloads_verifies_and_reuses(tmp_path):
    url, sha = _source(tmp_path)
    path = fetch(url, sha, "thing.bin")
    assert path == cached_path("thing.bin") and path.read_bytes() == b"payload bytes"
    assert str(path).startswith(str(tmp_path / "cache"))  # ADVLENS_DATA respected
    (tmp_path / "remote.bin").unlink()
    assert fetch(url, sha, "thing.bin") == path  # cache hit: no download needed


def test_fetch_rejects_wrong_hash_and_leaves_nothing(tmp_path):
    url, _ = _source(tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        fetch(url, "0" * 64, "thing.bin")
    assert not cached_path("thing.bin").exists()
    assert not list(cached_path("thing.bin").parent.glob("*.tmp"))


def test_fetch_replaces_a_damaged_cached_file(tmp_path):
    url, sha = _source(tmp_path)
    path = fetch(url, sha, "thing.bin")
    path.write_bytes(b"damaged")
    with pytest.warns(RuntimeWarning, match="sha256"):
        assert fetch(url, sha, "thing.bin").read_bytes() == b"payload bytes"


def test_fetch_offline_error_says_where_to_put_the_file():
    with pytest.raises(ConnectionError, match="place it at .*thing.bin"):
        fetch("http://127.0.0.1:9/thing.bin", "a" * 64, "thing.bin", timeout=5)


def test_fetch_bad_arguments():
    with pytest.raises(ValueError, match="64 hex"):
        fetch("file:///x", "abc", "x")
    with pytest.raises(ValueError, match="bare file name"):
        fetch("file:///x", "a" * 64, "../x")


def test_array_cache_round_trip_and_meta_mismatch(tmp_path):
    arrays = {"a": np.arange(5), "b": np.ones((2, 2), np.float32)}
    path = save_arrays(tmp_path / "c.npz", arrays, {"k": 1})
    loaded, meta = load_arrays(path)
    assert meta == {"k": 1} and all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
    calls = []

    def build():
        calls.append(1)
        return {"a": np.zeros(3)}

    with pytest.warns(RuntimeWarning, match="different configuration"):
        out = cached_arrays(path, build, {"k": 2})
    assert calls == [1] and np.array_equal(out["a"], np.zeros(3))
    assert np.array_equal(cached_arrays(path, build, {"k": 2})["a"], np.zeros(3))
    assert calls == [1]


def test_array_cache_truncated_file(tmp_path):
    path = save_arrays(tmp_path / "c.npz", {"a": np.arange(1000)}, {})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="c.npz"):
        load_arrays(path)


def _cifar_archive(tmp_path, monkeypatch):
    """A local CIFAR-10 archive that cifar.download_cifar10 fetches instead of the real one."""
    import tarfile

    from advlens.data import cifar
    from advlens.io import sha256_file
    from data_writers import write_cifar

    write_cifar(tmp_path / "src")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(cifar, "URL", archive.as_uri())
    monkeypatch.setattr(cifar, "ARCHIVE_SHA256", sha256_file(archive))


def test_download_flag_fills_the_default_folder_and_an_empty_root(tmp_path, monkeypatch):
    from advlens.data import load, require

    _cifar_archive(tmp_path, monkeypatch)
    monkeypatch.delenv("ADVLENS_CIFAR10", raising=False)
    monkeypatch.setenv("ADVLENS_DOWNLOAD", "1")
    # no folder named: the loader's default folder under $ADVLENS_DATA
    assert len(load("cifar10", "test", **require("cifar10", {}))) == 5
    # a folder made beforehand (e.g. mkdir $ADVLENS_CIFAR10), still empty
    (tmp_path / "empty").mkdir()
    kw = require("cifar10", {"root": str(tmp_path / "empty")})
    assert len(load("cifar10", "test", **kw)) == 5


def test_download_flag_serves_notebook_04s_paper_preset_without_its_variable(tmp_path,
                                                                            monkeypatch):
    """README: CIFAR-10 from $ADVLENS_CIFAR10 "or ADVLENS_DOWNLOAD=1". The paper preset names
    root="$ADVLENS_CIFAR10"; with the flag and no variable its data check refused to run (and
    told the user to set the flag it had) instead of downloading into the default folder."""
    from advlens import presets
    from advlens.data import cifar
    from advlens.papers import liang2021
    from data_writers import write_stl

    _cifar_archive(tmp_path, monkeypatch)
    write_stl(tmp_path / "stl")
    monkeypatch.setenv("ADVLENS_STL10", str(tmp_path / "stl"))
    monkeypatch.delenv("ADVLENS_CIFAR10", raising=False)
    monkeypatch.setenv("ADVLENS_DOWNLOAD", "1")
    knobs = presets.resolve("04", "paper")
    assert knobs["cifar_kw"] == {"root": "$ADVLENS_CIFAR10"}
    found = liang2021.check_data(knobs)
    assert cifar.has_cifar10() and found["cifar10"] == {}
    monkeypatch.delenv("ADVLENS_DOWNLOAD")  # without the flag: the variable is named, and the
    with pytest.raises(FileNotFoundError, match=r"ADVLENS_CIFAR10.*cifar_kw="):  # 04 knob
        liang2021.check_data(knobs)


def test_an_interrupted_cifar_extraction_is_redone(tmp_path, monkeypatch):
    """Extraction used to write straight into place: one cut short after data_batch_1 left a
    folder has_cifar10 accepted, so every later run failed on the missing batches instead of
    extracting again (and a second process read batches the first was still writing)."""
    import tarfile

    from advlens.data import cifar, load, require

    _cifar_archive(tmp_path, monkeypatch)
    monkeypatch.setenv("ADVLENS_DOWNLOAD", "1")
    monkeypatch.delenv("ADVLENS_CIFAR10", raising=False)
    real = tarfile.TarFile.extractall

    def cut_short(self, path, *args, **kwargs):  # dies after data_batch_1, as a SIGKILL would
        member = self.getmember("cifar-10-batches-py/data_batch_1")
        self.extract(member, path, filter="data")
        raise KeyboardInterrupt("killed mid-extraction")

    monkeypatch.setattr(tarfile.TarFile, "extractall", cut_short)
    with pytest.raises(KeyboardInterrupt):
        require("cifar10", {})
    assert not cifar.has_cifar10()
    monkeypatch.setattr(tarfile.TarFile, "extractall", real)
    kw = require("cifar10", {})
    assert len(load("cifar10", "train", **kw)) == 20 and len(load("cifar10", "test", **kw)) == 5


def test_a_cifar_folder_another_process_completed_first_is_kept(tmp_path, monkeypatch):
    """Two processes extracting at once: the one finishing second keeps the folder the first
    renamed into place and discards its own copy."""
    import tarfile

    from advlens.data import cifar

    _cifar_archive(tmp_path, monkeypatch)
    real = tarfile.TarFile.extractall
    calls = []

    def racing(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        if not calls:  # the other process completes while this one is still extracting
            calls.append(path)
            cifar.download_cifar10()

    monkeypatch.setattr(tarfile.TarFile, "extractall", racing)
    folder = cifar.download_cifar10()
    assert cifar.has_cifar10() and len(cifar.cifar10("train")) == 20
    assert [p.name for p in folder.parent.iterdir()  # no copy left behind (the lock file is
            if p.suffix != ".lock"] == [folder.name]   # never removed, as the zoo's)


_OTHER_DOWNLOAD = """
import sys, tarfile
from advlens.data import cifar
cifar.URL, cifar.ARCHIVE_SHA256 = sys.argv[1], sys.argv[2]
real = tarfile.TarFile.extractall
def extractall(self, *args, **kwargs):
    real(self, *args, **kwargs)
    print("extracted", flush=True)
tarfile.TarFile.extractall = extractall
assert cifar.download_cifar10().is_dir()
"""


def test_two_processes_replacing_a_partial_cifar_folder_both_succeed(tmp_path, monkeypatch):
    """A partial folder of an earlier extraction in the way of two processes downloading at
    once: the second, seeing no complete folder, renamed its own in while the first was
    between removing the partial one and renaming its own, which then failed (OSError
    'Directory not empty')."""
    import shutil
    import subprocess
    import sys

    from advlens.data import cifar
    from advlens.paths import data_dir

    _cifar_archive(tmp_path, monkeypatch)
    partial = data_dir() / "cifar10" / cifar.FOLDER
    partial.mkdir(parents=True)
    (partial / "data_batch_1").write_bytes(b"cut short")
    real, other = shutil.rmtree, []

    def rmtree(path, *args, **kwargs):
        real(path, *args, **kwargs)
        if Path(path) == partial and not other:  # the other process runs in this window
            other.append(subprocess.Popen([sys.executable, "-c", _OTHER_DOWNLOAD, cifar.URL,
                                           cifar.ARCHIVE_SHA256], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
            assert other[0].stdout.readline().strip() == "extracted", other[0].stderr.read()
            try:  # it renames its folder in now, unless it waits for this one
                other[0].wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    folder = cifar.download_cifar10()
    assert other, "the partial folder was not replaced"
    _, err = other[0].communicate(timeout=120)
    assert other[0].returncode == 0, err
    assert folder == partial and cifar.has_cifar10() and len(cifar.cifar10("train")) == 20


def _read_only_folders(monkeypatch):
    """Every file creation refused as on a read-only mount (EROFS): os.open with O_CREAT and
    mkdir of a missing folder; reads are untouched."""
    import errno
    import os

    real_open, real_mkdir = os.open, Path.mkdir

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    def open_(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def mkdir(self, *args, **kwargs):
        if not self.is_dir():
            refuse(self)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(Path, "mkdir", mkdir)


def test_array_cache_in_a_read_only_folder_returns_the_arrays_uncached(tmp_path, monkeypatch):
    """A read-only $ADVLENS_DATA without this entry: the arrays were built, then the cache's
    write raised OSError naming a temporary file, and the caller got no data at all."""
    arrays = {"a": np.arange(4)}
    _read_only_folders(monkeypatch)
    for path in (tmp_path / "c.npz", tmp_path / "missing" / "c.npz"):
        with pytest.warns(RuntimeWarning, match=r"cannot write .*c\.npz: its folder is read-only"):
            out = cached_arrays(path, lambda: dict(arrays), {"k": 1})
        assert np.array_equal(out["a"], arrays["a"]) and not path.exists()


@pytest.mark.parametrize("dataset,kw", [("imagenet", {"root": "$ADVLENS_IMAGENET"}),
                                        ("stl10", {"root": "${ADVLENS_STL10}"}),
                                        ("clickme", {"path": "$ADVLENS_CLICKME"}),
                                        ("imagenet", {})])
def test_require_counts_an_empty_variable_as_unset(tmp_path, monkeypatch, dataset, kw):
    """``ADVLENS_IMAGENET=`` (cleared with ``export VAR=``, or docker-compose's ``VAR: ${VAR}``
    with the host's unset) expanded to ``""``, the current folder: the early check passed and
    the loader failed later with 'not found at .', naming no variable."""
    from advlens.data import require

    for name in ("ADVLENS_IMAGENET", "ADVLENS_STL10", "ADVLENS_CLICKME"):
        monkeypatch.setenv(name, "")
    monkeypatch.chdir(tmp_path)  # an existing folder: "" named it
    with pytest.raises(FileNotFoundError, match=r"\$ADVLENS_(IMAGENET|STL10|CLICKME)"):
        require(dataset, kw)
