"""Similarity of models on test data and on inverted data (Jones et al. 2022): the computations
behind notebook 01.

- :func:`data_cka_matrix`: linear CKA of every pair of models on the same (test) images.
- :func:`inverted_cka_matrix`: the asymmetric heatmap -- row model R inverts (seed, target)
  pairs into its own dataset X_R; entry (R, C) = CKA(Rep_R(X_R), Rep_C(X_R)).
- :func:`mean_cka_ci`: mean CKA over chosen (row, column) pairs with a CI over images (grouped
  jackknife: resampling images with replacement duplicates rows, and duplicated rows inflate
  CKA, so a percentile bootstrap interval sits above the estimate -- by 2-3 standard errors at
  n = 256 -- and need not contain it).
- :func:`similarity_by_level`: per group of models (e.g. one robustness level), every chosen
  pair's CKA on test and on inverted data, and the group means with CIs.
- :func:`prediction_rates`, :func:`prediction_table`, :func:`mask_concentration`: what the
  inverted images look like to a model, and where the inversion changed the seed.
- :func:`label_cka`, :func:`class_means`: how much of a representation is class structure (to
  read a low or high test-data CKA).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as scipy_stats
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.checks import as_tensor, check_images, check_labels
from advlens.cka import cka_cross, cka_matrix, linear_cka
from advlens.features import predict, representation
from advlens.inversion import InversionResult, invert
from advlens.stats import Estimate


def representations(models: Mapping[str, nn.Module], x: Tensor, *, layer: str | None = None,
                    batch_size: int = 256) -> dict[str, Tensor]:
    """Each model's representation (N, D) of ``x`` (default: the penultimate layer)."""
    return {name: representation(model, x, layer, batch_size=batch_size)
            for name, model in models.items()}


def data_cka_matrix(models: Mapping[str, nn.Module], x: Tensor, *, debiased: bool = False,
                    layer: str | None = None) -> pd.DataFrame:
    """Symmetric M×M linear CKA of the models' representations of the same images ``x``."""
    return cka_matrix(representations(models, x, layer=layer), debiased=debiased)


def invert_each(models: Mapping[str, nn.Module], seeds: Tensor, targets: Tensor, *,
                progress: bool = True, **invert_kwargs: Any) -> dict[str, InversionResult]:
    """Each model's inverted dataset of the same (seed, target) pairs (see
    :func:`advlens.inversion.invert` for ``invert_kwargs``, e.g. seed_labels/target_labels)."""
    out = {}
    for name, model in tqdm(models.items(), desc="Inverting per model", disable=not progress):
        out[name] = invert(model, seeds, targets, progress=False, **invert_kwargs)
    return out


def cross_representations(models: Mapping[str, nn.Module], data: Mapping[str, Tensor], *,
                          layer: str | None = None) -> dict[str, dict[str, Tensor]]:
    """``out[R][C]`` = model C's representation of the images ``data[R]`` (row R's dataset)."""
    return {row: representations(models, images, layer=layer) for row, images in data.items()}


@dataclass
class InvertedSimilarity:
    """``matrix``: rows = inverting model R, columns = model C, entry CKA(Rep_R(X_R), Rep_C(X_R));
    ``inverted[R]``: R's inversion result; ``reps[R][C]`` = Rep_C(X_R)."""

    matrix: pd.DataFrame
    inverted: dict[str, InversionResult]
    reps: dict[str, dict[str, Tensor]]


def inverted_cka_matrix(models: Mapping[str, nn.Module], seeds: Tensor, targets: Tensor, *,
                        inverted: Mapping[str, InversionResult] | None = None,
                        debiased: bool = False, layer: str | None = None,
                        progress: bool = True, **invert_kwargs: Any) -> InvertedSimilarity:
    """The Jones et al. heatmap on inverted data (asymmetric).

    Each model inverts the same (seed, target) pairs (pass ``seed_labels``/``target_labels`` in
    ``invert_kwargs`` to have same-class pairs refused), unless ``inverted`` already holds every
    model's inversion result (e.g. to reuse them).
    """
    if inverted is None:
        inverted = invert_each(models, seeds, targets, layer=layer, progress=progress,
                               **invert_kwargs)
    missing = [name for name in models if name not in inverted]
    if missing:
        raise ValueError(f"inverted has no result for models {missing}; invert them first or "
                         "pass inverted=None.")
    data = {name: inverted[name].images for name in models}
    reps = cross_representations(models, data, layer=layer)
    return InvertedSimilarity(cka_cross(reps, debiased=debiased), dict(inverted), reps)


def off_diagonal(matrix: pd.DataFrame) -> np.ndarray:
    """The off-diagonal entries of a square DataFrame, row by row."""
    values = matrix.to_numpy()
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"matrix must be square; got shape {values.shape}.")
    return values[~np.eye(values.shape[0], dtype=bool)]


def grouped_jackknife(n: int, statistic: Callable[[np.ndarray], float], *, groups: int = 20,
                      level: float = 0.95, seed: int = 0) -> Estimate:
    """``statistic(all n indices)`` with a CI from the delete-a-group jackknife: the n items are
    split at random into ``groups`` groups, the statistic is recomputed without each group,
    ``se² = (G-1)/G Σ (θ_g - mean θ)²`` and the interval is ``θ ± t_{G-1} se``. Unlike a
    bootstrap, no item is ever duplicated (which matters for CKA)."""
    if not 2 <= groups <= n:
        raise ValueError(f"groups must be in [2, n={n}]; got {groups}.")
    assign = np.random.default_rng(seed).permutation(n) % groups
    everything = np.arange(n)
    theta = statistic(everything)
    leave_out = np.array([statistic(everything[assign != g]) for g in range(groups)])
    se = float(np.sqrt((groups - 1) / groups * np.square(leave_out - leave_out.mean()).sum()))
    half = float(scipy_stats.t.ppf(0.5 + level / 2, groups - 1)) * se
    return Estimate(theta, theta - half, theta + half, n)


def mean_cka_ci(reps: Mapping[str, Mapping[str, Tensor]], pairs: Sequence[tuple[str, str]], *,
                groups: int = 20, level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean of CKA(reps[R][R], reps[R][C]) over ``pairs`` (R, C), with a CI over images from the
    grouped jackknife (:func:`grouped_jackknife`; images are left out jointly for every pair,
    the pairs are fixed)."""
    if not pairs:
        raise ValueError("pairs is empty; give at least one (row, column) pair.")
    arrays = {}
    for row, col in pairs:
        if row not in reps or row not in reps[row] or col not in reps[row]:
            raise ValueError(f"reps has no representations for pair ({row!r}, {col!r}); reps[R] "
                             "must hold R's and C's representations of R's data.")
        arrays[(row, col)] = (np.asarray(reps[row][row], np.float64),
                              np.asarray(reps[row][col], np.float64))
    n = {a.shape[0] for a, _ in arrays.values()}
    if len(n) != 1:
        raise ValueError(f"every row's dataset must have the same number of images; got {n}.")

    def statistic(idx: np.ndarray) -> float:
        return float(np.mean([linear_cka(a[idx], b[idx]) for a, b in arrays.values()]))

    return grouped_jackknife(n.pop(), statistic, groups=groups, level=level, seed=seed)


@dataclass
class LevelSimilarity:
    """``pairs``: one row per (level, row model, column model) with ``cka_test`` and
    ``cka_inverted``; ``summary``: per level the mean of each with a CI over images
    (``*_lo``/``*_hi``) and the number of pairs; ``inverted[level][model]``: the inversions."""

    pairs: pd.DataFrame
    summary: pd.DataFrame
    inverted: dict[Any, dict[str, InversionResult]]


def similarity_by_level(levels: Mapping[Any, Mapping[str, nn.Module]], seeds: Tensor,
                        targets: Tensor, test_images: Tensor, *,
                        pair_filter: Callable[[str, str], bool] | None = None,
                        groups: int = 20, seed: int = 0, progress: bool = True,
                        layer: str | None = None, **invert_kwargs: Any) -> LevelSimilarity:
    """CKA on test images and on inverted data for the models of each level (e.g. robustness
    eps), over the ordered pairs (R, C), R != C, that ``pair_filter(R, C)`` keeps (default: all).

    On inverted data, pair (R, C) is CKA(Rep_R(X_R), Rep_C(X_R)) (R's inversions of the shared
    seed/target pairs); on test data both models see ``test_images``. Both use ``layer`` (default:
    the penultimate layer). Levels with fewer than two models (or no kept pair) are skipped.
    """
    rows, summary, inverted = [], [], {}
    for level, models in levels.items():
        names = list(models)
        pairs = [(r, c) for r in names for c in names
                 if r != c and (pair_filter is None or pair_filter(r, c))]
        if not pairs:
            continue
        inv = inverted_cka_matrix(models, seeds, targets, progress=progress, layer=layer,
                                  **invert_kwargs)
        test_reps = representations(models, test_images, layer=layer)
        test_cross = {r: test_reps for r in names}
        test_matrix = cka_matrix(test_reps)
        inverted[level] = inv.inverted
        rows += [{"level": level, "row": r, "col": c, "cka_test": float(test_matrix.loc[r, c]),
                  "cka_inverted": float(inv.matrix.loc[r, c])} for r, c in pairs]
        entry: dict[str, Any] = {"level": level, "n_models": len(names), "n_pairs": len(pairs)}
        for key, reps in (("test", test_cross), ("inverted", inv.reps)):
            est = mean_cka_ci(reps, pairs, groups=groups, seed=seed)
            entry.update({f"cka_{key}": est.value, f"cka_{key}_lo": est.lo,
                          f"cka_{key}_hi": est.hi})
        summary.append(entry)
    return LevelSimilarity(pd.DataFrame(rows), pd.DataFrame(summary), inverted)


def label_cka(reps: Mapping[str, Tensor], labels: Tensor) -> pd.Series:
    """Linear CKA of each representation with the one-hot labels: the share of its (centred)
    geometry that is class identity (1 = nothing but class, near 0 = mostly within-class)."""
    labels = as_tensor(labels, "labels")
    onehot = torch.nn.functional.one_hot(labels.long()).double()
    return pd.Series({name: linear_cka(rep, onehot) for name, rep in reps.items()},
                     name="cka_with_labels")


def class_means(rep: Tensor, labels: Tensor) -> Tensor:
    """``rep`` with every row replaced by its class's mean row (keeps only class geometry)."""
    rep = as_tensor(rep, "rep").double()
    labels = check_labels(labels, rep.shape[0], "labels").cpu()
    classes, inverse = torch.unique(labels, return_inverse=True)
    sums = torch.zeros(len(classes), rep.shape[1], dtype=rep.dtype).index_add_(0, inverse, rep)
    counts = torch.bincount(inverse, minlength=len(classes)).to(rep.dtype)
    return (sums / counts[:, None])[inverse]


def prediction_table(models: Mapping[str, nn.Module], inverted: Mapping[str, InversionResult],
                     seed_labels: Tensor, target_labels: Tensor) -> pd.DataFrame:
    """For every inverting model R (``inverted``) and judging model C (``models``): the
    fractions of R's inversions that C classifies as the target's and as the seed's class."""
    rows = []
    for row, result in inverted.items():
        for col, model in models.items():
            rates = prediction_rates(model, result.images, seed_labels, target_labels)
            rows.append({"inverted_by": row, "judged_by": col, "as_target": rates["target"],
                         "as_seed": rates["seed"]})
    return pd.DataFrame(rows)


def prediction_rates(model: nn.Module, images: Tensor, seed_labels: Tensor,
                     target_labels: Tensor) -> dict[str, float]:
    """Fractions of ``images`` that ``model`` classifies as the target's / the seed's class."""
    images = check_images(as_tensor(images, "images"), "images")
    n = images.shape[0]
    pred = predict(model, images).argmax(1)
    seed_labels = check_labels(seed_labels, n, "seed_labels").cpu()
    target_labels = check_labels(target_labels, n, "target_labels").cpu()
    return {"target": float((pred == target_labels).float().mean()),
            "seed": float((pred == seed_labels).float().mean())}


def mask_concentration(seeds: Tensor, inverted: Tensor, masks: Tensor) -> Tensor:
    """Where the inversion changed the seed, per image and mask: the share of the perturbation's
    energy (squared change summed over channels) inside each mask divided by the mask's share of
    the image area. 1 = spread evenly; > 1 = concentrated in the mask. Returns (N, K); NaN where
    a mask is empty or nothing changed."""
    seeds, inverted = as_tensor(seeds, "seeds"), as_tensor(inverted, "inverted")
    masks = as_tensor(masks, "masks").float()
    if seeds.shape != inverted.shape or masks.ndim != 4 or masks.shape[0] != seeds.shape[0] \
            or masks.shape[2:] != seeds.shape[2:]:
        raise ValueError(f"need seeds and inverted of one shape (N, C, H, W) and masks "
                         f"(N, K, H, W); got {tuple(seeds.shape)}, {tuple(inverted.shape)}, "
                         f"{tuple(masks.shape)}.")
    energy = (inverted.double() - seeds.double()).square().sum(1, keepdim=True)  # (N, 1, H, W)
    total = energy.sum((2, 3))  # (N, 1)
    inside = (energy * masks.double()).sum((2, 3)) / total  # (N, K)
    area = masks.double().mean((2, 3))
    out = inside / area
    return torch.where((area > 0) & (total > 0), out, torch.full_like(out, float("nan")))


def nc1(rep: Tensor, labels: Tensor) -> float:
    """Neural-collapse NC1 of Papyan et al. (2020): ``tr(Σ_W Σ_B⁺) / K`` with the within-class
    covariance ``Σ_W`` (over all N images, around their class means) and the between-class
    covariance ``Σ_B`` of the K class means around the global mean. 0 = every image at its
    class mean (full collapse); larger = more within-class spread relative to class separation.
    """
    rep = as_tensor(rep, "rep").double()
    if rep.ndim != 2:
        raise ValueError(f"rep must be (N, D); got shape {tuple(rep.shape)}.")
    labels = check_labels(labels, rep.shape[0], "labels").cpu()
    classes = torch.unique(labels)
    if len(classes) < 2:
        raise ValueError("nc1 needs at least two classes in labels.")
    means = class_means(rep, labels)
    within = (rep - means).T @ (rep - means) / rep.shape[0]
    mu = torch.stack([rep[labels == k].mean(0) for k in classes])
    centred = mu - rep.mean(0)
    between = centred.T @ centred / len(classes)
    return float(torch.trace(within @ torch.linalg.pinv(between, hermitian=True)) / len(classes))


# The twin-cue bench's criterion, fixed before the latent design was first trained: the bench
# shows Jones et al.'s confound iff cross-cue CKA on i.i.d. ``both`` images is within this margin
# of same-cue CKA (two seeds of one cue).
CONFOUND_MARGIN = 0.1


@dataclass(frozen=True)
class ConfoundCheck:
    """Cross-cue vs same-cue CKA on i.i.d. data and whether the twin-cue criterion is met."""

    cross_cue: float
    same_cue: float
    margin: float
    n_cross: int
    n_same: int

    @property
    def holds(self) -> bool:
        """True iff ``cross_cue >= same_cue - margin``."""
        return bool(self.cross_cue >= self.same_cue - self.margin)


def confound_check(test_cka: pd.DataFrame, a_models: Sequence[str], b_models: Sequence[str],
                   *, margin: float = CONFOUND_MARGIN) -> ConfoundCheck:
    """The twin-cue criterion on a symmetric CKA matrix of i.i.d. test data: cross-cue = mean
    CKA over every (a-only, b-only) pair; same-cue = mean over the pairs of distinct models of
    one cue (a-only with a-only, b-only with b-only).

    Parameters: ``test_cka`` (models × models), ``a_models``/``b_models`` the row names of the
    a-only and b-only models (each at least two, for the same-cue pairs), ``margin``.
    """
    missing = [m for m in list(a_models) + list(b_models) if m not in test_cka.index]
    if missing:
        raise ValueError(f"test_cka has no rows {missing}; rows: {list(test_cka.index)}.")
    if len(a_models) < 2 or len(b_models) < 2:
        raise ValueError("confound_check needs at least two models of each cue (two seeds) for "
                         f"the same-cue pairs; got {list(a_models)} and {list(b_models)}.")
    cross = [test_cka.loc[a, b] for a in a_models for b in b_models]
    same = [test_cka.loc[m[i], m[j]] for m in (list(a_models), list(b_models))
            for i in range(len(m)) for j in range(i + 1, len(m))]
    return ConfoundCheck(float(np.mean(cross)), float(np.mean(same)), margin, len(cross),
                         len(same))
