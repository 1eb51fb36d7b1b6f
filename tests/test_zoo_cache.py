"""Zoo cache: hit/miss by config hash, verification of every file, resume after interruption."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from advlens.features import accuracy
from advlens.zoo import CacheWarning, ModelConfig, build, config, load
from advlens.zoo.cache import cache_paths, model_lock, save
from advlens.zoo.datasets import dataset_for
from advlens.zoo.training import train

TINY = ModelConfig("mlp-xs", epochs=1, n_train=64, n_test=32, batch_size=32)
ROBUST = {"robust_eval_eps": 0.3, "robust_eval_n": 16}


def _load(cfg: ModelConfig, root: Path):
    return load(cfg, root, progress=False, **ROBUST)


def test_miss_then_hit_returns_the_same_model(tmp_path: Path) -> None:
    first = _load(TINY, tmp_path)
    paths = cache_paths(TINY, tmp_path)
    assert not first.cached and paths.checkpoint.exists() and paths.meta.exists()
    mtime = paths.checkpoint.stat().st_mtime_ns
    second = _load(TINY, tmp_path)
    assert second.cached and paths.checkpoint.stat().st_mtime_ns == mtime
    a, b = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not any(m.training for m in second.model.modules())
    for key in ("test_acc", "robust_acc", "train_time_s", "hash"):
        assert second.meta[key] == first.meta[key]
    assert second.meta["robust_eval"]["eps"] == 0.3 and second.meta["hash"] == TINY.hash


def test_metadata_records_config_checksum_and_shapes(tmp_path: Path) -> None:
    entry = _load(TINY, tmp_path)
    paths = cache_paths(TINY, tmp_path)
    meta = json.loads(paths.meta.read_text())
    assert meta["sha256"] == hashlib.sha256(paths.checkpoint.read_bytes()).hexdigest()
    assert ModelConfig.from_dict(meta["config"]) == TINY
    assert meta["param_shapes"] == {k: list(v.shape) for k, v in entry.model.state_dict().items()}
    assert meta["n_params"] == sum(p.numel() for p in entry.model.parameters())
    (robust,) = meta["robust"].values()
    assert robust["eps"] == 0.3 and robust["n"] == 16 and 0.0 <= robust["acc"] <= meta["test_acc"]


def test_changed_config_or_code_version_is_a_miss(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _load(TINY, tmp_path)
    changed = TINY.replace(lr=TINY.lr / 2)
    assert changed.hash != TINY.hash
    assert not _load(changed, tmp_path).cached
    assert _load(TINY, tmp_path).cached
    before = TINY.hash
    monkeypatch.setattr(config, "TRAINING_CODE_VERSION", "zoo-test-bump")
    assert TINY.hash != before and not _load(TINY, tmp_path).cached


def test_model_saved_before_a_later_field_existed_is_still_loaded(tmp_path: Path) -> None:
    _load(TINY, tmp_path)
    paths = cache_paths(TINY, tmp_path)
    meta = json.loads(paths.meta.read_text())
    for name in config.LATER_FIELDS:  # as written before those fields were added
        del meta["config"][name]
    paths.meta.write_text(json.dumps(meta))
    assert _load(TINY, tmp_path).cached


def test_new_robust_eval_settings_are_added_without_retraining(tmp_path: Path) -> None:
    _load(TINY, tmp_path)
    entry = load(TINY, tmp_path, progress=False, robust_eval_eps=0.0, robust_eval_n=16)
    assert entry.cached and entry.meta["robust_eval"]["eps"] == 0.0
    meta = json.loads(cache_paths(TINY, tmp_path).meta.read_text())
    assert len(meta["robust"]) == 2
    # eps = 0: robust accuracy is the clean accuracy of the first n images
    test = dataset_for(TINY, "test")
    assert entry.meta["robust_acc"] == pytest.approx(
        accuracy(entry.model, test.images[:16], test.labels[:16]))


def _corrupt_checkpoint(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip-byte", "truncate-meta", "foreign-checkpoint",
                                    "delete-meta"])
def test_damaged_files_are_retrained_with_a_warning(tmp_path: Path, damage: str) -> None:
    _load(TINY, tmp_path)
    paths = cache_paths(TINY, tmp_path)
    if damage == "flip-byte":
        _corrupt_checkpoint(paths.checkpoint)
        culprit = paths.checkpoint
    elif damage == "truncate-meta":
        paths.meta.write_text(paths.meta.read_text()[:40])
        culprit = paths.meta
    elif damage == "foreign-checkpoint":
        # a valid checkpoint of another architecture, with its checksum recorded: only the
        # shape check can catch it
        other = _load(TINY.replace(arch="mlp-s"), tmp_path)
        torch.save(other.model.state_dict(), paths.checkpoint)
        meta = json.loads(paths.meta.read_text())
        meta["sha256"] = hashlib.sha256(paths.checkpoint.read_bytes()).hexdigest()
        paths.meta.write_text(json.dumps(meta))
        culprit = paths.checkpoint
    else:
        paths.meta.unlink()
        culprit = paths.checkpoint
    with pytest.warns(CacheWarning, match=culprit.name.replace(".", r"\.")):
        entry = _load(TINY, tmp_path)
    assert not entry.cached
    fresh = _load(TINY, tmp_path)  # the retrained files are valid again
    assert fresh.cached


def test_root_defaults_to_env_zoo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLENS_ZOO", str(tmp_path / "envzoo"))
    entry = load(TINY, progress=False, **ROBUST)
    assert cache_paths(TINY).checkpoint.parent == tmp_path / "envzoo"
    assert (tmp_path / "envzoo" / cache_paths(TINY).meta.name).exists() and not entry.cached


def test_build_trains_missing_and_loads_the_rest(tmp_path: Path) -> None:
    configs = [TINY, TINY.replace(seed=1)]
    _load(configs[0], tmp_path)
    zoo = build(configs, root=tmp_path, progress=False, **ROBUST)
    assert [e.cached for e in zoo.entries] == [True, False]
    assert list(zoo.table()["seed"]) == [0, 1]


def test_build_refuses_repeated_names_before_training(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import advlens.zoo.builder as zb

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before the names were checked")

    monkeypatch.setattr(zb, "train", no_training)
    configs = [TINY, TINY.replace(epochs=2)]  # one name: the epochs are not part of it
    with pytest.raises(ValueError, match=r"\['mlp-xs/std/s0'\].*distinct tag"):
        build(configs, root=tmp_path, progress=False, **ROBUST)


RESUME_SCRIPT = """
import json, sys, time
import advlens.zoo.builder as zb
from advlens.zoo import ModelConfig, build

real_train, done = zb.train, []
def slow_after_first(config, data, progress=True):
    if done:  # every model after the first is slow, so the kill lands mid-build
        time.sleep(120)
    done.append(config.name)
    return real_train(config, data, progress=progress)
zb.train = slow_after_first
configs = [ModelConfig.from_dict(c) for c in json.loads(sys.argv[2])]
build(configs, root=sys.argv[1], progress=False, robust_eval_eps=0.3, robust_eval_n=16)
"""


@pytest.mark.slow
def test_interrupted_build_resumes_with_finished_models(tmp_path: Path) -> None:
    configs = [TINY.replace(seed=s) for s in range(3)]
    first = cache_paths(configs[0], tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", RESUME_SCRIPT, str(tmp_path),
         json.dumps([c.to_dict() for c in configs])],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not first.meta.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the first model never finished"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.communicate()
    mtime = first.checkpoint.stat().st_mtime_ns
    assert not cache_paths(configs[1], tmp_path).meta.exists()
    zoo = build(configs, root=tmp_path, progress=False, **ROBUST)
    assert [e.cached for e in zoo.entries] == [True, False, False]
    assert first.checkpoint.stat().st_mtime_ns == mtime



def test_a_model_being_trained_elsewhere_is_waited_for_then_loaded(tmp_path: Path) -> None:
    result = {}
    with model_lock(TINY, tmp_path):  # stands in for another process training TINY
        worker = threading.Thread(target=lambda: result.update(entry=_load(TINY, tmp_path)))
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive()  # blocked on the lock
        trained = train(TINY, dataset_for(TINY, "train"), progress=False)
        save(trained.model, TINY, {"test_acc": 0.5, "robust": {}}, tmp_path)
    worker.join(timeout=60)
    assert not worker.is_alive() and result["entry"].cached  # loaded what the holder saved


@pytest.mark.parametrize("kw", [{"robust_eval_eps": -1.0}, {"robust_eval_eps": float("nan")},
                                {"robust_eval_n": 0}, {"robust_eval_n": 2.5}])
def test_robust_eval_settings_are_checked_before_training(tmp_path: Path, kw: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        load(TINY, tmp_path, progress=False, **kw)
    assert not cache_paths(TINY, tmp_path).meta.exists(), "nothing trained, nothing cached"


def test_a_read_only_zoo_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A complete zoo on a read-only file system (a shared zoo mounted read-only): creating the
    lock file raised OSError [Errno 30] before the cached model could be loaded."""
    import builtins
    import errno

    from advlens import io

    first = _load(TINY, tmp_path)

    real_os_open = os.open

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return builtins.open(file, mode, *args, **kwargs)

    def read_only_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_CREAT | os.O_ACCMODE):  # created, or opened for writing
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_os_open(path, flags, *args, **kwargs)

    # the lock file is opened by io.file_lock (zoo.cache.model_lock is that lock): patching
    # zoo.cache's open left it writable, and the test failed on the lock file it made
    monkeypatch.setattr(io, "open", read_only_open, raising=False)
    monkeypatch.setattr(os, "open", read_only_os_open)
    for lock in tmp_path.glob("*.lock"):
        lock.unlink()
    second = _load(TINY, tmp_path)
    assert second.cached and second.meta["sha256"] == first.meta["sha256"]
    assert not list(tmp_path.glob("*.lock"))


def test_a_read_only_zoo_evaluates_without_recording_and_refuses_training_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only zoo (a shared zoo mounted read-only): a new robust-eval setting of a cached
    model raised OSError after its evaluation, naming a temporary file; a model missing there
    was trained in full and then its save raised the same."""
    import errno

    from advlens.zoo import builder

    first = _load(TINY, tmp_path)
    real_open, real_access = os.open, os.access

    def read_only_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if mode & os.W_OK
                        else real_access(path, mode, **kw))
    before = cache_paths(TINY, tmp_path).meta.read_bytes()
    with pytest.warns(CacheWarning, match="read-only.*not recorded"):
        entry = load(TINY, tmp_path, progress=False, robust_eval_eps=0.2, robust_eval_n=8)
    assert entry.cached and entry.meta["sha256"] == first.meta["sha256"]
    assert entry.meta["robust_eval"]["eps"] == 0.2 and 0 <= entry.meta["robust_acc"] <= 1
    assert cache_paths(TINY, tmp_path).meta.read_bytes() == before

    def no_training(*args, **kwargs):
        raise AssertionError("trained a model that cannot be saved")

    monkeypatch.setattr(builder, "train", no_training)
    with pytest.raises(PermissionError, match=r"read-only.*\$ADVLENS_ZOO"):
        _load(TINY.replace(seed=1), tmp_path)
