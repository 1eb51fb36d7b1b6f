"""Where each real data set comes from: its environment variable, what to download and where.

:func:`require` is the early path check of a notebook's first cell: it expands ``$VARS`` in a
loader's keyword arguments and fails at once, naming the variable, the path and what to
download, instead of deep inside a run. Embedded data sets (digits, twin-cue) need nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOWNLOAD_ENV = "ADVLENS_DOWNLOAD"


@dataclass(frozen=True)
class Source:
    """A real data set: the environment variable naming its folder, the loader argument that
    takes it, and how to obtain it."""

    env: str
    argument: str
    what: str
    how: str
    knob: str = "data_kw"  # the notebooks' knob of loader options (notebook 04 has its own)


SOURCES: dict[str, Source] = {
    "imagenet": Source(
        "ADVLENS_IMAGENET", "root", "the ImageNet (ILSVRC2012) validation set as an ImageFolder",
        "Download ILSVRC2012_img_val.tar from https://image-net.org (free registration), "
        "extract it and sort the 50,000 images into one folder per class (wnid, e.g. with "
        "the widely used valprep.sh), then point $ADVLENS_IMAGENET at the folder holding "
        "'val/' (or the 1,000 class folders themselves); or point it at the top folder of "
        "Kaggle's imagenet-object-localization-challenge download as unpacked (images flat in "
        "ILSVRC/Data/CLS-LOC/val, labelled by LOC_val_solution.csv)."),
    "cifar10": Source(
        "ADVLENS_CIFAR10", "root", "CIFAR-10 (python version)",
        "Download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and "
        "extract it into that folder, or set $ADVLENS_DOWNLOAD=1 on a machine with internet "
        "(hash-checked download into data/).", knob="cifar_kw"),
    "stl10": Source(
        "ADVLENS_STL10", "root", "STL-10 (binary version)",
        "Download stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/ and extract "
        "it into that folder.", knob="stl10_kw"),
    "clickme": Source(
        "ADVLENS_CLICKME", "path", "the ClickMe human importance maps (TFRecord shards or .npz)",
        "Download the ClickMe validation shards of the Harmonization release "
        "(https://github.com/serre-lab/harmonization: clickme val-*.tfrecords) into that "
        "folder."),
}
_ALIASES = {"imagefolder": "imagenet", "cifar-10": "cifar10", "stl-10": "stl10"}
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def downloads_allowed() -> bool:
    """Whether ``$ADVLENS_DOWNLOAD`` allows downloads (1, true, yes); off by default."""
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def _is_set(name: str) -> bool:
    """Whether ``$name`` names something: an empty value counts as unset (it expanded to ``""``,
    the current folder, which passed the check and failed later without naming the variable)."""
    return bool(os.environ.get(name))


def _expand(value: str, dataset: str, argument: str) -> str:
    unset = [name for name in _VAR.findall(value) if not _is_set(name)]
    if unset:
        source = SOURCES.get(dataset)
        what = f" ({source.what})" if source else ""
        how = f" {source.how}" if source else ""
        knob = source.knob if source else "data_kw"
        raise FileNotFoundError(
            f"data set {dataset!r}{what}: {argument}={value!r} needs ${unset[0]}, which is not "
            f"set (or empty). Set it to the data's folder (or pass "
            f"{knob}={{'{argument}': '/path'}}).{how}")
    return os.path.expanduser(os.path.expandvars(value))


def require(dataset: str, kw: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``kw`` for ``advlens.data.load(dataset, ...)`` with ``$VARS`` expanded, after checking
    that the folder or file it names exists.

    A dataset's own variable (e.g. ``$ADVLENS_IMAGENET``) is used when ``kw`` names no folder
    and the variable is set. Raises FileNotFoundError naming the variable or path and what to
    download (CIFAR-10 is downloaded instead when ``$ADVLENS_DOWNLOAD=1``: into the folder
    named, or into the default folder under ``data/`` when ``kw`` names only the unset
    ``$ADVLENS_CIFAR10``, as notebook 04's paper preset does).
    """
    key = _ALIASES.get(dataset.lower(), dataset.lower())
    kw, source = dict(kw or {}), SOURCES.get(key)
    if (key == "cifar10" and downloads_allowed() and source is not None
            and not _is_set(source.env)
            and str(kw.get(source.argument)) in (f"${source.env}", f"${{{source.env}}}")):
        # the preset's own unset variable, with downloads on: the download's default folder
        del kw[source.argument]
    out = {k: _expand(v, key, k) if isinstance(v, str) else v for k, v in kw.items()}
    if source is None:  # embedded data (digits, twin-cue): nothing to check
        return out
    if source.argument not in out and _is_set(source.env):
        out[source.argument] = _expand(f"${source.env}", key, source.argument)
    path = out.get(source.argument)
    if key == "cifar10" and downloads_allowed():  # the default folder, or a root yet to fill
        from advlens.data.cifar import download_cifar10, has_cifar10

        if not has_cifar10(path):
            download_cifar10(path)
        return out
    if path is None:
        if key == "imagenet":
            raise FileNotFoundError(f"data set 'imagenet' ({source.what}) needs a folder: set "
                                    f"${source.env} or pass {source.argument}=. {source.how}")
        return out  # the loader's default folder under data/ (checked by the loader)
    if not Path(path).exists():
        raise FileNotFoundError(f"data set {key!r} ({source.what}) not found at {path}. "
                                f"{source.how}")
    return out
