"""``load(name, split, **kw)``: every data set by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from advlens.data.cifar import SPLITS as CIFAR10_SPLITS
from advlens.data.cifar import cifar10
from advlens.data.clickme import clickme
from advlens.data.digits import SPLITS as DIGITS_SPLITS
from advlens.data.digits import digits
from advlens.data.imagefolder import imagefolder
from advlens.data.imageset import ImageSet
from advlens.data.stl10 import SPLITS as STL10_SPLITS
from advlens.data.stl10 import stl10
from advlens.data.twin_cue import SPLITS as TWIN_CUE_SPLITS
from advlens.data.twin_cue import twin_cue

LOADERS: dict[str, Callable[..., ImageSet]] = {
    "digits": digits,
    "twin-cue": twin_cue,
    "cifar10": cifar10,
    "stl10": stl10,
    "imagefolder": imagefolder,
    "clickme": clickme,
}
_ALIASES = {"twin_cue": "twin-cue", "twincue": "twin-cue", "cifar-10": "cifar10",
            "stl-10": "stl10", "image-folder": "imagefolder", "imagenet": "imagefolder"}
# the splits of the data sets that have a fixed set (an image folder's split is any subfolder,
# ClickMe's any file)
SPLITS: dict[str, tuple[str, ...]] = {"digits": DIGITS_SPLITS, "twin-cue": TWIN_CUE_SPLITS,
                                      "cifar10": CIFAR10_SPLITS, "stl10": STL10_SPLITS}


def _key(name: str) -> str:
    # names match case-insensitively, a loader added to LOADERS under any spelling included
    # (a key such as "MyData" was unreachable: the name was lower-cased, the key was not)
    keys = {k.lower(): k for k in LOADERS}
    key = name if name in LOADERS else keys.get(_ALIASES.get(name.lower(), name.lower()))
    if key is None:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(LOADERS)}.")
    return key


def splits(name: str) -> tuple[str, ...] | None:
    """The splits data set ``name`` has (:func:`load`'s names and aliases), or None where any
    name may be one (an image folder's subfolder, a ClickMe file's)."""
    return SPLITS.get(_key(name))


def load(name: str, split: str = "train", **kw: Any) -> ImageSet:
    """Load data set ``name`` ("digits", "twin-cue", "cifar10", "stl10", "imagefolder",
    "clickme") at ``split``; ``kw`` go to its loader (e.g. ``variant="a-only"`` for twin-cue,
    ``root=`` for the real data sets, ``path=`` for ClickMe)."""
    key = _key(name)
    loader = LOADERS[key]
    params = inspect.signature(loader).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())  # forwards the rest
    unknown = [] if takes_any else sorted(set(kw) - set(params) - {"split"})
    if unknown:
        options = [p for p in params if p != "split"]
        raise ValueError(f"{key} takes no argument(s) {unknown}; it takes {options}.")
    return loader(split=split, **kw)
