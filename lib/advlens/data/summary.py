"""Numbers that describe a data set: class counts, cue/label agreement, cue decodability."""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from advlens.data.imageset import ImageSet


def class_counts(imageset: ImageSet) -> pd.DataFrame:
    """One row per class: index, name and number of images."""
    counts = torch.bincount(imageset.labels, minlength=imageset.num_classes)
    return pd.DataFrame({"dataset": imageset.name, "class": range(imageset.num_classes),
                         "name": imageset.classes, "count": counts.tolist()})


def cue_agreement(imageset: ImageSet) -> dict[str, float]:
    """Fraction of images whose cue A / cue B class equals the label (twin-cue sets)."""
    missing = {"cue_a_class", "cue_b_class"} - set(imageset.attributes)
    if missing:
        raise ValueError(f"{imageset.name} has no {sorted(missing)} attributes; "
                         "cue agreement is defined for twin-cue sets.")
    return {f"agree_{cue}": float((imageset.attributes[f"cue_{cue}_class"]
                                   == imageset.labels).float().mean()) for cue in ("a", "b")}


def cue_features(imageset: ImageSet, channel: int, half: int = 8) -> Tensor:
    """Per-image features of one cue region: the grey window of side 2·half+1 centred on the
    mask's centroid, plus the mean and s.d. of each colour channel inside the mask."""
    if imageset.masks is None:
        raise ValueError(f"{imageset.name} has no masks.")
    m = imageset.masks[:, channel]
    area = m.sum((1, 2)).clamp_min(1.0)
    h, w = m.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=m.dtype), torch.arange(w, dtype=m.dtype),
                            indexing="ij")
    cy = ((m * ys).sum((1, 2)) / area).round().long()
    cx = ((m * xs).sum((1, 2)) / area).round().long()
    grey = F.pad(imageset.images.mean(1), (half,) * 4)
    offsets = torch.arange(2 * half + 1)
    rows = (cy[:, None] + offsets)[:, :, None].expand(-1, -1, 2 * half + 1)
    cols = (cx[:, None] + offsets)[:, None, :].expand(-1, 2 * half + 1, -1)
    window = grey[torch.arange(len(m))[:, None, None], rows, cols].flatten(1)
    mask = m[:, None]
    mean = (imageset.images * mask).sum((2, 3)) / area[:, None]
    sd = (((imageset.images - mean[..., None, None]) ** 2 * mask).sum((2, 3))
          / area[:, None]).sqrt()
    return torch.cat([window, mean, sd], dim=1).double()


def _z_blocks(f_train: Tensor, f_test: Tensor, n_window: int) -> tuple[Tensor, Tensor]:
    """z-score each feature with training statistics, then give the window block and the colour
    block equal total weight (otherwise the many window pixels drown the six colour stats)."""
    mu, sd = f_train.mean(0), f_train.std(0).clamp_min(1e-6)
    weight = torch.ones_like(mu)
    weight[:n_window] = 1 / n_window**0.5
    weight[n_window:] = 1 / (len(mu) - n_window) ** 0.5
    return (f_train - mu) / sd * weight, (f_test - mu) / sd * weight


def cue_decodability(train: ImageSet, test: ImageSet, channel: int, half: int = 8) -> float:
    """Test accuracy of a nearest-centroid classifier (on z-scored :func:`cue_features`) that
    predicts the label from one cue region: high when the cue carries the label, ~chance when
    it is randomised."""
    f_train, f_test = cue_features(train, channel, half), cue_features(test, channel, half)
    f_train, f_test = _z_blocks(f_train, f_test, (2 * half + 1) ** 2)
    centroids = torch.stack([f_train[train.labels == k].mean(0)
                             for k in range(train.num_classes)])
    pred = torch.cdist(f_test, centroids).argmin(1)
    return float((pred == test.labels).float().mean())
