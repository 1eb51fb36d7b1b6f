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

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as scipy_stats
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.checks import as_tensor, check_bool, check_images, check_labels
from advlens.cka import cka_cross, cka_matrix, gram_linear_cka, linear_cka, linear_gram
from advlens.features import predict, representation
from advlens.findings import combine, encode_statistics
from advlens.inversion import InversionResult, invert
from advlens.stats import Estimate, LinearFit, linear_fit, permutation_p
from advlens.zoo.config import ModelConfig
from advlens.zoo.seeds import preset_seed


def check_zoo_knobs(knobs: Mapping[str, Any]) -> None:
    """Raise before any work if notebook 01's knobs name models its zoo lacks: a misspelt
    architecture or a radius without a model would leave (a) empty, or (b) with fewer levels, read
    as "fewer than two robustness levels in this zoo"; or more ``robust_pairs`` than ``n_pairs``
    ((b) inverts the first ``robust_pairs`` of (a)'s ``n_pairs`` pairs: it silently inverted
    ``n_pairs``). ``knobs``: the notebook's resolved ``P``."""
    from advlens.zoo import spec

    if knobs["robust_pairs"] > knobs["n_pairs"]:
        raise ValueError(f"knob 'robust_pairs' = {knobs['robust_pairs']} exceeds n_pairs = "
                         f"{knobs['n_pairs']}: (b) inverts the first robust_pairs of (a)'s "
                         "n_pairs pairs; raise n_pairs to at least robust_pairs.")
    zoo, dataset = knobs["zoo"], knobs["dataset"]
    configs = [c for c in spec(zoo) if c.dataset == dataset and c.regime != "harmonized"]
    if not configs:  # (a misspelt dataset was blamed on heatmap_archs)
        raise ValueError(f"knob 'dataset' = {dataset!r}: zoo {zoo!r} has no model of it; its "
                         f"data sets: {sorted({c.dataset for c in spec(zoo)})}.")
    eps = knobs["heatmap_eps"]
    have = sorted({c.arch for c in configs if c.eps == eps})
    missing = [a for a in knobs["heatmap_archs"] if a not in have]
    if missing:
        raise ValueError(f"knob 'heatmap_archs' names {missing}: zoo {zoo!r} has no {dataset} "
                         f"model of them at heatmap_eps {eps!r}; it has {have}.")
    levels = set(knobs["robust_eps"])
    have = sorted({c.arch for c in configs if c.eps in levels})
    missing = [a for a in knobs["robust_archs"] if a not in have]
    if missing:
        raise ValueError(f"knob 'robust_archs' names {missing}: zoo {zoo!r} has no {dataset} "
                         f"model of them at any radius of robust_eps {knobs['robust_eps']}; it "
                         f"has {have}.")
    radii = sorted({c.eps for c in configs if c.arch in knobs["robust_archs"]})
    missing = [e for e in knobs["robust_eps"] if e not in radii]
    if missing:
        raise ValueError(f"knob 'robust_eps' holds {missing}: zoo {zoo!r} has no {dataset} model "
                         f"of robust_archs {knobs['robust_archs']} at that radius; its radii: "
                         f"{radii}.")


def zoo_configs(knobs: Mapping[str, Any]) -> list[ModelConfig]:
    """The zoo models notebook 01 builds: those of ``dataset`` in ``zoo`` (training seeds
    shifted by ``zoo_seed``) whose architecture is one of ``heatmap_archs`` or
    ``robust_archs``, harmonized ones left to notebook 03. Its first cell requires exactly
    these (the whole zoo asked for checkpoints it never loads). ``knobs``: the resolved ``P``."""
    from advlens.zoo import spec
    from advlens.zoo.seeds import reseed

    needed = set(knobs["heatmap_archs"]) | set(knobs["robust_archs"])
    return [c for c in reseed(spec(knobs["zoo"]), knobs["zoo_seed"])
            if c.dataset == knobs["dataset"] and c.arch in needed and c.regime != "harmonized"]


def model_label(config: ModelConfig, zoo_seed: int = 0) -> str:
    """The label of a zoo model in notebook 01's tables: ``<arch>/s<seed>``, or
    ``<variant>/s<seed>`` for a twin-cue model, with the seed counted within zoo ``zoo_seed``
    (:func:`advlens.zoo.seeds.preset_seed`), e.g. ``cnn-m/s0`` or ``a-only/s1``."""
    kind = config.variant if config.dataset == "twin-cue" else config.arch
    return f"{kind}/s{preset_seed(config, zoo_seed)}"


def label_kind(label: str) -> str:
    """The architecture (or twin-cue variant) of a :func:`model_label`."""
    kind, sep, seed = label.rpartition("/s")
    if not sep or not kind or not seed.isdigit():
        raise ValueError(f"{label!r} is not a model label '<arch or variant>/s<seed>'.")
    return kind


def different_kinds(row: str, col: str) -> bool:
    """Pair filter for :func:`similarity_by_level`: keep pairs of labelled models of different
    architectures (or variants); two seeds of one architecture are left out."""
    return label_kind(row) != label_kind(col)


def representations(models: Mapping[str, nn.Module], x: Tensor, *, layer: str | None = None,
                    batch_size: int = 256) -> dict[str, Tensor]:
    """Each model's representation (N, D) of ``x`` (default: the penultimate layer)."""
    return {name: representation(model, x, layer, batch_size=batch_size)
            for name, model in models.items()}


def data_cka_matrix(models: Mapping[str, nn.Module], x: Tensor, *, debiased: bool = False,
                    layer: str | None = None) -> pd.DataFrame:
    """Symmetric M×M linear CKA of the models' representations of the same images ``x``."""
    return cka_matrix(representations(models, x, layer=layer), debiased=debiased)


def _invert_quietly(model: nn.Module, seeds: Tensor, targets: Tensor,
                    **invert_kwargs: Any) -> InversionResult:
    return invert(model, seeds, targets, progress=False, **invert_kwargs)


def invert_each(models: Mapping[str, nn.Module], seeds: Tensor, targets: Tensor, *,
                progress: bool = True, client: Any | None = None,
                **invert_kwargs: Any) -> dict[str, InversionResult]:
    """Each model's inverted dataset of the same (seed, target) pairs (see
    :func:`advlens.inversion.invert` for ``invert_kwargs``, e.g. seed_labels/target_labels).
    ``client``: a dask client (or ``$ADVLENS_SCHEDULER``) to invert the models in parallel
    (:func:`advlens.parallel.map_models`; same results, in the same order)."""
    from advlens.parallel import SCHEDULER_ENV, map_models

    if client is not None or os.environ.get(SCHEDULER_ENV):
        return map_models(_invert_quietly, models, seeds, targets, client=client,
                          progress=progress, **invert_kwargs)
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
    debiased = check_bool(debiased, "debiased")  # before the inversions, not after them
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


# the delete-a-group jackknife's groups where the caller gives none (fewer items: one per group)
JACKKNIFE_GROUPS = 20


def _groups(groups: int | None, n: int) -> int | None:
    """``groups``, or :data:`JACKKNIFE_GROUPS` (at most ``n``) for None (notebook 01 with
    n_pairs below 20 failed with "groups must be an int in [2, n]")."""
    return min(JACKKNIFE_GROUPS, n) if groups is None else groups


def grouped_jackknife(n: int, statistic: Callable[[np.ndarray], float], *,
                      groups: int | None = None, level: float = 0.95,
                      seed: int = 0) -> Estimate:
    """``statistic(all n indices)`` with a CI from the delete-a-group jackknife: the n items are
    split at random into ``groups`` groups (None: :data:`JACKKNIFE_GROUPS`, at most n), the
    statistic is recomputed without each group, ``se² = (G-1)/G Σ (θ_g - mean θ)²`` and the
    interval is ``θ ± t_{G-1} se``. Unlike a bootstrap, no item is ever duplicated (which
    matters for CKA)."""
    groups = _groups(groups, n)
    if isinstance(groups, bool) or not isinstance(groups, int | np.integer) \
            or not 2 <= groups <= n:
        raise ValueError(f"groups must be an int in [2, n={n}]; got {groups!r}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level is a fraction in (0, 1), e.g. 0.95; got {level!r}.")
    assign = np.random.default_rng(seed).permutation(n) % groups
    everything = np.arange(n)
    theta = statistic(everything)
    leave_out = np.array([statistic(everything[assign != g]) for g in range(groups)])
    se = float(np.sqrt((groups - 1) / groups * np.square(leave_out - leave_out.mean()).sum()))
    half = float(scipy_stats.t.ppf(0.5 + level / 2, groups - 1)) * se
    return Estimate(theta, theta - half, theta + half, n)


def _host(rep: Tensor | np.ndarray) -> np.ndarray:
    """A representation as a float64 NumPy array (a GPU or bfloat16 tensor is copied to the
    CPU in float64 first: NumPy takes neither)."""
    if isinstance(rep, Tensor):
        rep = rep.detach().cpu().double()
    return np.asarray(rep, np.float64)


def mean_cka_ci(reps: Mapping[str, Mapping[str, Tensor]], pairs: Sequence[tuple[str, str]], *,
                groups: int | None = None, level: float = 0.95, seed: int = 0,
                debiased: bool = False) -> Estimate:
    """Mean of CKA(reps[R][R], reps[R][C]) over ``pairs`` (R, C), with a CI over images from the
    grouped jackknife (:func:`grouped_jackknife`; images are left out jointly for every pair,
    the pairs are fixed). ``debiased``: the unbiased HSIC estimator."""
    debiased = check_bool(debiased, "debiased")
    if not pairs:
        raise ValueError("pairs is empty; give at least one (row, column) pair.")
    for row, col in pairs:
        if row not in reps or row not in reps[row] or col not in reps[row]:
            raise ValueError(f"reps has no representations for pair ({row!r}, {col!r}); reps[R] "
                             "must hold R's and C's representations of R's data.")
    # each representation read once and held while its id is in use: an id is unique only
    # among live objects (a mapping that makes its items on access gave a freed item's id to
    # the next one, which then took the freed one's Gram)
    held = {(row, c): reps[row][c] for row, col in pairs for c in (row, col)}
    n = {len(rep) for rep in held.values()}
    if len(n) != 1:
        raise ValueError(f"every row's dataset must have the same number of images; got {n}.")
    # one Gram per representation (a model's test-data one serves every pair it is in), each
    # statistic its sub-Grams: (groups + 1) × pairs CKAs of n²·d each took hours at the paper
    # preset (n 2000, d up to 4096, 72 pairs, on the CPU); this is n²·d per representation
    names: dict[int, str] = {}  # representation (by identity) -> its name in the error messages
    grams: dict[str, Tensor] = {}
    for (row, c), rep in held.items():
        if id(rep) not in names:
            name = names[id(rep)] = f"reps[{row!r}][{c!r}]"
            grams[name] = linear_gram(torch.from_numpy(_host(rep)), name)
    keys = [(names[id(held[row, row])], names[id(held[row, col])]) for row, col in pairs]

    def statistic(idx: np.ndarray) -> float:
        rows = torch.from_numpy(idx)
        sub = {name: gram[rows][:, rows] for name, gram in grams.items()}
        # sub-Grams of linear_gram's (finite features, symmetric): checked as features
        return float(np.mean(gram_linear_cka(sub, keys, debiased, validate=False)))

    return grouped_jackknife(n.pop(), statistic, groups=groups, level=level, seed=seed)


def _check_levels(levels: Mapping[Any, Any]) -> None:
    """Refuse level keys that are not numbers: trends, grids and findings order levels by eps."""
    bad = [lv for lv in levels
           if isinstance(lv, bool) or not isinstance(lv, int | float | np.number)]
    if bad:
        raise ValueError(f"levels must be keyed by the robustness radius as a number (they are "
                         f"ordered and fitted by it); got {bad[0]!r} ({type(bad[0]).__name__}). "
                         "Key them by float(eps).")


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
                        groups: int | None = None, seed: int = 0, progress: bool = True,
                        layer: str | None = None, debiased: bool = False,
                        **invert_kwargs: Any) -> LevelSimilarity:
    """CKA on test images and on inverted data for the models of each level (e.g. robustness
    eps), over the ordered pairs (R, C), R != C, that ``pair_filter(R, C)`` keeps (default: all).

    On inverted data, pair (R, C) is CKA(Rep_R(X_R), Rep_C(X_R)) (R's inversions of the shared
    seed/target pairs); on test data both models see ``test_images``. Both use ``layer`` (default:
    the penultimate layer), and ``debiased`` (the unbiased HSIC estimator) for every CKA: both
    columns and their means. Levels with fewer than two models (or no kept pair) are skipped.
    """
    debiased = check_bool(debiased, "debiased")  # before the inversions, not after them
    _check_levels(levels)
    rows, summary, inverted = [], [], {}
    for level, models in levels.items():
        names = list(models)
        pairs = [(r, c) for r in names for c in names
                 if r != c and (pair_filter is None or pair_filter(r, c))]
        if not pairs:
            continue
        n_images = min(len(seeds), len(test_images))  # the CIs leave out groups of these images
        groups = _groups(groups, n_images)
        if isinstance(groups, bool) or not isinstance(groups, int | np.integer) \
                or not 2 <= groups <= n_images:  # checked before the inversions, not after them
            raise ValueError(f"groups must be an int in [2, {n_images}] (the CIs leave out groups "
                             f"of the {len(seeds)} inversion pairs and of the {len(test_images)} "
                             f"test images); got {groups!r}. Pass fewer groups or more images.")
        inv = inverted_cka_matrix(models, seeds, targets, progress=progress, layer=layer,
                                  debiased=debiased, **invert_kwargs)
        test_reps = representations(models, test_images, layer=layer)
        test_cross = {r: test_reps for r in names}
        test_matrix = cka_matrix(test_reps, debiased=debiased)
        inverted[level] = inv.inverted
        rows += [{"level": level, "row": r, "col": c, "cka_test": float(test_matrix.loc[r, c]),
                  "cka_inverted": float(inv.matrix.loc[r, c])} for r, c in pairs]
        entry: dict[str, Any] = {"level": level, "n_models": len(names), "n_pairs": len(pairs)}
        for key, reps in (("test", test_cross), ("inverted", inv.reps)):
            est = mean_cka_ci(reps, pairs, groups=groups, seed=seed, debiased=debiased)
            entry.update({f"cka_{key}": est.value, f"cka_{key}_lo": est.lo,
                          f"cka_{key}_hi": est.hi})
        summary.append(entry)
    # the columns also when no level has a kept pair (one architecture per level)
    ci_columns = [f"cka_{key}{end}" for key in ("test", "inverted") for end in ("", "_lo", "_hi")]
    return LevelSimilarity(
        pd.DataFrame(rows, columns=["level", "row", "col", "cka_test", "cka_inverted"]),
        pd.DataFrame(summary, columns=["level", "n_models", "n_pairs", *ci_columns]), inverted)


def label_cka(reps: Mapping[str, Tensor], labels: Tensor) -> pd.Series:
    """Linear CKA of each representation with the one-hot labels: how close its (centred)
    geometry is to class identity alone with equidistant classes. 1 only when every image sits
    at its class mean and the class means are all equally far apart; within-class spread and
    unequal distances between class means both lower it (three balanced classes whose means lie
    on a line score 1/√2 with no within-class spread at all), so it is not the share of the
    variance that is class identity: :func:`class_means` and :func:`nc1` tell the two apart."""
    def onehot(n: int) -> Tensor:  # one column per class present, whatever its id
        inverse = torch.unique(check_labels(labels, n, "labels").cpu(), return_inverse=True)[1]
        return torch.nn.functional.one_hot(inverse).double()

    return pd.Series({name: linear_cka(rep, onehot(rep.shape[0])) for name, rep in reps.items()},
                     name="cka_with_labels")


def class_means(rep: Tensor, labels: Tensor) -> Tensor:
    """``rep`` with every row replaced by its class's mean row (keeps only class geometry)."""
    rep = as_tensor(rep, "rep").double()
    labels = check_labels(labels, rep.shape[0], "labels").to(rep.device)
    classes, inverse = torch.unique(labels, return_inverse=True)
    sums = torch.zeros(len(classes), rep.shape[1], dtype=rep.dtype,
                       device=rep.device).index_add_(0, inverse, rep)
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
    # on the seeds' device: invert returns its images on the CPU whatever the seeds' device
    inverted, masks = inverted.to(seeds.device), masks.to(seeds.device)
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
# ... and, fixed with it, the bench is valid only where every a-only and b-only model learnt its
# cue: at least this test accuracy on its own variant (a model at chance "uses" no cue at all).
MIN_CUE_ACCURACY = 0.9


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


def _arch(name: str) -> str:
    """The architecture part of a model key ``"<arch>/s<seed>"``."""
    return name.split("/")[0]


def pair_trends(pairs: pd.DataFrame, *, value: str = "cka_inverted", n_boot: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """The robustness trend per architecture pair (Jones et al. (b), not only the mean).

    Parameters: ``pairs`` (rows ``level``, ``row``, ``col`` and ``value`` as
    :func:`similarity_by_level` gives them; model keys ``"<arch>/s<seed>"``), ``n_boot``,
    ``seed``. Returns one row per unordered architecture pair: the number of points (both
    directions, every seed and level), the least-squares slope of ``value`` on the level with a
    bootstrap CI over points (NaN with fewer than 3 points or 2 levels), R², the pair's mean at
    the lowest and highest level, whether its level means rise at every step, ``level_p``: the
    one-sided p of the pair's level means rising with ε over the orderings of its levels
    (:func:`level_test`'s test for one pair; a level's points share its models), and
    ``testable``: whether some ordering of its points has a significant slope
    (:attr:`LinearFit.testable`; not 2 points at each of 2 levels, whose CI lies above 0
    whenever both upper points do).
    """
    missing = [c for c in ("level", "row", "col", value) if c not in pairs]
    if missing:
        raise ValueError(f"pairs lacks columns {missing}; pass similarity_by_level(...).pairs.")
    keyed = pairs.assign(pair=[" ~ ".join(sorted((_arch(r), _arch(c))))
                               for r, c in zip(pairs["row"], pairs["col"], strict=True)],
                         level=pairs["level"].to_numpy(np.float64))  # numeric order, as the fit
    rows = []
    for pair, group in keyed.groupby("pair", sort=True):
        x, y = group["level"].to_numpy(np.float64), group[value].to_numpy(np.float64)
        means = group.groupby("level")[value].mean().sort_index()
        entry: dict[str, Any] = {"pair": pair, "n_points": len(group), "n_levels": len(means),
                                 "slope": np.nan, "slope_lo": np.nan, "slope_hi": np.nan,
                                 "r2": np.nan, "at_lowest": float(means.iloc[0]),
                                 "at_highest": float(means.iloc[-1]),
                                 "rises_every_step": bool(len(means) > 1
                                                          and (np.diff(means) > 0).all()),
                                 "level_p": _level_p(means.index.to_numpy(np.float64),
                                                     means.to_numpy(np.float64))[0],
                                 "testable": False}
        if len(means) >= 2 and len(group) >= 3:
            fit = linear_fit(x, y, n_boot=n_boot, seed=seed)
            entry.update(slope=fit.slope.value, slope_lo=fit.slope.lo, slope_hi=fit.slope.hi,
                         r2=fit.r2, testable=fit.testable)
        rows.append(entry)
    return pd.DataFrame(rows, columns=["pair", "n_points", "n_levels", "slope", "slope_lo",
                                       "slope_hi", "r2", "at_lowest", "at_highest",
                                       "rises_every_step", "level_p", "testable"])


def cross_level_similarity(levels: Mapping[Any, Mapping[str, nn.Module]],
                           inverted: Mapping[Any, Mapping[str, InversionResult]], *,
                           pair_filter: Callable[[str, str], bool] | None = None,
                           layer: str | None = None) -> pd.DataFrame:
    """CKA between models of *unequal* robustness on the row model's inverted data.

    For every row model R at level ``lr`` (its inversions ``inverted[lr][R]``) and column
    model C at level ``lc`` (any level, equal or not) that ``pair_filter(R, C)`` keeps:
    CKA(Rep_R(X_R), Rep_C(X_R)). All inversions must start from the same (seed, target) pairs.
    Returns one row per pair: ``row_level``, ``col_level``, ``row``, ``col``, ``cka_inverted``.
    """
    _check_levels(levels)
    models = {(lv, name): m for lv, group in levels.items() for name, m in group.items()}
    rows = []
    for lr, results in inverted.items():
        for r, result in results.items():
            if (lr, r) not in models:
                raise ValueError(f"inverted[{lr!r}][{r!r}] has no model in levels.")
            cols = {key: m for key, m in models.items() if key != (lr, r)
                    and (pair_filter is None or pair_filter(r, key[1]))}
            if not cols:
                continue
            own = representation(models[(lr, r)], result.images, layer)
            for (lc, c), model in cols.items():
                rows.append({"row_level": lr, "col_level": lc, "row": r, "col": c,
                             "cka_inverted": linear_cka(
                                 own, representation(model, result.images, layer))})
    return pd.DataFrame(rows)


def level_grid(cross: pd.DataFrame) -> pd.DataFrame:
    """Mean CKA per (row level, column level) of :func:`cross_level_similarity`'s table."""
    return cross.pivot_table(index="row_level", columns="col_level", values="cka_inverted",
                             aggfunc="mean").sort_index().sort_index(axis=1)


def any_level_check(grid: pd.DataFrame) -> pd.DataFrame:
    """The paper's "at any level of robustness": with the partner's level fixed, does CKA rise
    with a model's own level? One row per fixed partner level and role (``inverting``: the
    model inverts, the partner judges -- a column of ``grid`` read down; ``judging``: the
    partner inverts -- a row read across): CKA at the lowest and the highest own level, whether
    it rises from lowest to highest (``rises``) and at every step (``rises_every_step``)."""
    rows = []
    for role, table in (("inverting", grid), ("judging", grid.T)):
        for partner in table.columns:
            curve = table[partner].dropna()
            if len(curve) < 2:
                continue
            rows.append({"role": role, "partner_level": partner, "n_levels": len(curve),
                         "at_lowest": float(curve.iloc[0]), "at_highest": float(curve.iloc[-1]),
                         "rises": bool(curve.iloc[-1] > curve.iloc[0]),
                         "rises_every_step": bool((np.diff(curve.to_numpy()) > 0).all())})
    return pd.DataFrame(rows)


# --- the findings table of notebook 01 (advlens.findings format, aggregated by advlens.sweep) --
PAPER = {
    "a": "ImageNet, 9 architectures: CKA 0.55-0.81 (mean 0.67) on validation images, "
         "0.02-0.27 on inverted data",
    "b": "similarity on inverted data rises with L2 robustness",
    "b-pairs": "as robustness increases so does similarity to every other architecture",
    "b-any": "... at any level of robustness",
    "c": "not in the paper: the twin-cue ground truth is this project's construct",
}


def _row(finding: str, holds: bool | None, evidence: str, paper: str,
         statistics: Mapping[str, float]) -> dict[str, Any]:
    return {"finding": finding, "holds": holds, "evidence": evidence, "paper": paper,
            "statistics": encode_statistics(statistics)}


def finding_a(test: Estimate, inverted: Estimate) -> dict[str, Any]:
    """(a) holds iff the inverted-data mean's CI lies wholly below the test-data mean's CI."""
    return _row("a: CKA lower on inverted than on test data", bool(inverted.hi < test.lo),
                f"mean off-diagonal CKA {test.value:.2f} [{test.lo:.2f}, {test.hi:.2f}] on test "
                f"data vs {inverted.value:.2f} [{inverted.lo:.2f}, {inverted.hi:.2f}] inverted",
                PAPER["a"], {"cka_test": test.value, "cka_inverted": inverted.value})


# the one-sided level of (b)'s tests: its slope CI is a two-sided 95 % one
LEVEL_TEST_P = 0.025
# the fewest robustness levels at which permuting whole levels can reach LEVEL_TEST_P: the most
# extreme of L! orderings has p = 1 / L!, 1/24 at 4 levels, 1/120 at 5
LEVEL_TEST_LEVELS = 5


def level_test(summary: pd.DataFrame) -> tuple[float, int]:
    """(one-sided p, number of levels) of the test that permutes whole robustness levels: the
    level means of inverted-data CKA (``summary``'s ``cka_inverted`` by ``level``) against ε,
    Pearson's r over every ordering of the levels, or 9,999 random ones where there are more
    (8 levels and up: the paper preset's 10 have 10!; :func:`advlens.stats.permutation_p`).
    Unlike the points' bootstrap it treats a level, whose points share its models, as one unit.
    NaN p with fewer than two levels."""
    return _level_p(summary["level"].to_numpy(dtype=np.float64),
                    summary["cka_inverted"].to_numpy(dtype=np.float64))


def _level_p(levels: np.ndarray, means: np.ndarray) -> tuple[float, int]:
    """(one-sided p, number of levels) of ``means`` (one per level) rising with ``levels`` over
    the orderings of the levels (:func:`level_test`); non-finite means are left out."""
    kept = np.isfinite(means) & np.isfinite(levels)
    if kept.sum() < 2:
        return float("nan"), int(kept.sum())
    return permutation_p(levels[kept], means[kept], alternative="greater"), int(kept.sum())


def finding_b(summary: pd.DataFrame, trend: LinearFit | None) -> dict[str, Any]:
    """(b) holds iff the slope of inverted-data CKA on ε has its 95 % CI above 0 and, from
    :data:`LEVEL_TEST_LEVELS` levels on, the test permuting whole levels
    (:func:`level_test`) has p <= :data:`LEVEL_TEST_P` (None when the zoo has fewer than two
    levels, or when no ordering of the fitted points would be significant:
    :attr:`LinearFit.testable`). The CI resamples the (pair, direction, level) points as
    independent, though a level's points share its models: it is narrower than the models
    warrant, and on a flat trend with model effects shared within a level it reads "rises"
    several times more often than 2.5 %. Below 5 levels the level test cannot reach 2.5 % and
    the CI rule stands alone (a description of the zoo, not a test); its p is reported."""
    stats = {f"cka_inverted_eps{lv:g}": v for lv, v in zip(summary["level"],
                                                           summary["cka_inverted"], strict=True)}
    if trend is None:
        return _row("b: similarity on inverted data rises with robustness", None,
                    "fewer than two robustness levels with models of two architectures",
                    PAPER["b"], stats)
    level_p, n_levels = level_test(summary)
    stats.update(slope=trend.slope.value, slope_lo=trend.slope.lo, slope_hi=trend.slope.hi,
                 level_p=level_p)
    holds = bool(trend.slope.lo > 0) if trend.testable else None
    if holds and n_levels >= LEVEL_TEST_LEVELS:
        holds = bool(level_p <= LEVEL_TEST_P)
    level_note = (f"; levels permuted whole: p {level_p:.2g}" if n_levels >= LEVEL_TEST_LEVELS
                  else f"; levels permuted whole: p {level_p:.2g}, not required (at "
                  f"{n_levels} levels no ordering reaches {LEVEL_TEST_P:g})")
    return _row("b: similarity on inverted data rises with robustness", holds,
                f"slope {trend.slope.value:.3g} per unit eps [{trend.slope.lo:.3g}, "
                f"{trend.slope.hi:.3g}], R² {trend.r2:.2f}"
                + ("" if trend.testable else
                   f" (too few points to test: no ordering of these {trend.n} is significant, "
                   f"exact permutation p ≥ {trend.min_p:.2g})") + level_note, PAPER["b"], stats)


def finding_b_pairs(trends: pd.DataFrame) -> dict[str, Any]:
    """(b) per architecture pair: holds iff every pair's slope has its CI above 0 and, for a
    pair of :data:`LEVEL_TEST_LEVELS` levels or more, its whole-level test has ``level_p`` <=
    :data:`LEVEL_TEST_P` (as :func:`finding_b`: the CI resamples a pair's points as independent
    though a level's share its models); None if a pair has no slope (one robustness level) or
    too few points to test it (``testable`` False, see :func:`pair_trends`) and no testable
    pair fails."""
    fitted = trends.dropna(subset=["slope"])
    if fitted.empty:
        return _row("b per pair: every architecture pair rises", None,
                    "no pair has two robustness levels", PAPER["b-pairs"], {})
    testable = (fitted["testable"].astype(bool) if "testable" in fitted
                else pd.Series(True, index=fitted.index))
    tested, too_few = fitted[testable], fitted[~testable]
    whole_levels = (tested["n_levels"] >= LEVEL_TEST_LEVELS) if "level_p" in tested \
        else pd.Series(False, index=tested.index)
    rising = (tested["slope_lo"] > 0) & (~whole_levels
                                         | (tested.get("level_p", np.nan) <= LEVEL_TEST_P))
    resolved = int(rising.sum())
    untested = trends[trends["slope"].isna()]
    holds = False if resolved < len(tested) else None if len(untested) or len(too_few) else True
    left_out = (f"; not testable (one robustness level or fewer than 3 points): "
                f"{', '.join(map(str, untested.get('pair', untested.index)))}"
                if len(untested) else "")
    left_out += (f"; too few points to test (no ordering of them is significant): "
                 f"{', '.join(map(str, too_few.get('pair', too_few.index)))}"
                 if len(too_few) else "")
    return _row("b per pair: every architecture pair rises", holds,
                f"{resolved} of {len(tested)} {'testable ' if len(too_few) else ''}pairs with "
                "slope CI above 0"
                + (f" and levels permuted whole at p <= {LEVEL_TEST_P:g}"
                   if whole_levels.any() else "")
                + f"; slopes {fitted['slope'].min():.3g} to "
                  f"{fitted['slope'].max():.3g}{left_out}",
                PAPER["b-pairs"],
                {"pairs_rising": resolved, "pairs": len(tested),
                 "slope_min": fitted["slope"].min(), "slope_max": fitted["slope"].max()})


def finding_b_any_level(check: pd.DataFrame) -> dict[str, Any]:
    """(b) "at any level": holds iff, for every fixed partner level and both roles, CKA at
    the model's highest level exceeds CKA at its lowest (:func:`any_level_check`). A role
    without a curve (a level whose one architecture had no partner to invert for, so that
    only one level inverted) leaves the finding None unless a curve of the other falls."""
    if check.empty:
        return _row("b at any level: unequal-eps pairs rise too", None,
                    "fewer than two robustness levels with models of two architectures",
                    PAPER["b-any"], {})
    rising = int(check["rises"].sum())
    steps = int(check["rises_every_step"].sum())
    missing = [r for r in ("inverting", "judging") if r not in set(check["role"])]
    roles = f"{check['role'].iloc[0]} role only, no {missing[0]} curve" if missing else "both roles"
    return _row("b at any level: unequal-eps pairs rise too",
                combine([*map(bool, check["rises"]), *[None] * len(missing)]),
                f"{rising} of {len(check)} partner levels ({roles}) rise from the lowest to "
                f"the highest own eps, {steps} at every step", PAPER["b-any"],
                {"curves_rising": rising, "curves_rising_every_step": steps,
                 "curves": len(check)})


def finding_c_confound(check: ConfoundCheck) -> dict[str, Any]:
    """(c) the bench's criterion (:func:`confound_check`), stated before it was run."""
    return _row("c: twin-cue models using different cues look alike on i.i.d. data",
                check.holds, f"cross-cue CKA {check.cross_cue:.2f} (mean of {check.n_cross} "
                f"a-only × b-only pairs) vs same-cue {check.same_cue:.2f} (mean of "
                f"{check.n_same} pairs; criterion: within {check.margin:g})", PAPER["c"],
                {"cross_cue": check.cross_cue, "same_cue": check.same_cue})


def finding_c_collapse(test_cka: pd.DataFrame, inverted_cka: pd.DataFrame, a: Sequence[str],
                       b: Sequence[str], *, margin: float = CONFOUND_MARGIN) -> dict[str, Any]:
    """(c) on the inversions of one cue's model the other cue's model stops following while
    the same cue's twin does: cross-cue CKA on inversions (mean of both directions between
    ``a[0]`` and ``b[0]``) at least ``margin`` below its test-data value, and same-cue CKA on
    inversions (``a[0]``→``a[1]``, ``b[0]``→``b[1]``) at least ``margin`` above it."""
    a0, a1 = a[0], a[1]
    b0, b1 = b[0], b[1]
    cross_test = float(test_cka.loc[a0, b0])
    cross_inv = float((inverted_cka.loc[a0, b0] + inverted_cka.loc[b0, a0]) / 2)
    same_inv = float((inverted_cka.loc[a0, a1] + inverted_cka.loc[b0, b1]) / 2)
    holds = cross_inv <= cross_test - margin and same_inv >= cross_inv + margin
    return _row("c: on inversions the other cue's model collapses, the twin stays", bool(holds),
                f"cross-cue CKA ({a0} ~ {b0}) {cross_test:.2f} on test data → {cross_inv:.2f} on "
                f"inversions; same-cue twins ({a0} ~ {a1}, {b0} ~ {b1}) on inversions "
                f"{same_inv:.2f}", PAPER["c"],
                {"cross_cue_test": cross_test, "cross_cue_inverted": cross_inv,
                 "same_cue_inverted": same_inv})


def twin_findings(test_cka: pd.DataFrame, inverted_cka: pd.DataFrame, *,
                  own_accuracy: Mapping[str, float],
                  a: Sequence[str] = ("a-only/s0", "a-only/s1"),
                  b: Sequence[str] = ("b-only/s0", "b-only/s1"),
                  min_accuracy: float = MIN_CUE_ACCURACY) -> list[dict[str, Any]]:
    """The two twin-cue findings rows (:func:`finding_c_confound`, :func:`finding_c_collapse`);
    not testable (``holds`` None) when the twin zoo lacks a second seed of either cue, or when
    a model of ``a`` or ``b`` has an ``own_accuracy`` (test accuracy on its own variant: a-only
    images for an a-only model) below ``min_accuracy``: it did not learn its cue."""
    missing = [m for m in (*a, *b) if m not in test_cka.index or m not in inverted_cka.index]
    weak = {m: own_accuracy.get(m, float("nan")) for m in (*a, *b)}
    # (a hair of slack: features.accuracy's float32 mean reads 180 of 200 as 0.89999998)
    weak = {m: acc for m, acc in weak.items() if not acc >= min_accuracy - 1e-6}
    why = ""
    if missing:
        why = f"the twin zoo has no {', '.join(missing)} (two seeds of each cue are needed)"
    elif weak:
        why = ("not every cue model learnt its cue: own-variant test accuracy "
               + ", ".join(f"{m} {acc:.3f}" for m, acc in weak.items())
               + f" (the bench needs >= {min_accuracy:g})")
    if why:
        return [_row("c: twin-cue models using different cues look alike on i.i.d. data", None,
                     why, PAPER["c"], {}),
                _row("c: on inversions the other cue's model collapses, the twin stays", None,
                     why, PAPER["c"], {})]
    return [finding_c_confound(confound_check(test_cka, a, b)),
            finding_c_collapse(test_cka, inverted_cka, a, b)]
