"""Loading one zoo model (training it if it is not cached) and building a whole preset."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn
from tqdm.auto import tqdm

from advlens import accel
from advlens.checks import check_positive_int
from advlens.data import ImageSet
from advlens.io import read_json, sha256_file
from advlens.zoo import cache, paper
from advlens.zoo.architectures import ZooNet
from advlens.zoo.collection import Zoo, ZooEntry
from advlens.zoo.config import ModelConfig
from advlens.zoo.datasets import dataset_for
from advlens.zoo.evaluation import RobustEval, clean_accuracy, robust_accuracy
from advlens.zoo.regimes import check_trainable
from advlens.zoo.specs import spec
from advlens.zoo.training import train

logger = logging.getLogger(__name__)

_DataCache = dict[tuple[Any, ...], ImageSet]


def _data(config: ModelConfig, split: str, memo: _DataCache | None) -> ImageSet:
    key = (config.dataset, config.variant, config.twin_design, config.data_seed,
           config.n_train if split == "train" else config.n_test, split, config.classes)
    if memo is None:
        return dataset_for(config, split)
    if key not in memo:
        memo[key] = dataset_for(config, split)
    return memo[key]


def _settings(robust_eval_eps: float | None, robust_eval_n: int | None) -> RobustEval:
    """The robust-accuracy settings, checked before any model trains (a bad value would
    otherwise fail after training, or pass as clean accuracy for a radius that is not >= 0)."""
    default = RobustEval()
    eps = default.eps if robust_eval_eps is None else float(robust_eval_eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"robust_eval_eps must be a finite L2 radius >= 0 (0: clean accuracy "
                         f"only); got {robust_eval_eps!r}.")
    n = default.n if robust_eval_n is None else check_positive_int(robust_eval_n,
                                                                    "robust_eval_n")
    return RobustEval(eps=eps, n=n)


def _eval_data(config: ModelConfig, split: str, n: int | None,
               memo: _DataCache | None) -> ImageSet:
    """A trained config's own split, or for a published model ``n`` ImageNet validation
    images (``$ADVLENS_IMAGENET``) drawn with the config's data seed, preprocessed as that
    model was evaluated (its input size, resize filter and crop: :func:`paper.eval_kw`)."""
    if config.source == "trained":
        return _data(config, split, memo)
    preprocessing = paper.eval_kw(config.arch)
    key = ("imagenet", n, config.data_seed, *sorted(preprocessing.items()))
    if memo is None or key not in memo:
        found = paper.eval_data(n, seed=config.data_seed, arch=config.arch)
        if memo is None:
            return found
        memo[key] = found
    return memo[key]


def published_model(config: ModelConfig, trust: bool | None = None) -> nn.Module:
    """A published model's weights as the zoo serves them, nothing evaluated: on CUDA when
    available (or ``$ADVLENS_DEVICE``), fp32 -- one model serves inversion too, which bf16
    changes beyond tolerance -- and channels-last (:mod:`advlens.accel`)."""
    return accel.prepare(paper.load_model(config, trust=trust), kind="inversion",
                         device=accel.env_device())


# How published models' validation images are labelled (a change re-measures their accuracies):
# folders named by ImageNet-1k wnids by their index among the 1,000 (data.imagefolder)
EVAL_LABELS = "imagenet-1k-wnid-index"
# What a published model's ``test_acc`` rests on: every image of the validation folder, as its
# published top-1 error (a metadata file without it, of an earlier release, held the clean
# accuracy of the first robust record's n images there; it is measured again)
TEST_IMAGES = "imagenet-val-all"


def _published(config: ModelConfig, root: str | Path | None, settings: RobustEval,
               memo: _DataCache | None, trust: bool | None, progress: bool = False
               ) -> ZooEntry:
    """A published model, with its accuracies on ImageNet validation images evaluated once per
    weights file (its contents, wherever it lies), ImageNet folder and setting (cached in the
    zoo's metadata file): ``test_acc`` / ``n_test`` its top-1 accuracy on every image of the folder
    (the 50,000 its published error is quoted on, Su et al.'s x-axis;
    :func:`paper.eval_accuracy`), ``robust_acc`` its robust accuracy on ``settings.n`` of them
    with the clean accuracy on those same images as ``robust_eval["clean_acc"]``. With
    ``$ADVLENS_IMAGENET`` unset, accuracies cached on any folder are served."""
    model = published_model(config, trust)
    weights = paper.weights_path(config)
    stamp = {"path": str(weights), "size": weights.stat().st_size,
             "mtime": weights.stat().st_mtime}
    # the file's contents, not its mtime, decide: weights replaced by a file of the same size
    # whose mtime was set back (a copy with -p, an unpacked archive) are measured again
    digest = sha256_file(weights)
    paths = cache.cache_paths(config, root)
    folder = _imagenet_folder()
    with cache.model_lock(config, root):
        meta = read_json(paths.meta) if paths.meta.exists() else {}
        # accuracies measured with another resize or crop (an older release), of the same
        # weights built otherwise (a manifest's kwargs: another pooling, mean or std; the config
        # hash does not hold them), or on another ImageNet folder (a trial subset before the
        # full set), are measured again
        # ... and those labelled before a folder of some ImageNet classes took the models'
        # 1,000-class indices (it numbered its folders 0, 1, ...: EVAL_LABELS)
        preprocessing = paper.eval_kw(config.arch)
        build = paper.build_record(config.arch)
        stamped = meta.get("weights") or {}
        # (not its path: a copy of $ADVLENS_CHECKPOINTS on a node's local disk is the same
        # weights, and re-measuring 50,000 images per model for it buys nothing)
        cached = (stamped.get("size") == stamp["size"] and meta.get("sha256") == digest
                  and meta.get("eval_preprocessing") == preprocessing
                  and meta.get("build") == build
                  and meta.get("eval_labels") == EVAL_LABELS
                  and folder in (None, meta.get("eval_folder", folder)))
        if not cached:
            meta = {"name": config.name, "hash": config.hash, "config": config.to_dict(),
                    "weights": stamp, "eval_preprocessing": preprocessing, "build": build,
                    "eval_labels": EVAL_LABELS, "eval_folder": folder,
                    "sha256": digest, "train_time_s": None,
                    "n_params": sum(p.numel() for p in model.parameters()), "robust": {},
                    "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        changed = settings.key not in meta["robust"]
        if changed:
            test = _eval_data(config, "test", settings.n, memo)
            meta["robust"][settings.key] = {**_robust_record(model, test, settings),
                                            "test_acc": clean_accuracy(model, test)}
        if meta.get("test_images") != TEST_IMAGES:
            # an earlier release's records without a clean accuracy of their own were paired
            # with the metadata's (the first record's): they keep it
            for record in meta["robust"].values():
                if "test_acc" not in record and "test_acc" in meta:
                    record["test_acc"] = meta["test_acc"]
            acc, n = paper.eval_accuracy(model, config.arch, progress=progress)
            meta.update(test_acc=acc, n_test=n, test_images=TEST_IMAGES)
            changed = True
        if changed:
            cache.update_meta(config, meta, root)
    record = meta["robust"][settings.key]
    meta = {**meta, "robust_acc": record["acc"],
            "robust_eval": {**{k: v for k, v in record.items() if k not in ("acc", "test_acc")},
                            "clean_acc": record.get("test_acc")}}
    return ZooEntry(config.name, config, model, meta, cached=cached)


def _imagenet_folder() -> str | None:
    """The resolved ``$ADVLENS_IMAGENET`` folder published models are evaluated on (None: unset)."""
    from advlens.data.sources import SOURCES

    given = os.environ.get(SOURCES["imagenet"].env)
    return str(Path(given).expanduser().resolve()) if given else None


def _robust_record(model: ZooNet, test: ImageSet, settings: RobustEval) -> dict[str, Any]:
    """Robust accuracy with its settings and the number of test images actually attacked."""
    return {**settings.to_dict(), "n_images": min(settings.n, len(test)),
            "acc": robust_accuracy(model, test, settings)}


def _train_and_save(config: ModelConfig, root: str | Path | None, settings: RobustEval,
                    progress: bool, memo: _DataCache | None) -> tuple[ZooNet, dict[str, Any]]:
    check_trainable(config)
    cache.check_writable(config, root)  # before training, not at the save after it
    result = train(config, _data(config, "train", memo), progress=progress)
    model, test = result.model, _data(config, "test", memo)
    meta = cache.save(model, config, {
        "test_acc": clean_accuracy(model, test), "n_test": len(test),
        "train_time_s": result.train_time_s, "cpu_time_s": result.cpu_time_s,
        "history": result.history,
        "robust": {settings.key: _robust_record(model, test, settings)},
    }, root)
    logger.info("%s: trained in %.1fs, test acc %.3f", config.name, result.train_time_s,
                meta["test_acc"])
    return model, meta


def load(config: ModelConfig, root: str | Path | None = None, progress: bool = True, *,
         robust_eval_eps: float | None = None, robust_eval_n: int | None = None,
         trust_checkpoints: bool | None = None, _memo: _DataCache | None = None) -> ZooEntry:
    """``config``'s model from the cache under ``root`` (default ``advlens.paths.zoo_dir()``),
    trained, evaluated and saved first if missing or unusable.

    ``meta["robust_acc"]`` is the accuracy under L2-PGD of radius ``robust_eval_eps`` (default
    0.5) on the first ``robust_eval_n`` (default 500) test images; new settings are evaluated
    once and added to the metadata file. Published models (``config.source`` timm,
    torchvision or robustness; the ``paper`` zoo) are loaded from their weights files
    (:mod:`advlens.zoo.paper`) and evaluated on ImageNet validation images: ``test_acc`` on
    every image of the folder (as a trained model's on its whole test split), the robust
    accuracy on ``robust_eval_n`` of them (:func:`_published`);
    ``trust_checkpoints`` allows fully unpickling a checkpoint the safe loader refuses
    (:func:`advlens.checkpoints.load_checkpoint`).
    """
    settings = _settings(robust_eval_eps, robust_eval_n)
    if config.source != "trained":
        paper.require([config])
        return _published(config, root, settings, _memo, trust_checkpoints, progress)
    with cache.model_lock(config, root):  # another process may be training it right now
        found = cache.load_cached(config, root)
        if found is None:
            model, meta = _train_and_save(config, root, settings, progress, _memo)
        else:
            model, meta = found
            if settings.key not in meta.get("robust", {}):
                record = _robust_record(model, _data(config, "test", _memo), settings)
                meta.setdefault("robust", {})[settings.key] = record
                cache.update_meta(config, meta, root)
    record = meta["robust"][settings.key]
    meta = {**meta, "robust_acc": record["acc"],
            "robust_eval": {k: v for k, v in record.items() if k != "acc"}}
    return ZooEntry(config.name, config, model, meta, cached=found is not None)


def _evaluated(path: Path) -> bool:
    """Whether the metadata file ``path`` of a published model holds its top-1 accuracy on the
    whole validation folder."""
    try:
        return path.exists() and read_json(path).get("test_images") == TEST_IMAGES
    except (ValueError, AttributeError, OSError):  # unreadable: measured again
        return False


def _require_imagenet(configs: list[ModelConfig], root: str | Path | None) -> None:
    """``$ADVLENS_IMAGENET`` (or a FileNotFoundError saying what to download) when a published
    model of ``configs`` was never evaluated under ``root``, or its top-1 accuracy not on the
    whole folder (:data:`TEST_IMAGES`; metadata of an earlier release): its accuracies are
    measured on ImageNet validation images."""
    if any(c.source != "trained" and not _evaluated(cache.cache_paths(c, root).meta)
           for c in configs):
        from advlens.data.sources import require as require_data

        require_data("imagenet", {})


def require(preset: str | Iterable[ModelConfig], root: str | Path | None = None) -> list[Path]:
    """The weights files of the published models of ``preset`` (a zoo name or configs); raises
    FileNotFoundError naming every missing file and where it comes from, or the ImageNet folder
    when one of them was never evaluated, or not on the whole folder (zoo cache ``root``:
    :func:`_require_imagenet`). Trained zoos need nothing. A
    notebook's first cell calls it, so a ``paper`` run fails before any work."""
    configs = spec(preset) if isinstance(preset, str) else list(preset)
    found = paper.require(configs)
    _require_imagenet(configs, root)
    return found


def build(preset: str | Iterable[ModelConfig], *, root: str | Path | None = None,
          progress: bool = True, robust_eval_eps: float | None = None,
          robust_eval_n: int | None = None, trust_checkpoints: bool | None = None) -> Zoo:
    """Every model of ``preset`` (a name for :func:`advlens.zoo.spec`, or a list of configs):
    cached ones are loaded and verified, missing ones trained and saved one at a time (so an
    interrupted build resumes where it stopped)."""
    configs = spec(preset) if isinstance(preset, str) else list(preset)
    names = [c.name for c in configs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # Zoo() would refuse them, but only after every model was trained
        raise ValueError(f"zoo models must have unique names; several configs are named "
                         f"{repeated} (a name holds arch, regime, eps, seed, twin-cue variant, "
                         "classes and tag only): give them distinct tag=... values.")
    paper.require(configs)  # every missing weights file named before anything runs
    _require_imagenet(configs, root)
    for config in configs:
        if config.source == "trained" and not cache.cache_paths(config, root).meta.exists():
            check_trainable(config)
    start, memo, entries = time.perf_counter(), {}, []
    label = preset if isinstance(preset, str) else "custom"
    for config in tqdm(configs, desc=f"zoo ({label})", disable=not progress, unit="model",
                       mininterval=1.0):
        entries.append(load(config, root, progress, robust_eval_eps=robust_eval_eps,
                            robust_eval_n=robust_eval_n, trust_checkpoints=trust_checkpoints,
                            _memo=memo))
    trained = sum(not e.cached for e in entries)
    logger.info("zoo (%s): %d models, %d trained, %d from cache, %.1fs", label, len(entries),
                trained, len(entries) - trained, time.perf_counter() - start)
    return Zoo(entries)
