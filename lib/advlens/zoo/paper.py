"""Published checkpoints of the ``paper`` preset: timm/torchvision ImageNet models and the
Salman et al. (2020) L2-robust ImageNet zoo saved by ``robustness``.

- :data:`PAPER_ARCHS` names every published architecture with its family, source and (for timm)
  the ``create_model`` arguments; :func:`register` adds one (used by zoo manifests, and
  callable from your own code for models of your own).
- :func:`paper_configs` is the ``paper`` zoo: the published list, or the models of a manifest
  named by ``$ADVLENS_PAPER_ZOO`` (a JSON file ``{"models": [{"arch", "source", "family",
  "checkpoint", "eps", "regime", "seed", "tag", "kwargs", "num_classes", "input_size",
  "interpolation", "crop_pct"}, ...]}``; all but the first four optional; ``regime`` defaults
  to l2-at for eps > 0, else standard, and is ``harmonized`` for a harmonized checkpoint, the
  twin of the plain model of the same arch), e.g. the subset you downloaded, or
  tiny stand-ins in the tests.
- :func:`checkpoint_paths` says which files are needed and where (``$ADVLENS_CHECKPOINTS``), so a
  ``paper`` run fails early with an actionable message; :func:`load_model` loads one.
"""

from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

CHECKPOINTS_ENV = "ADVLENS_CHECKPOINTS"
MANIFEST_ENV = "ADVLENS_PAPER_ZOO"
SOURCES = ("timm", "torchvision", "robustness")


@dataclass(frozen=True)
class PaperArch:
    """An architecture of the paper zoo: its family, where its weights come from, the keyword
    arguments of its constructor (timm), its number of classes, its input side (the size its
    accuracy is evaluated at) and its evaluation resize: the filter and the fraction of the
    resized shorter side kept by the centre crop (timm's ``interpolation`` and ``crop_pct``)."""

    family: str
    source: str
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    num_classes: int = 1000
    input_size: int = 224
    interpolation: str = "bilinear"
    crop_pct: float = 0.875


# Salman et al. 2020 ("Do adversarially robust ImageNet models transfer better?"), L2 radii.
SALMAN_ARCHS = {
    "resnet18": "resnet", "resnet50": "resnet", "wide_resnet50_2": "resnet",
    "wide_resnet50_4": "resnet", "densenet161": "densenet", "mobilenet_v2": "mobilenet",
    "resnext50_32x4d": "resnet", "shufflenet_v2_x1_0": "shufflenet", "vgg16_bn": "vgg",
}
SALMAN_EPS = (0.0, 0.01, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0, 5.0)
SALMAN_EPS_ARCHS = ("resnet18", "resnet50", "wide_resnet50_2", "wide_resnet50_4")
# The release names its files after robust-models-transfer's --arch names, not torchvision's
# (its README: densenet_l2_eps3.ckpt is torchvision's densenet161, and so on).
SALMAN_RELEASE_NAMES = {"densenet161": "densenet", "mobilenet_v2": "mobilenet",
                        "shufflenet_v2_x1_0": "shufflenet"}
SALMAN_URL = "https://github.com/microsoft/robust-models-transfer"
# Standard ImageNet classifiers from timm for the scaling law and transfer matrix.
TIMM_ARCHS = {
    "vgg16.tv_in1k": "vgg", "vgg19.tv_in1k": "vgg", "resnet18.tv_in1k": "resnet",
    "resnet50.tv_in1k": "resnet", "resnet101.tv_in1k": "resnet",
    "densenet121.tv_in1k": "densenet", "mobilenetv2_100.ra_in1k": "mobilenet",
    "inception_v3.tv_in1k": "inception", "vit_small_patch16_224.augreg_in21k_ft_in1k": "vit",
    "vit_base_patch16_224.augreg_in21k_ft_in1k": "vit",
    "mixer_b16_224.goog_in21k_ft_in1k": "mixer", "convmixer_768_32.in1k": "convmixer",
}

# (interpolation, crop_pct) of timm 1.0's pretrained_cfg where it is not bilinear 0.875: the
# preprocessing these models' published accuracy is measured with
TIMM_EVAL = {
    "densenet121.tv_in1k": ("bicubic", 0.875), "mobilenetv2_100.ra_in1k": ("bicubic", 0.875),
    "inception_v3.tv_in1k": ("bicubic", 0.875),
    "vit_small_patch16_224.augreg_in21k_ft_in1k": ("bicubic", 0.9),
    "vit_base_patch16_224.augreg_in21k_ft_in1k": ("bicubic", 0.9),
    "mixer_b16_224.goog_in21k_ft_in1k": ("bicubic", 0.875),
    "convmixer_768_32.in1k": ("bicubic", 0.96),
}
DEFAULT_EVAL = ("bilinear", 0.875)  # torchvision's Resize(256) + CenterCrop(224); robustness's


def _listed_eval(name: str) -> tuple[str, float, int]:
    """(interpolation, crop_pct, input side) of timm model ``name`` of :data:`TIMM_ARCHS`."""
    return (*TIMM_EVAL.get(name, DEFAULT_EVAL), 299 if name.startswith("inception") else 224)


PAPER_ARCHS: dict[str, PaperArch] = {
    **{name: PaperArch(fam, "robustness") for name, fam in SALMAN_ARCHS.items()},
    **{name: PaperArch(fam, "timm", input_size=_listed_eval(name)[2],
                       interpolation=_listed_eval(name)[0], crop_pct=_listed_eval(name)[1])
       for name, fam in TIMM_ARCHS.items()},
}


def input_side(config: Any) -> int | None:
    """The image side a published model of the paper zoo is evaluated at (its ``input_size``:
    ``inception_v3`` 299, the others 224); None for a model trained here, which takes the
    images as they come."""
    arch = PAPER_ARCHS.get(config.arch)
    return None if config.source == "trained" or arch is None else arch.input_size


def _timm_cfg(name: str) -> Any | None:
    """timm's stored pretrained config of model ``name`` (nothing is downloaded); None when timm
    is missing or does not know the name."""
    try:
        from timm.models import get_pretrained_cfg

        return get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - timm missing, or a name it cannot parse
        return None


def timm_eval(name: str) -> tuple[str, float, int] | None:
    """(interpolation, crop_pct, input side) of timm model ``name`` as its stored pretrained
    config says (nothing is downloaded); None when timm does not know it."""
    from advlens.data.imagefolder import INTERPOLATIONS

    cfg = _timm_cfg(name)
    if cfg is None or cfg.interpolation not in INTERPOLATIONS or not cfg.crop_pct:
        return None
    return cfg.interpolation, float(cfg.crop_pct), int(cfg.input_size[-1])


def torchvision_weights(name: str, checkpoint: str | Path | None = None) -> Any | None:
    """The torchvision weights (a ``WeightsEnum`` member) that file ``checkpoint`` of model
    ``name`` holds: those published under its file name (e.g. ``resnet50-11ad3fa6.pth``), else
    the model's ImageNet-1k weights when they all share one preprocessing; None when
    torchvision does not know the model or the file name leaves it open (resnet50's V1 and V2)."""
    try:
        import torchvision.models

        found = [w for w in torchvision.models.get_model_weights(name)
                 if len(w.meta.get("categories") or ()) == 1000]
    except (ValueError, KeyError):  # not a torchvision model
        return None
    filename = Path(checkpoint).name if checkpoint is not None else None
    named = [w for w in found if w.url.rsplit("/", 1)[-1] == filename]
    if named:
        return named[0]
    seen = {_transforms_key(w) for w in found}
    return found[0] if len(seen) == 1 else None


def _transforms_key(weights: Any) -> tuple[Any, ...]:
    t = weights.transforms()
    return (*t.crop_size, *t.resize_size, t.interpolation.value, *t.mean, *t.std)


def torchvision_eval(name: str, checkpoint: str | Path | None = None
                     ) -> tuple[str, float, int] | None:
    """(interpolation, crop_pct, input side) of torchvision model ``name``'s weights in file
    ``checkpoint`` as their ``transforms()`` say (:func:`torchvision_weights`; inception_v3:
    bilinear, resize 342, crop 299); None when unknown."""
    weights = torchvision_weights(name, checkpoint)
    if weights is None:
        return None
    t = weights.transforms()
    side, resize = int(t.crop_size[0]), int(t.resize_size[0])
    return t.interpolation.value, side / resize, side


def timm_crop_mode(name: str) -> str | None:
    """timm model ``name``'s stored ``crop_mode`` ("center", "squash", "border"); None when
    timm does not know it (nothing is downloaded)."""
    cfg = _timm_cfg(name)
    return None if cfg is None else getattr(cfg, "crop_mode", "center")


def register(name: str, family: str, source: str, *, kwargs: dict[str, Any] | None = None,
             num_classes: int | None = None, input_size: int | None = None,
             interpolation: str | None = None, crop_pct: float | None = None,
             checkpoint: str | None = None) -> PaperArch:
    """Add (or replace) published architecture ``name`` so that ``ModelConfig(name,
    source=source, checkpoint=...)`` is valid. ``source``: timm, torchvision or robustness.
    ``num_classes`` (default 1000) may also be given in ``kwargs``, as for timm's ``create_model``.
    ``interpolation`` / ``crop_pct`` / ``input_size`` default to the published timm model's
    (:data:`TIMM_EVAL`, else timm's stored pretrained config: :func:`timm_eval`) for a timm
    model, to the ``transforms()`` of the torchvision weights in file ``checkpoint`` for a
    torchvision model (:func:`torchvision_eval`), else to bilinear, 0.875 and 224. A timm model
    whose stored ``crop_mode`` is not "center" (e.g. "squash": the whole image resized to the
    side, the 384-pixel ConvNeXts) is refused unless ``crop_pct`` is given: the ImageNet reader
    resizes the shorter side and centre-crops, so its accuracy would be measured on other
    pixels than timm's."""
    from advlens.data.imagefolder import INTERPOLATIONS

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}; got {source!r} for {name!r}.")
    known = (*DEFAULT_EVAL, EVAL_SIZE)
    if source == "timm":
        mode = None if name in TIMM_ARCHS or crop_pct is not None else timm_crop_mode(name)
        if mode not in (None, "center"):
            raise ValueError(f"{name}: timm preprocesses it with crop_mode {mode!r}, which "
                             "advlens's ImageNet reader does not do (it resizes the shorter "
                             "side and centre-crops), so its accuracy would be measured on "
                             "other pixels; pass crop_pct= (and input_size=) to evaluate it "
                             "with a centre crop anyway.")
        known = _listed_eval(name) if name in TIMM_ARCHS else timm_eval(name) or known
    elif source == "torchvision":
        known = torchvision_eval(name, checkpoint) or known
    interpolation = known[0] if interpolation is None else interpolation
    crop_pct = known[1] if crop_pct is None else float(crop_pct)
    input_size = known[2] if input_size is None else input_size
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{name}: interpolation must be one of {', '.join(INTERPOLATIONS)}; "
                         f"got {interpolation!r}.")
    if not 0 < crop_pct <= 1:
        raise ValueError(f"{name}: crop_pct must be in (0, 1]; got {crop_pct!r}.")
    kwargs = dict(kwargs or {})
    in_kwargs = kwargs.pop("num_classes", None)  # passed to the loaders on its own
    if None not in (num_classes, in_kwargs) and int(num_classes) != int(in_kwargs):
        raise ValueError(f"{name}: num_classes is {num_classes} but kwargs say {in_kwargs}; "
                         "give it once.")
    num_classes = next((n for n in (num_classes, in_kwargs) if n is not None), 1000)
    arch = PaperArch(family, source, kwargs, int(num_classes), int(input_size),
                     interpolation, crop_pct)
    PAPER_ARCHS[name] = arch
    return arch


def salman_filename(arch: str, eps: float) -> str:
    """File name of a Salman et al. checkpoint as released (``<release arch>_l2_eps<eps>.ckpt``,
    e.g. ``densenet_l2_eps3.ckpt`` for torchvision's ``densenet161``)."""
    return f"{SALMAN_RELEASE_NAMES.get(arch, arch)}_l2_eps{eps:g}.ckpt"


def published_configs() -> list[Any]:
    """The published ``paper`` zoo: 12 timm classifiers and the Salman et al. L2-robust models
    (four architectures at ten radii, five more at eps 0 and 3)."""
    from advlens.zoo.config import ModelConfig

    common = {"dataset": "imagenet", "epochs": 0}
    models = [ModelConfig(name, source="timm", checkpoint=f"{name}.pth", **common)
              for name in TIMM_ARCHS]
    for arch in SALMAN_ARCHS:
        for eps in SALMAN_EPS if arch in SALMAN_EPS_ARCHS else (0.0, 3.0):
            regime = "l2-at" if eps > 0 else "standard"
            models.append(ModelConfig(arch, regime=regime, eps=eps, source="robustness",
                                      checkpoint=salman_filename(arch, eps), **common))
    return models


MANIFEST_KEYS = ("arch", "source", "family", "checkpoint", "eps", "regime", "seed", "tag",
                 "kwargs", "num_classes", "input_size", "interpolation", "crop_pct")
# the JSON type of each key's value: a bool is no number, and a fractional count or seed (64.5,
# 1.5) was truncated to another model's without a word
MANIFEST_TYPES = {"arch": "text", "source": "text", "family": "text", "checkpoint": "text",
                  "regime": "text", "tag": "string", "interpolation": "text", "kwargs": "object",
                  "eps": "number", "crop_pct": "number", "seed": "integer",
                  "num_classes": "count", "input_size": "count"}


def _manifest_value_ok(kind: str, value: Any) -> bool:
    """Whether ``value`` is of manifest type ``kind`` (:data:`MANIFEST_TYPES`)."""
    if kind in ("text", "string"):
        return isinstance(value, str) and (kind == "string" or value != "")
    if kind == "object":
        return isinstance(value, dict)
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    return kind == "number" or (float(value).is_integer() and (kind == "integer" or value >= 1))


def _check_manifest_types(path: Path, i: int, entry: dict[str, Any]) -> None:
    """Refuse a value of the wrong JSON type, naming the manifest, the model and the key."""
    wanted = {"text": "a non-empty string", "string": "a string", "object": "an object",
              "number": "a number", "integer": "a whole number", "count": "a whole number >= 1"}
    for key, value in entry.items():
        kind = MANIFEST_TYPES[key]
        if not _manifest_value_ok(kind, value):
            raise ValueError(f"{path}: model {i}'s {key!r} must be {wanted[kind]}; got "
                             f"{value!r}.")


def manifest_configs(path: str | Path) -> list[Any]:
    """The models listed in a zoo manifest (see the module docstring), registered on the way."""
    from advlens.io import read_json
    from advlens.zoo.config import ModelConfig

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"zoo manifest not found at {path} (from ${MANIFEST_ENV}); "
                                "write it or unset the variable to use the published zoo.")
    manifest = read_json(path)
    entries = manifest.get("models") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path} must hold {{'models': [...]}} with at least one model; got "
                         f"a JSON {type(manifest).__name__}.")
    configs = []
    registered: dict[str, tuple[int, tuple[Any, ...]]] = {}  # arch: (first model, its build)
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: model {i} must be an object with arch, source, family "
                             f"and checkpoint; got {entry!r}.")
        missing = sorted({"arch", "source", "family", "checkpoint"} - set(entry))
        if missing:
            raise ValueError(f"{path}: model {i} lacks {missing}.")
        unknown = sorted(set(entry) - set(MANIFEST_KEYS))
        if unknown:  # a misspelt key (crop_fraction, regimes) would silently take its default
            raise ValueError(f"{path}: model {i} has unknown key(s) {unknown}; a model takes "
                             f"{', '.join(MANIFEST_KEYS)}.")
        _check_manifest_types(path, i, entry)
        try:
            arch = register(entry["arch"], entry["family"], entry["source"],
                            kwargs=entry.get("kwargs"), num_classes=entry.get("num_classes"),
                            input_size=entry.get("input_size"),
                            interpolation=entry.get("interpolation"),
                            crop_pct=entry.get("crop_pct"), checkpoint=entry["checkpoint"])
        except ValueError as err:
            raise ValueError(f"{path}: model {i}: {err}") from None
        # one registration per arch serves all its models: a second with another input would
        # silently evaluate the first model (e.g. a Salman resnet50) as the second
        serves = (arch.kwargs, arch.num_classes, arch.input_size, arch.interpolation,
                  arch.crop_pct)
        first, before = registered.setdefault(entry["arch"], (i, serves))
        if before != serves:
            raise ValueError(
                f"{path}: models {first} and {i} are both arch {entry['arch']!r} but would be "
                f"built or evaluated differently ((kwargs, num_classes, input_size, "
                f"interpolation, crop_pct): {before} vs {serves}); give them the same values.")
        eps = float(entry.get("eps", 0.0))
        try:
            configs.append(ModelConfig(
                entry["arch"], dataset="imagenet", epochs=0,
                regime=entry.get("regime", "l2-at" if eps > 0 else "standard"), eps=eps,
                source=entry["source"], checkpoint=entry["checkpoint"],
                seed=int(entry.get("seed", 0)), tag=entry.get("tag", "")))
        except ValueError as err:
            raise ValueError(f"{path}: model {i}: {err}") from None
    return configs


def paper_configs() -> list[Any]:
    """The ``paper`` zoo: the manifest at ``$ADVLENS_PAPER_ZOO`` if set, else the published one."""
    manifest = os.environ.get(MANIFEST_ENV)
    return manifest_configs(manifest) if manifest else published_configs()


def _where(name: str) -> str:
    if name.endswith(".ckpt"):
        return f"the Salman et al. robust ImageNet release ({SALMAN_URL})"
    return "timm/torchvision (the model's state dict, e.g. from huggingface.co/timm)"


def checkpoint_paths(names: list[str]) -> list[Path]:
    """Where the paper checkpoints ``names`` are expected (under ``$ADVLENS_CHECKPOINTS``);
    raises FileNotFoundError naming every one that is missing and where it comes from."""
    root = os.environ.get(CHECKPOINTS_ENV) or None  # empty: unset, not the current folder
    if root is None:
        raise FileNotFoundError(
            f"the paper-preset models need checkpoint files ({', '.join(names[:3])}"
            f"{', …' if len(names) > 3 else ''}); set ${CHECKPOINTS_ENV} to the folder holding "
            f"the Salman et al. robust ImageNet checkpoints ({SALMAN_URL}; files such as "
            "'resnet50_l2_eps3.ckpt') and the timm weights (as '<timm name>.pth'), then rerun.")
    paths = [Path(root).expanduser() / name for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        groups: dict[str, list[str]] = {}
        for name in missing:
            groups.setdefault(_where(name), []).append(name)
        listed = "; ".join(f"from {where}: {', '.join(names)}" for where, names in groups.items())
        raise FileNotFoundError(
            f"{len(missing)} checkpoint(s) not found in ${CHECKPOINTS_ENV}={root}: {listed}. "
            "Download them there and rerun.")
    return paths


def checkpoint_path(name: str) -> Path:
    """Where one paper checkpoint is expected (see :func:`checkpoint_paths`)."""
    return checkpoint_paths([name])[0]


def hub_cached(name: str) -> Path | None:
    """The weights of timm model ``name`` in the local Hugging Face cache, if there (offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(f"timm/{name}", filename)
        if isinstance(found, str):
            return Path(found)
    return None


def weights_path(config: Any) -> Path:
    """The weights file of a published ``config``: under ``$ADVLENS_CHECKPOINTS``, or for a
    standard timm model that names no file of its own (none, or the default ``<arch>.pth``) the
    Hugging Face cache; else a FileNotFoundError naming the file to fetch."""
    try:
        return checkpoint_path(config.checkpoint or config.arch)
    except FileNotFoundError:
        # a named file, a harmonized or robust model (a fine-tuned twin) is other weights than
        # the hub's: the hub's published ones in its place would silently be evaluated as it
        published = (config.checkpoint in (None, config.arch, f"{config.arch}.pth")
                     and config.regime == "standard" and config.eps == 0)
        if (config.source == "timm" and published
                and (cached := hub_cached(config.arch)) is not None):
            return cached
        raise


def require(configs: list[Any]) -> list[Path]:
    """The weights files of every published config in ``configs`` (trained ones skipped), or a
    FileNotFoundError naming every missing one -- before anything is loaded or computed."""
    published = [c for c in configs if c.source != "trained"]
    found, missing = [], []
    for config in published:
        try:
            found.append(weights_path(config))
        except FileNotFoundError:
            missing.append(config.checkpoint or config.arch)
    if missing:
        checkpoint_paths(missing)  # raises with the full message
    return found


EVAL_SIZE = 224


def build_record(arch: str) -> dict[str, Any]:
    """How published architecture ``arch`` is built from its weights, as JSON reads it back
    (tuples as lists): its source, constructor keyword arguments and number of classes. The
    zoo's cached accuracies of a model hold only for the build they were measured with."""
    spec = PAPER_ARCHS[arch]
    return json.loads(json.dumps({"source": spec.source, "kwargs": spec.kwargs,
                                  "num_classes": spec.num_classes}, sort_keys=True,
                                 default=repr))


def eval_kw(arch: str | None = None, size: int | None = None) -> dict[str, Any]:
    """The ImageNet folder loader's preprocessing for published architecture ``arch``: its
    input side (or ``size``), timm's ``crop_pct`` and ``interpolation`` (bilinear 0.875, i.e.
    torchvision's Resize(256) + CenterCrop(224), without ``arch``)."""
    if arch is None:
        interpolation, crop_pct, side = *DEFAULT_EVAL, EVAL_SIZE
    elif arch not in PAPER_ARCHS:
        raise KeyError(f"{arch!r} is not a published architecture of the paper zoo; choose one "
                       f"of {sorted(PAPER_ARCHS)} or add it with register().")
    else:
        found = PAPER_ARCHS[arch]
        interpolation, crop_pct, side = found.interpolation, found.crop_pct, found.input_size
    return {"size": side if size is None else size, "crop_fraction": crop_pct,
            "interpolation": interpolation}


def eval_data(n: int | None, *, seed: int = 0, size: int | None = None,
              arch: str | None = None) -> Any:
    """``n`` ImageNet validation images (``$ADVLENS_IMAGENET``, drawn with ``seed``) for the
    published models' robust accuracy and the clean accuracy paired with it (their top-1
    accuracy is :func:`eval_accuracy`'s, on every image), preprocessed for ``arch`` as
    :func:`eval_kw` says (its side unless ``size`` is given; shorter side to
    floor(size / crop_pct), centre crop)."""
    from advlens.data import load
    from advlens.data.sources import require as require_data

    kw = require_data("imagenet", {**eval_kw(arch, size), "n": n, "seed": seed,
                                   "progress": False})
    return load("imagenet", "val", **kw)


# ILSVRC2012's validation set: the images a published model's top-1 error is quoted on
IMAGENET_VAL_IMAGES = 50_000


def eval_accuracy(model: nn.Module, arch: str | None = None, *, batch_size: int = 256,
                  progress: bool = False) -> tuple[float, int]:
    """(top-1 accuracy, number of images) of ``model`` on every image of the ImageNet
    validation folder (``$ADVLENS_IMAGENET``: the 50,000 images its published error is quoted
    on), preprocessed for ``arch`` as :func:`eval_kw` says and read a batch at a time."""
    from advlens.data.imagefolder import imagefolder_batches
    from advlens.data.sources import require as require_data
    from advlens.features import predict

    kw = require_data("imagenet", eval_kw(arch))
    correct = total = 0
    for x, y in imagefolder_batches(split="val", batch_size=batch_size, progress=progress,
                                    **kw):
        correct += int((predict(model, x, batch_size=batch_size).argmax(1) == y).sum())
        total += len(y)
    return correct / total, total


def load_model(config: Any, *, trust: bool | None = None) -> nn.Module:
    """The published model of ``config`` (source timm, torchvision or robustness) on the CPU,
    in eval mode, taking [0, 1] images. ``trust``: see :func:`advlens.checkpoints.load_checkpoint`.
    """
    from advlens.zoo import published

    arch = PAPER_ARCHS[config.arch]
    path = weights_path(config)
    if config.source == "timm":
        return published.timm_model(config.arch, path, trust=trust,
                                    num_classes=arch.num_classes, **arch.kwargs)
    if config.source == "torchvision":
        return published.torchvision_model(config.arch, path, trust=trust,
                                           num_classes=arch.num_classes)
    if config.source == "robustness":
        from advlens.compat import load_robustness_checkpoint

        return load_robustness_checkpoint(config.arch, path, num_classes=arch.num_classes,
                                          trust=trust)
    raise ValueError(f"{config.name}: no loader for source {config.source!r}; "
                     f"choose one of {SOURCES}.")
