"""``ImageSet``: the one container every advlens loader returns."""

from __future__ import annotations

import numbers
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass
class ImageSet:
    """A labelled image set.

    - ``images``: (N, C, H, W) float32 in [0, 1] (unnormalised; models normalise inside).
    - ``labels``: (N,) int64 class indices into ``classes``.
    - ``masks``: (N, K, H, W) float32 or ``None``. Binary {0, 1} for generated sets (twin-cue:
      K = 2, channel 0 = cue A, channel 1 = cue B; digits: K = 1, the stroke); real human
      importance maps (ClickMe) are continuous in [0, 1].
    - ``classes``: class names; ``name``: a short description of the set.
    - ``attributes``: optional per-image metadata, each a tensor with leading dimension N
      (e.g. twin-cue ``cue_a_class`` and ``cue_b_class``); one named ``*_class`` holds class
      indices into ``classes`` and is relabelled with the labels by :func:`select_classes`.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor | None
    classes: list[str]
    name: str
    attributes: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.ndim != 4:
            raise ValueError("ImageSet images must be (N, C, H, W); "
                             f"got {tuple(self.images.shape)}.")
        if self.labels.shape != (n,):
            raise ValueError(f"ImageSet labels must have shape ({n},); "
                             f"got {tuple(self.labels.shape)}.")
        if self.masks is not None and (
            self.masks.ndim != 4 or self.masks.shape[0] != n
            or self.masks.shape[2:] != self.images.shape[2:]
        ):
            raise ValueError(
                f"ImageSet masks must be (N, K, H, W) = ({n}, K, {self.images.shape[2]}, "
                f"{self.images.shape[3]}); got {tuple(self.masks.shape)}.")
        for key, value in self.attributes.items():
            if value.shape[:1] != (n,):
                raise ValueError(f"ImageSet attribute {key!r} must have leading dimension {n}; "
                                 f"got {tuple(value.shape)}.")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx: Tensor | np.ndarray | list[int] | slice) -> ImageSet:
        """The images at ``idx`` (indices, boolean mask or slice) with their masks, attributes."""
        if isinstance(idx, np.ndarray):
            idx = torch.from_numpy(idx)
        elif isinstance(idx, list):  # a list of bools is a mask, not the indices 0 and 1
            idx = torch.as_tensor(idx)
            idx = idx if idx.dtype == torch.bool else idx.long()
        return ImageSet(
            images=self.images[idx],
            labels=self.labels[idx],
            masks=None if self.masks is None else self.masks[idx],
            classes=list(self.classes),
            name=self.name,
            attributes={k: v[idx] for k, v in self.attributes.items()},
        )


def select_classes(imageset: ImageSet, classes: list[int] | list[str]) -> ImageSet:
    """Keep only ``classes`` (indices or names), relabelled 0..k-1 in the order given; the
    class-index attributes (``*_class``, e.g. twin-cue ``cue_b_class``) are relabelled the same
    way, -1 where an image's attribute names a class that was not kept."""
    if isinstance(classes, np.ndarray | Tensor):
        classes = classes.tolist()  # (a 0-dim one: its one number, refused below)
    if isinstance(classes, str) or not isinstance(classes, Iterable):
        # a string was read letter by letter ("12": the classes '1' and '2' of digits)
        raise TypeError(f"classes must be a list of class indices or names; got {classes!r}: "
                        f"pass [{classes!r}].")
    classes = list(classes)  # once: a generator was used up by the name check below
    unknown = [c for c in classes if isinstance(c, str) and c not in imageset.classes]
    # an index is a whole number (NumPy's, a 0-dim tensor's, 3.0 as ModelConfig(classes=)
    # takes it), never a bool or a fraction: int(1.7) read class 1
    index = [-1 if isinstance(c, str) and c in unknown else imageset.classes.index(c)
             if isinstance(c, str) else _class_index(c) for c in classes]
    fractions = [c for c, i in zip(classes, index, strict=True) if i is None]
    if fractions or unknown or not index or len(set(index)) != len(index) or not all(
            0 <= i < imageset.num_classes for i in index):
        raise ValueError(f"classes must be one or more distinct classes of {imageset.name} "
                         f"(indices 0..{imageset.num_classes - 1} or names); got {classes!r}"
                         + (f": {fractions!r} not whole numbers" if fractions else "") + ".")
    remap = torch.full((imageset.num_classes,), -1, dtype=torch.long)
    remap[torch.as_tensor(index)] = torch.arange(len(index))
    keep = remap[imageset.labels] >= 0
    out = imageset.subset(keep)
    out.labels = remap[out.labels]
    for key, value in out.attributes.items():
        if key.endswith("_class"):  # -1 (not kept by an earlier selection) stays -1
            out.attributes[key] = torch.where(value >= 0, remap[value.clamp_min(0)], -1)
    out.classes = [imageset.classes[i] for i in index]
    return out


def _class_index(c: object) -> int | None:
    """``c`` as a class index if it is a whole number (not a bool), else None."""
    if isinstance(c, bool | np.bool_) or (isinstance(c, Tensor) and c.dtype == torch.bool):
        return None
    try:
        return operator.index(c)  # type: ignore[arg-type]
    except TypeError:
        pass
    if isinstance(c, numbers.Real) and float(c).is_integer():
        return int(c)
    return None
