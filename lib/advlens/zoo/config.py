"""`ModelConfig`: everything that determines a trained zoo model, and its cache hash."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from advlens.data.cifar import SPLIT_SIZES as CIFAR10_SIZES
from advlens.data.digits import SPLIT_SIZES as DIGITS_SIZES
from advlens.data.stl10 import SPLIT_SIZES as STL10_SIZES
from advlens.data.twin_cue import DESIGNS as TWIN_CUE_DESIGNS
from advlens.data.twin_cue import GENERATOR_VERSION as TWIN_CUE_VERSION
from advlens.data.twin_cue import LATENT_VERSION as TWIN_CUE_LATENT_VERSION
from advlens.io import config_hash
from advlens.zoo.architectures import ARCHS, NUM_CLASSES
from advlens.zoo.augment import AUGMENTATIONS
from advlens.zoo.paper import PAPER_ARCHS

# Bump whenever a change to architectures, training or evaluation code would change the weights
# a config trains to: every cached model is then retrained instead of silently reused.
TRAINING_CODE_VERSION = "zoo-1"
# Fields added after zoo-1: hashed only when set to a non-default value, so the models cached
# before a field existed keep their keys (and are not retrained) while every non-default value
# still changes the key. Append a new field's name here when adding it.
# the images of each split of the data sets of fixed size (twin-cue is generated at any size)
FIXED_SPLIT_SIZES = {"digits": DIGITS_SIZES, "cifar10": CIFAR10_SIZES, "stl10": STL10_SIZES}
LATER_FIELDS: tuple[str, ...] = ("harmonizer_weight", "importance_map", "twin_design",
                                 "classes", "augment")

DATASETS = ("digits", "twin-cue", "cifar10", "stl10")
REGIMES = ("standard", "l2-at", "harmonized")
SOURCES = ("trained", "timm", "torchvision", "robustness")
TWIN_CUE_VARIANTS = ("both", "a-only", "b-only")
OPTIMIZERS = ("adamw", "sgd")  # advlens.zoo.training.make_optimizer
# The importance maps a harmonized model is trained against, per dataset (stand-ins for ClickMe
# maps, built by advlens.zoo.regimes.importance_maps): twin-cue "shape" = the shape cue's mask,
# digits "stroke" = the stroke mask, each blurred like ClickMe maps.
IMPORTANCE_MAPS = {"twin-cue": ("shape",), "digits": ("stroke",)}


def data_version(dataset: str, twin_design: str = "independent") -> str:
    """Version of the generator behind ``dataset`` (and the twin-cue design), part of every
    model's cache hash."""
    if dataset != "twin-cue":
        return dataset
    if twin_design == "independent":
        return f"twin-cue-{TWIN_CUE_VERSION}"
    return f"twin-cue-{twin_design}-{TWIN_CUE_LATENT_VERSION}"


def _integral(value: Any) -> bool:
    """Whether ``value`` is an integer (Python's or numpy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _as_int(value: Any, name: str) -> int:
    """``value`` of the integer field ``name`` as an ``int``: an integral float (``20.0``, from
    a YAML or papermill parameter) is that int (one model, one cache key); anything else,
    bools included, is refused here rather than by ``range`` or ``manual_seed`` mid-build."""
    if _integral(value):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool) \
            and float(value).is_integer():
        return int(value)
    raise ValueError(f"ModelConfig.{name} must be an integer; got {value!r}.")


@dataclass(frozen=True)
class ModelConfig:
    """A zoo model: architecture, data, training regime and hyper-parameters.

    ``arch`` names a registered architecture (``advlens.zoo.architectures.ARCHS``); ``family``
    is filled in from it. ``eps`` is the L2 radius of adversarial training (0 for ``standard``).
    ``n_train``/``n_test`` subsample the data (None = all; tests use tiny subsets).
    ``classes`` (None = all ten) trains on those classes only, relabelled 0..k-1 in the order
    given, with a k-way head (Liang et al.'s class-subset source models).
    ``harmonizer_weight`` and ``importance_map`` are the ``harmonized`` regime's loss: cross-entropy
    + ``harmonizer_weight`` · :func:`advlens.alignment.harmonizer_loss` against the dataset's
    ``importance_map`` (:data:`IMPORTANCE_MAPS`); both are in the cache hash.
    ``augment`` (:data:`~advlens.zoo.augment.AUGMENTATIONS`) augments each training batch:
    ``"crop-flip"`` is the CIFAR recipe (random crop after 4 pixels of zero padding, random
    horizontal flip), for standard and adversarially trained models.
    ``source`` is ``"trained"`` for models this package trains, or ``"timm"``/
    ``"torchvision"``/``"robustness"`` for published checkpoints named by ``checkpoint`` (the
    ``paper`` preset). ``regime_params`` must stay empty (no regime reads it; kept so that
    stored configs load).
    """

    arch: str
    dataset: str = "digits"
    regime: str = "standard"
    eps: float = 0.0
    seed: int = 0
    epochs: int = 20
    family: str = ""
    variant: str | None = None
    data_seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_frac: float = 0.05
    attack_steps: int = 5
    attack_step_factor: float = 2.5
    regime_params: tuple[tuple[str, float], ...] = ()
    source: str = "trained"
    checkpoint: str | None = None
    tag: str = ""
    harmonizer_weight: float = 0.0
    importance_map: str | None = None
    twin_design: str = "independent"
    classes: tuple[int, ...] | None = None
    augment: str = "none"

    def __post_init__(self) -> None:
        # eps=1, eps=np.int64(1) and eps=1.0 are one model: as floats they hash alike (one
        # cache entry, not two); likewise epochs=20.0 is epochs=20 as an int
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "float":
                # a bool passed as eps=True was the model at1 under another key than eps=1.0,
                # -0.0 another than 0.0 (equal configs, two cache entries); a string failed as
                # "'<' not supported between int and str"
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise TypeError(f"{f.name} must be a number; got {value!r} "
                                    f"({type(value).__name__}).")
                # a Python float either way (np.float32 kept its type, and -0.0 its sign)
                object.__setattr__(self, f.name, float(value) + 0.0)
            elif f.type in ("int", "int | None") and value is not None:
                object.__setattr__(self, f.name, _as_int(value, f.name))
        for name in ("n_train", "n_test"):
            count = getattr(self, name)
            if count is not None and count < 1:
                raise ValueError(f"{name} must be None (every image) or >= 1; got {count} "
                                 "(0 leaves no image; a negative count kept all images but "
                                 f"{-count}).")
        if self.regime_params:  # a value only moved the cache key: the same model again
            raise ValueError(f"regime_params must be empty; got {self.regime_params!r}. No "
                             "training regime reads it (l2-at takes eps, attack_steps and "
                             "attack_step_factor; harmonized takes harmonizer_weight); the "
                             "field is kept so that stored configs still load.")
        object.__setattr__(self, "regime_params", ())  # [] from a stored config: one model
        known = {**ARCHS, **PAPER_ARCHS}
        if self.arch not in known:
            raise ValueError(f"unknown arch {self.arch!r}; registered: {sorted(known)}.")
        if not self.family:
            object.__setattr__(self, "family", known[self.arch].family)
        elif self.family != known[self.arch].family:
            raise ValueError(f"arch {self.arch!r} belongs to family "
                             f"{known[self.arch].family!r}, not {self.family!r}.")
        if self.dataset not in DATASETS and self.source == "trained":
            raise ValueError(f"dataset must be one of {DATASETS} for trained models; "
                             f"got {self.dataset!r}.")
        if self.regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}; got {self.regime!r}.")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}; got {self.source!r}.")
        if self.regime == "standard" and self.eps != 0:
            raise ValueError(f"a standard model has eps 0; got eps={self.eps}. "
                             "Use regime='l2-at' for adversarial training.")
        if self.regime == "harmonized" and self.eps != 0:  # trained without any attack
            raise ValueError(f"a harmonized model has eps 0 (it is not adversarially trained); "
                             f"got eps={self.eps}. A harmonized copy of an l2-at config: "
                             "config.replace(eps=0.0, regime='harmonized', ...).")
        if self.regime == "l2-at" and not 0 < self.eps < math.inf:
            raise ValueError(f"regime 'l2-at' needs a finite eps > 0; got {self.eps}.")
        if self.regime == "l2-at" and not (isinstance(self.attack_step_factor, numbers.Real)
                                           and 0 < self.attack_step_factor < math.inf):
            raise ValueError(f"regime 'l2-at' needs a finite attack_step_factor > 0 (PGD steps "
                             f"of attack_step_factor · eps / attack_steps; 0 leaves only the "
                             f"random start); got {self.attack_step_factor!r}.")
        self._check_harmonizer()
        if self.dataset == "twin-cue":
            if self.variant not in TWIN_CUE_VARIANTS:
                raise ValueError(f"twin-cue models need variant in {TWIN_CUE_VARIANTS}; "
                                 f"got {self.variant!r}.")
            if self.twin_design not in TWIN_CUE_DESIGNS:
                raise ValueError(f"twin_design must be one of {TWIN_CUE_DESIGNS}; "
                                 f"got {self.twin_design!r}.")
        elif self.twin_design != "independent":
            raise ValueError(f"twin_design is only for twin-cue models; got "
                             f"{self.twin_design!r} for dataset {self.dataset!r}.")
        elif self.variant is not None and self.source == "trained":
            raise ValueError(f"variant is only for twin-cue models; got {self.variant!r} "
                             f"for dataset {self.dataset!r}.")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}; got {self.augment!r}.")
        if self.augment != "none" and (self.regime == "harmonized" or self.dataset == "twin-cue"):
            raise ValueError(f"augment={self.augment!r} moves the images but not their masks or "
                             f"importance maps; it is for standard and l2-at models of cifar10, "
                             f"stl10 or digits (got regime {self.regime!r}, dataset "
                             f"{self.dataset!r}).")
        if self.epochs < 1 and self.source == "trained":
            raise ValueError(f"epochs must be >= 1; got {self.epochs}.")
        if self.source == "trained":
            self._check_trained()
            self._check_optimisation()
        if self.classes is not None:
            if hasattr(self.classes, "tolist"):  # a NumPy array or a tensor: their numbers
                object.__setattr__(self, "classes", self.classes.tolist())
            if isinstance(self.classes, str) or not isinstance(self.classes, Iterable):
                # a string was read digit by digit: classes="37" trained on classes 3 and 7
                raise ValueError(f"ModelConfig.classes must be None or a list of class "
                                 f"indices, e.g. [3, 7]; got {self.classes!r}.")
            # as the int fields: 2.0 is 2, but int() read 2.7 as class 2 and True as class 1
            object.__setattr__(self, "classes", tuple(_as_int(c, "classes")
                                                      for c in self.classes))
            if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2 or not all(
                    0 <= c < NUM_CLASSES for c in self.classes):
                raise ValueError(f"classes must be >= 2 distinct class indices in 0..9 (the "
                                 f"model is trained on those, relabelled 0..k-1 in that order); "
                                 f"got {self.classes!r}.")

    @property
    def num_classes(self) -> int:
        """Outputs of the model: ``len(classes)`` for a class-subset model, else 10."""
        return NUM_CLASSES if self.classes is None else len(self.classes)

    def _check_trained(self) -> None:
        """Refuse, at construction, a trained config that would fail only at its turn in a zoo
        build (after the models before it trained and were saved), and fields that change no
        training but would give the same model a cache key of its own (trained twice)."""
        if self.arch not in ARCHS:
            raise ValueError(f"arch {self.arch!r} is a published checkpoint's architecture, not "
                             "one this package trains: give source='timm', 'torchvision' or "
                             f"'robustness' and its checkpoint, or a trainable arch "
                             f"({sorted(ARCHS)}).")
        if self.n_train is not None and self.n_train < 2:
            raise ValueError(f"n_train must be None (every image) or >= 2 for a trained model "
                             f"(training needs two images); got {self.n_train}.")
        sizes = FIXED_SPLIT_SIZES.get(self.dataset, {})
        for name, split in (("n_train", "train"), ("n_test", "test")):
            n = getattr(self, name)
            if n is None or split not in sizes:
                continue
            if n > sizes[split]:
                raise ValueError(f"{name} = {n} is above the {sizes[split]:,} images of the "
                                 f"{split} split of {self.dataset}: give None for all of them "
                                 "(a larger number trained the same model under a cache key "
                                 "of its own).")
            if n == sizes[split]:  # every image: the model None keys
                object.__setattr__(self, name, None)
        if self.checkpoint is not None:
            raise ValueError(f"checkpoint={self.checkpoint!r} names a published model's weights: "
                             "give its source ('timm', 'torchvision', 'robustness'), or drop it "
                             "for a model this package trains (it was ignored).")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if self.regime != "l2-at":
            unused = [name for name in ("attack_steps", "attack_step_factor")
                      if getattr(self, name) != defaults[name]]
            if unused:
                raise ValueError(f"{unused} set the PGD of adversarial training (regime "
                                 f"'l2-at'); a {self.regime} model has none (they changed "
                                 "only its cache key).")

    def _check_optimisation(self) -> None:
        """Refuse, at construction, what :func:`advlens.zoo.training.train` would refuse only
        at this model's turn in a zoo build (after the models before it trained), or would
        train silently with a schedule the value never meant (``warmup_frac=5`` for 5 %)."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS} (lower case); got "
                             f"{self.optimizer!r}.")
        for name, least in (("lr", None), ("weight_decay", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                    and math.isfinite(value) and (value > 0 if least is None else value >= least)):
                raise ValueError(f"ModelConfig.{name} must be a finite number "
                                 f"{'> 0' if least is None else '>= 0'}; got {value!r}.")
        frac = self.warmup_frac
        if not (isinstance(frac, numbers.Real) and not isinstance(frac, bool)
                and 0 <= frac <= 1):
            raise ValueError(f"warmup_frac is the fraction of the training steps spent warming "
                             f"up, in [0, 1] (5 % is 0.05); got {frac!r}.")

    def _check_harmonizer(self) -> None:
        if self.regime != "harmonized":
            if self.harmonizer_weight != 0 or self.importance_map is not None:
                raise ValueError(f"harmonizer_weight/importance_map are for regime 'harmonized'; "
                                 f"got them with regime {self.regime!r}.")
            return
        if self.source != "trained":  # a published harmonized checkpoint: loaded, not trained
            return
        if not 0 < self.harmonizer_weight < math.inf:  # inf trained NaN weights
            raise ValueError("regime 'harmonized' needs a finite harmonizer_weight > 0; got "
                             f"{self.harmonizer_weight}.")
        maps = IMPORTANCE_MAPS.get(self.dataset, ())
        if self.importance_map not in maps:
            raise ValueError(f"regime 'harmonized' on {self.dataset!r} needs importance_map in "
                             f"{maps}; got {self.importance_map!r}.")

    @property
    def name(self) -> str:
        """Short unique name, e.g. ``cnn-s/at0.5/s0`` or ``twin-cue-a-only/cnn-tc/std/s0``."""
        regime = {"standard": "std", "l2-at": f"at{self.eps:g}",
                  "harmonized": "harm"}[self.regime]
        design = "" if self.twin_design == "independent" else f"{self.twin_design}-"
        prefix = f"twin-cue-{design}{self.variant}/" if self.dataset == "twin-cue" else ""
        if self.source != "trained":
            prefix = f"{self.source}/"
        suffix = f"/{self.tag}" if self.tag else ""
        if self.classes is not None:
            suffix = "/c" + "-".join(map(str, self.classes)) + suffix
        return f"{prefix}{self.arch}/{regime}/s{self.seed}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["regime_params"] = [list(p) for p in self.regime_params]
        data["classes"] = None if self.classes is None else list(self.classes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict` (unknown keys are refused with a clear error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s) {unknown}; fields: {sorted(names)}.")
        data = dict(data)
        data["regime_params"] = tuple(tuple(p) for p in data.get("regime_params", ()))
        return cls(**data)

    @property
    def hash(self) -> str:
        """Cache key: hash of every field, :data:`TRAINING_CODE_VERSION` and the version of
        the data generator (:func:`data_version`)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        config = {k: v for k, v in self.to_dict().items()
                  if k not in LATER_FIELDS or v != defaults[k]}
        return config_hash({"config": config, "code": TRAINING_CODE_VERSION,
                            "data": data_version(self.dataset, self.twin_design)})

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied (a new ``arch`` brings its own family)."""
        if "arch" in changes and "family" not in changes:
            changes["family"] = ""
        return dataclasses.replace(self, **changes)
