"""Liang et al. (ICML 2021): does adversarial transferability indicate knowledge transferability?

The computations behind notebook 04 (protocol: PROTOCOLS.md §4).

- Class subsets: :func:`growing_share` builds source class lists with a growing share of the
  target's classes; :func:`class_share` and :func:`share_label` derive each source's share and
  label from its class list (never from a file or model name: the published plot labels were
  reversed). :data:`PAPER_SOURCES` / :data:`PAPER_TARGET` are the paper's CIFAR-10 → STL-10 lists.
- :class:`Experiment` — a reference model (trained on the target task) and its source models:
  :func:`experiment_a` (class subsets, one architecture), :func:`experiment_b` (several zoo
  families, one source task).
- :func:`evaluate_sources` — for one seed: α₁, α₂ and the combined number of every source
  against the reference (:mod:`advlens.transfer`, each model attacked once, on test images the
  reference classifies correctly) and the knowledge-transfer accuracy (a linear probe on the
  target's training split, epoch chosen on a validation split, accuracy on the test split).
- :func:`run_experiment` — over seeds, models from the zoo; :func:`summarize` (mean and a
  Student-t CI over seeds), :func:`correlations` (Spearman ρ between the two transferabilities
  with a bootstrap CI over (source, seed) points — our addition; the paper reports none) and
  :func:`findings` (the claim checked per experiment, as a findings table).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as scipy_stats
from torch import nn
from tqdm.auto import tqdm

from advlens import probes, zoo
from advlens.checks import check_bool, check_positive_int
from advlens.data import ImageSet
from advlens.features import accuracy, predict
from advlens.findings import encode_statistics
from advlens.presets import LIANG_EXPERIMENTS as EXPERIMENTS
from advlens.rng import name_seed
from advlens.stats import (
    below_alpha,
    bootstrap_ci,
    min_group_permutation_p,
    min_testable_points,
    permutation_p,
)
from advlens.transfer import (
    ALPHA_DIRECTIONS,
    Perturbations,
    TransferAttack,
    alpha_table,
    liang_fgsm,
    liang_pgd,
)
from advlens.zoo import ModelConfig
from advlens.zoo.datasets import dataset_for
from advlens.zoo.training import training_device

# The paper's experiment A at full scale: CIFAR-10 source class lists (indices into CIFAR-10's
# classes) and the STL-10 reference's classes (names). Shares are derived from these lists.
PAPER_SOURCES: tuple[tuple[int, ...], ...] = ((0, 1, 8, 9), (2, 1, 8, 9), (2, 3, 8, 9),
                                              (2, 3, 4, 9), (2, 3, 4, 7))
PAPER_TARGET: tuple[str, ...] = ("bird", "cat", "deer", "dog")
ANIMALS: tuple[str, ...] = ("bird", "cat", "deer", "dog", "frog", "horse", "monkey")
# Experiment B's architectures and the knowledge transfer / α₁ the paper reports for them.
# (zoo names: advlens.zoo.architectures; the ResNets are the CIFAR-stem ones of their
# models/resnet.py, built on torchvision's)
PAPER_ARCHS: tuple[str, ...] = ("fcnet", "lenet", "alexnet", "resnet18-cifar", "resnet50-cifar")
# their train_clf.py: SGD (momentum 0.9, weight decay 1e-4) at 0.1 with cosine annealing, random
# crop (padding 4) and horizontal flip
PAPER_TRAINING: dict[str, Any] = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-4,
                                  "warmup_frac": 0.0, "augment": "crop-flip"}
PAPER_B_TRANSFER = dict(zip(PAPER_ARCHS, (0.283, 0.457, 0.551, 0.766, 0.779), strict=True))
PAPER_B_ALPHA1 = dict(zip(PAPER_ARCHS, (0.346, 0.324, 0.337, 0.538, 0.614), strict=True))
METRICS = ("alpha1", "alpha2", "combined", "transfer_acc")
# The range each metric can take: t-intervals are clipped to it (α₁ has no upper bound).
RANGES = {"alpha1": (0.0, np.inf), "alpha2": (0.0, 1.0), "combined": (0.0, np.inf),
          "transfer_acc": (0.0, 1.0)}
REFERENCE = "reference"
# Sources of seed s are initialised with seed s + SOURCE_SEED_OFFSET: otherwise experiment A's
# source with all the target's classes would be the reference itself (same config, same cache
# entry). In the paper the sources are CIFAR-10 models and the reference an STL-10 one.
SOURCE_SEED_OFFSET = 1000



def growing_share(target: Sequence[int], other: Sequence[int]) -> list[tuple[int, ...]]:
    """Source class lists with k = 0 … len(target) of the target's classes: the first k target
    classes followed by the last len(target) − k classes of ``other`` (like the paper's lists,
    where each step swaps one vehicle class for an animal class)."""
    target, other = [int(c) for c in target], [int(c) for c in other]
    if len(other) != len(target) or set(target) & set(other):
        raise ValueError(f"target and other must be disjoint class lists of equal length; "
                         f"got {target} and {other}.")
    return [tuple(target[:k] + other[k:]) for k in range(len(target) + 1)]


def class_share(source_names: Sequence[str], category: Sequence[str]) -> float:
    """Fraction of a source's classes (by name) that belong to ``category`` (e.g. the target's
    classes, or the animals of the paper's STL-10 target)."""
    if not source_names:
        raise ValueError("a source needs at least one class.")
    wanted = set(category)
    return sum(name in wanted for name in source_names) / len(source_names)


def share_label(source_names: Sequence[str], category: Sequence[str],
                shown: Sequence[Any] | None = None, *, word: str = "target") -> str:
    """The bar label of a class-subset source, e.g. ``"2/4 target: 5,6,1,2"``: how many of its
    classes are in ``category``, which ``word`` names (the paper's CIFAR-10 sources are counted
    in animal classes, not in the STL-10 target's: ``word="animal"``); ``shown``: what to list
    for the classes, default their names."""
    hits = sum(name in set(category) for name in source_names)
    listed = ",".join(map(str, source_names if shown is None else shown))
    return f"{hits}/{len(source_names)} {word}: {listed}"


@dataclass(frozen=True)
class Source:
    """One source model of an experiment: its bar label, zoo config (seed 0; each seed replaces
    it) and, for experiment A, the share of its classes in the category that experiment counts
    (the target's classes; animal classes in the paper's CIFAR-10 → STL-10 experiment)."""

    label: str
    config: ModelConfig
    share: float | None = None


@dataclass(frozen=True)
class Experiment:
    """A reference model (its config defines the target task) and the sources compared on it."""

    name: str
    reference: ModelConfig
    sources: tuple[Source, ...]
    description: str = ""
    # this experiment's probe epochs where they are not the settings' (None: the settings');
    # their cmd.sh ran experiment B's transfer.py with --epoch 10, A's at its default (10 in
    # their image_exp/transfer.py)
    probe_epochs: int | None = None


def experiment_a(name: str, reference: ModelConfig, target: Sequence[int], other: Sequence[int],
                 *, arch: str | None = None, **source_kw: Any) -> Experiment:
    """Experiment A: one architecture trained on the class lists of :func:`growing_share`; the
    reference is ``reference`` restricted to ``target``. Shares and labels come from the lists
    and the dataset's class names."""
    reference = reference.replace(classes=tuple(target))
    names = dataset_for(reference.replace(classes=None, n_train=2, n_test=2), "test").classes
    target_names = [names[c] for c in target]
    sources = []
    for classes in growing_share(target, other):
        src_names = [names[c] for c in classes]
        cfg = reference.replace(classes=classes, arch=arch or reference.arch, **source_kw)
        sources.append(Source(share_label(src_names, target_names, classes), cfg,
                              class_share(src_names, target_names)))
    return Experiment(name, reference, tuple(sources),
                      f"{reference.dataset}: {arch or reference.arch} sources with a growing "
                      f"share of the target classes {target_names}")


def experiment_b(name: str, reference: ModelConfig, target: Sequence[int],
                 source_classes: Sequence[int], archs: Mapping[str, int]) -> Experiment:
    """Experiment B: sources of several architectures (``arch -> epochs``) trained on
    ``source_classes``; the reference is ``reference`` restricted to ``target``."""
    if set(target) & set(source_classes):
        raise ValueError("experiment B's source and target classes must be disjoint; got "
                         f"{list(source_classes)} and {list(target)}.")
    reference = reference.replace(classes=tuple(target))
    sources = tuple(Source(arch, reference.replace(arch=arch, epochs=epochs,
                                                   classes=tuple(source_classes)))
                    for arch, epochs in archs.items())
    return Experiment(name, reference, sources,
                      f"{reference.dataset}: {len(sources)} architectures trained on classes "
                      f"{list(source_classes)}, target classes {list(target)}")


@dataclass(frozen=True)
class Settings:
    """The measurement: attack ("pgd" or "fgsm", L∞ ``eps``; PGD ``steps`` of
    ``step_fraction``·eps with a random start), the number of α images, the probe, and the
    direction of α (:data:`~advlens.transfer.ALPHA_DIRECTIONS`: "source-to-reference", the
    protocol's S → T, or "reference-to-source", T → S as their adv2know.py measured the
    published experiment-B α₁)."""

    attack: str = "pgd"
    eps: float = 0.1
    steps: int = 50
    step_fraction: float = 0.1
    n_images: int = 500
    probe: str = "linear"
    probe_epochs: int = 30
    probe_lr: float = 1e-2
    probe_recipe: str = "adamw"
    val_fraction: float = 0.2
    squared_alpha2: bool = False
    batch_size: int = 256
    direction: str = "source-to-reference"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a bad choice at once: :func:`run_experiment` would otherwise load (or train)
        every model and run every attack of a seed before the probe met it."""
        if self.attack not in ("pgd", "fgsm"):
            raise ValueError(f"attack must be 'pgd' or 'fgsm'; got {self.attack!r}.")
        if self.probe not in ("linear", "finetune"):
            raise ValueError(f"probe must be 'linear' or 'finetune'; got {self.probe!r}.")
        if self.direction not in ALPHA_DIRECTIONS:
            raise ValueError(f"direction must be one of {ALPHA_DIRECTIONS}; got "
                             f"{self.direction!r}.")
        if self.probe_recipe not in probes.RECIPES:
            raise ValueError(f"probe_recipe must be one of {probes.RECIPES}; got "
                             f"{self.probe_recipe!r}.")
        if self.probe_recipe == "lbfgs" and self.probe == "finetune":
            raise ValueError("probe_recipe 'lbfgs' fits a linear probe; probe 'finetune' "
                             "takes 'adamw' or 'liang'.")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1); got {self.val_fraction}.")
        for name in ("eps", "step_fraction", "probe_lr"):  # 0: no attack, or no probe training
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}.")
        for name in ("steps", "n_images", "probe_epochs", "batch_size"):
            check_positive_int(getattr(self, name), name)
        check_bool(self.squared_alpha2, "squared_alpha2")

    def make_attack(self, seed: int, model: str | None = None) -> TransferAttack:
        """The attack, its random start drawn from ``seed`` — and, given a ``model`` name, from
        a stream of that model's own (:func:`model_seed`), the same whichever other models
        are attacked and in which order."""
        if self.attack == "fgsm":
            return liang_fgsm(self.eps)
        if self.attack != "pgd":
            raise ValueError(f"attack must be 'pgd' or 'fgsm'; got {self.attack!r}.")
        stream = seed if model is None else model_seed(seed, model)
        return liang_pgd(self.eps, self.steps, self.step_fraction,
                         generator=torch.Generator().manual_seed(stream))


def model_seed(seed: int, model: str) -> int:
    """A seed for ``model``'s own random stream under ``seed``: the first 8 bytes of
    SHA-256("<seed>/<model>"), stable across processes and machines (``hash()`` is salted)."""
    return name_seed(seed, model)


def knowledge_transfer(source: nn.Module, train: ImageSet, test: ImageSet,
                       settings: Settings, seed: int) -> dict[str, float]:
    """Probe ``source`` on the target task: fit on ``train`` minus a stratified validation split
    (which picks the epoch, or with ``probe_recipe`` "lbfgs" the weight decay), report the
    accuracy on ``test``."""
    tr, val = probes.train_val_split(train.labels, settings.val_fraction, seed=seed)
    fit = probes.fine_tune if settings.probe == "finetune" else probes.linear_probe
    if settings.probe not in ("linear", "finetune"):
        raise ValueError(f"probe must be 'linear' or 'finetune'; got {settings.probe!r}.")
    result = fit(source, train.images[tr], train.labels[tr], train.images[val],
                 train.labels[val], num_classes=train.num_classes, epochs=settings.probe_epochs,
                 lr=settings.probe_lr, seed=seed, recipe=settings.probe_recipe)
    # (recipe "lbfgs": probe_epoch is its L-BFGS iterations, probe_weight_decay the one the
    # validation split chose, probe_converged whether that fit converged; NaN / None otherwise)
    return {"transfer_acc": accuracy(result.model, test.images, test.labels),
            "probe_val_acc": result.val_acc, "probe_epoch": result.best_epoch,
            "probe_weight_decay": (math.nan if result.weight_decay is None
                                   else result.weight_decay),
            "probe_converged": result.converged}


def evaluate_sources(reference: nn.Module, sources: Mapping[str, nn.Module], train: ImageSet,
                     test: ImageSet, settings: Settings, seed: int = 0) -> pd.DataFrame:
    """α₁, α₂, combined and knowledge transfer of every source against ``reference``.

    α images: the first ``settings.n_images`` test images the reference classifies correctly;
    every model is attacked once, against its own prediction, its random start drawn from a
    stream of its own (``settings.make_attack(seed, name)``). ``settings.direction``
    "source-to-reference": each source attacked, the reference read (the pairs (source,
    reference) of :func:`~advlens.transfer.alpha_table`); "reference-to-source": the reference
    attacked, each source read (the pairs (reference, source), as their adv2know.py).
    Returns one row per source.
    """
    if REFERENCE in sources:
        raise ValueError(f"a source may not be named {REFERENCE!r}.")
    correct = predict(reference, test.images).argmax(1) == test.labels
    idx = correct.nonzero().flatten()[:settings.n_images]
    if len(idx) == 0:
        raise ValueError(f"the reference classifies none of the {len(test.labels)} test images "
                         "correctly, so α₁ and α₂ have no images; train it longer (or check "
                         "that the test labels are the reference's classes, relabelled 0..k-1).")
    perturbations = Perturbations({REFERENCE: reference, **sources}, test.images[idx],
                                  attack_for=lambda name: settings.make_attack(seed, name),
                                  batch_size=settings.batch_size)
    pairs = [(name, REFERENCE) if settings.direction == "source-to-reference"
             else (REFERENCE, name) for name in sources]
    table = alpha_table(perturbations, pairs, squared=settings.squared_alpha2)
    rows = []
    for (name, model), row in zip(sources.items(), table.to_dict("records"), strict=True):
        rows.append({"source": name, "seed": seed, "n_alpha": row["n"],
                     "alpha1": row["alpha1"], "alpha2": row["alpha2"],
                     "combined": row["combined"],
                     **knowledge_transfer(model, train, test, settings, seed)})
    return pd.DataFrame(rows)


def run_experiment(experiment: Experiment, seeds: Sequence[int], settings: Settings, *,
                   root: str | None = None, progress: bool = False) -> pd.DataFrame:
    """:func:`evaluate_sources` for each seed, the reference (seed s) and the sources (seed
    s + :data:`SOURCE_SEED_OFFSET`) loaded from the zoo (trained and cached on first use).
    Adds experiment, share, arch and reference_acc to the rows."""
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one; got {seeds} (a repeated seed "
                         "reloads the same models and counts their numbers twice).")
    if experiment.probe_epochs is not None:
        settings = replace(settings, probe_epochs=experiment.probe_epochs)  # (checked there)
    frames = []
    for seed in tqdm(seeds, desc=experiment.name, disable=not progress, leave=False):
        ref_cfg = experiment.reference.replace(seed=seed)
        device = training_device()
        reference = zoo.load(ref_cfg, root, progress=progress).model.to(device)
        train, test = dataset_for(ref_cfg, "train"), dataset_for(ref_cfg, "test")
        models = {s.label: zoo.load(s.config.replace(seed=seed + SOURCE_SEED_OFFSET), root,
                                    progress=progress).model.to(device)
                  for s in experiment.sources}
        frame = evaluate_sources(reference, models, train, test, settings, seed)
        frame.insert(0, "experiment", experiment.name)
        frame["share"] = [s.share for s in experiment.sources]
        frame["arch"] = [s.config.arch for s in experiment.sources]
        frame["reference_acc"] = accuracy(reference, test.images, test.labels)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _t_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Student-t interval of the mean (NaN for fewer than two values)."""
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = scipy_stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return float(values.mean() - half), float(values.mean() + half)


def probe_fits(rows: pd.DataFrame) -> str:
    """One line on the probes behind ``rows`` (:func:`run_all`'s): with recipe "lbfgs" how many
    fits converged and which weight decays the validation splits chose; else the epochs kept."""
    if rows.empty:
        return "no probes were fitted"
    decays = rows["probe_weight_decay"].to_numpy(float) if "probe_weight_decay" in rows else []
    if len(decays) and not np.isnan(decays).any():
        converged = int(rows["probe_converged"].astype(bool).sum())
        chosen = ", ".join(f"{decay:g} × {count}" for decay, count in
                           sorted(pd.Series(decays).value_counts().items()))
        return (f"{converged} of {len(rows)} probes (logistic regressions, L-BFGS) converged; "
                f"weight decays chosen on validation: {chosen}")
    epochs = rows["probe_epoch"]
    return (f"{len(rows)} probes trained by epochs; the epoch kept ranged "
            f"{int(epochs.min())}-{int(epochs.max())}")


def summarize(rows: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Per (experiment, source), in the order of ``rows``: the mean of each metric over seeds
    and a Student-t ``level`` CI clipped to the metric's range (:data:`RANGES`); with 3 seeds
    the interval is wide, but it is the honest one — a bootstrap over 3 values cannot reach
    beyond their range."""
    out = []
    for (experiment, source), g in rows.groupby(["experiment", "source"], sort=False):
        row: dict[str, Any] = {"experiment": experiment, "source": source, "n_seeds": len(g),
                               "share": g["share"].iloc[0], "arch": g["arch"].iloc[0]}
        for metric in METRICS:
            values = g[metric].to_numpy(dtype=np.float64)
            lo, hi = np.clip(_t_interval(values, level), *RANGES[metric])
            row |= {metric: float(values.mean()), f"{metric}_lo": float(lo),
                    f"{metric}_hi": float(hi)}
        out.append(row)
    return pd.DataFrame(out)


def _spearman(pairs: np.ndarray) -> float:
    if np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return float("nan")
    return float(scipy_stats.spearmanr(pairs[:, 0], pairs[:, 1]).statistic)


def correlations(rows: pd.DataFrame, *, metrics: Sequence[str] = ("alpha1", "alpha2", "combined"),
                 n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Spearman ρ between knowledge transfer and each adversarial-transferability metric, per
    experiment, over the (source, seed) points. Our addition: the paper shows bars and tables,
    no correlation coefficient.

    The seeds of one source share its classes and architecture, so its points are not
    independent draws: the percentile-bootstrap CI resamples whole sources (with all their
    seeds) and the two-sided permutation ``p`` (:func:`advlens.stats.permutation_p`, exact up
    to 9,999 pairings) pairs whole sources' α with other sources' transfer, seed by seed (in
    the order of the ``seed`` column, not of the rows: a seed's points share its reference
    model); with unequal seed counts it pairs points (noted as ``p_over`` "points"), which are
    not independent, so such a ρ is not ``testable``.

    ``holds`` = the CI lies above 0 and the exact test puts ρ *above* its pairings: the
    one-sided ``p_greater`` (the same pairings) is below (1 − ``level``)/2, i.e. ``p`` is below
    1 − ``level`` on the positive side. (A percentile CI alone is liberal with few sources; and
    the pairings keep each seed's shared shift, so their ρ need not centre on 0: a pooled ρ
    above 0 over sources that rank the wrong way within every seed has a small two-sided ``p``
    from below.) Only over sources some pairing of which would be significant at ``level``
    (``testable``: every source with the same number of seeds, at least
    :func:`advlens.stats.min_testable_points` sources, 5 at 0.95, and not so many sources tied
    that no pairing of them is, :func:`advlens.stats.min_group_permutation_p`); NaN CIs
    mean too few or tied points. Columns: experiment, metric, rho, lo, hi, p, p_greater,
    n (points), n_sources, p_over, testable, holds.
    """
    if isinstance(metrics, str):  # its letters were taken as columns ("['a'] not in index")
        raise ValueError(f"metrics must be a list of column names, not the string {metrics!r}; "
                         f"pass [{metrics!r}].")
    metrics = list(metrics)  # once: a generator was used up by the first experiment
    missing = [m for m in [*metrics, "transfer_acc"] if m not in rows.columns]
    if missing:
        raise ValueError(f"rows lack column(s) {missing}; they have {list(rows.columns)}.")
    out = []
    for experiment, g in rows.groupby("experiment", sort=False):
        if "seed" in g:  # seed k meets seed k (one reference model), whatever the row order
            g = g.sort_values("seed", kind="stable")
        sources = g["source"].to_numpy()
        n_sources = len(pd.unique(sources))
        # the permutation test pairs whole sources only when each has the same seeds
        equal = g.groupby("source", sort=False).size().nunique() == 1
        for metric in metrics:
            pairs = g[[metric, "transfer_acc"]].to_numpy(dtype=np.float64)
            rho = _spearman(pairs)
            lo = hi = p = p_up = float("nan")
            tested = False
            if len(pairs) >= 3 and np.isfinite(rho):
                est = bootstrap_ci(pairs, statistic=_spearman, n_boot=n_boot, level=level,
                                   seed=seed, groups=sources)
                lo, hi = est.lo, est.hi
                p, p_up = (permutation_p(pairs[:, 0], pairs[:, 1], rank=True, seed=seed,
                                         alternative=side, groups=sources if equal else None)
                           for side in ("two-sided", "greater"))
                # the test pairs whole sources: some pairing of them must be able to reach the
                # level (sources tied in every seed leave fewer distinct pairings than the
                # points'); with unequal seed counts it pairs points, which are not
                # independent (one row dropped turned p 0.033 into 0.0002): not tested
                tested = (equal and n_sources >= min_testable_points(level)
                          and below_alpha(min_group_permutation_p(
                              pairs[:, 0], pairs[:, 1], sources, rank=True), level))
            out.append({"experiment": experiment, "metric": metric, "rho": rho, "lo": lo,
                        "hi": hi, "p": p, "p_greater": p_up, "n": len(pairs),
                        "n_sources": n_sources, "p_over": "sources" if equal else "points",
                        "testable": tested,
                        # one-sided: a two-sided p < 0.05 from below (sources ranked the wrong
                        # way within each seed, under a pooled ρ > 0) is no evidence for the
                        # claim; rounded: (1 − 0.95)/2 is 0.025000000000000022, above 3/120
                        "holds": bool(lo > 0 and p_up < round((1.0 - level) / 2, 12)
                                      and tested)})
    return pd.DataFrame(out)


def paper_table(summary: pd.DataFrame, experiment: str = "B-cifar10-stl10") -> pd.DataFrame:
    """The paper's reported experiment-B numbers (knowledge transfer, α₁) per architecture,
    beside ours from ``experiment`` of ``summary`` where it has that architecture (NaN
    otherwise: only the paper preset runs the paper's architectures on CIFAR-10 → STL-10).

    The α₁ columns are one measurement only with the knobs ``alpha_direction =
    "reference-to-source"``, ``alpha_attack = "pgd"``, ``steps = 1`` and ``step_fraction = 1``:
    the published ones come from their ``adv2know.py`` run with ``--attack fgsm`` (cmd.sh),
    which attacks the reference and reads the source (α₁ of T → S), and their FGSM starts from
    a random point of the ball and clips its one step back to it (``transfer.liang_fgsm``, the
    knob ``"fgsm"``, is a plain FGSM from x); by default ours follow the protocol (PGD, S → T).
    The networks differ too (see :func:`paper_experiments`): the reference is the knob
    ``b_reference_arch`` (the preset's ``resnet50-cifar``, the one their cmd.sh trains), where
    their adv2know.py loads a ResNet-18 (stl10_resnet18.pth)."""
    ours = summary[summary["experiment"] == experiment].set_index("source")
    out = pd.DataFrame({"arch": PAPER_ARCHS,
                        "paper_transfer_acc": [PAPER_B_TRANSFER[a] for a in PAPER_ARCHS],
                        "paper_alpha1": [PAPER_B_ALPHA1[a] for a in PAPER_ARCHS]})
    for metric in ("transfer_acc", "alpha1"):
        values = ours[metric] if metric in ours else pd.Series(dtype=float)
        out[metric] = out["arch"].map(values).astype(float)
    return out


def _untested(r: Any) -> str:
    """Why a :func:`correlations` row was not tested, for the evidence text."""
    if not np.isfinite(r.rho):
        return " (ρ undefined: a NaN value, or one side constant)"
    if getattr(r, "p_over", "sources") == "points":
        return (" (not testable: the sources have unequal numbers of seeds, so the test cannot "
                "pair whole sources)")
    if min(r.n, getattr(r, "n_sources", r.n)) < min_testable_points():
        return f" (too few to test: {min_testable_points()} sources needed)"
    return (" (too few to test: no pairing of these sources is significant at the CI's level; "
            "sources tied in every seed leave fewer)")


PAPER_CLAIM = ("sources with higher adversarial transferability to the reference transfer "
               "knowledge better (bars and tables; no correlation coefficient reported)")


def findings(summary: pd.DataFrame, corr: pd.DataFrame) -> pd.DataFrame:
    """The claim checked per experiment and α (one row each): ``holds`` = the bootstrap CI of
    Spearman ρ(knowledge transfer, α) lies above 0 and its permutation test puts ρ above its
    pairings at one-sided p < 0.025 (:func:`correlations`' ``holds``; our decision rule; None
    when the CI is undefined or rests on points no ordering of which is significant: fewer than
    :func:`advlens.stats.min_testable_points`, 5 for 95 % CIs, or too many ties; the
    ``testable`` column of :func:`correlations`). ``evidence`` gives ρ [CI], the number of
    (source, seed) points and the best source by each measure; ``statistics`` the headline
    numbers (see :func:`advlens.findings.encode_statistics`).

    Returns a findings table: finding, holds, evidence, paper, statistics.
    """
    rows = []
    for r in corr[corr["metric"].isin(["alpha1", "alpha2"])].itertuples():
        g = summary[summary["experiment"] == r.experiment]
        best = {m: g.loc[g[m].idxmax(), "source"] for m in ("transfer_acc", r.metric)}
        name = {"alpha1": "α₁", "alpha2": "α₂"}[r.metric]
        # too few points: correlations()'s ``testable`` at its own CI level (6 points at 0.99;
        # ties leave fewer orderings); a table without it: fewer than 5, or a CI above 0 that
        # it did not count as holding
        tested = getattr(r, "testable", None)
        enough = (bool(r.holds) or (r.n >= min_testable_points() and not r.lo > 0)
                  if tested is None or pd.isna(tested) else bool(tested))
        defined = bool(np.isfinite(r.lo) and np.isfinite(r.hi) and enough)
        rows.append({
            "finding": f"{r.experiment}: knowledge transfer rises with {name}",
            "holds": bool(r.holds) if defined else None,
            "evidence": (f"Spearman ρ {r.rho:.3f} [{r.lo:.3f}, {r.hi:.3f}]"
                         + (f", permutation p {r.p:.3g}" if np.isfinite(getattr(r, "p", np.nan))
                            else "")
                         + (f" (one-sided, ρ above its pairings: {r.p_greater:.3g})"
                            if np.isfinite(getattr(r, "p_greater", np.nan)) else "")
                         + f" over {r.n} (source, seed) points"
                         + (f" of {r.n_sources} sources" if hasattr(r, "n_sources") else "")
                         + ("" if enough and np.isfinite(r.rho) else _untested(r))
                         + f"; best transfer `{best['transfer_acc']}` "
                         f"({g['transfer_acc'].max():.3f}), highest {name} "
                         f"`{best[r.metric]}` ({g[r.metric].max():.3f})"),
            "paper": PAPER_CLAIM,
            "statistics": encode_statistics({"rho": r.rho, "rho_lo": r.lo, "rho_hi": r.hi,
                                             **({"p": r.p} if hasattr(r, "p") else {})}),
        })
    return pd.DataFrame(rows)


# --- notebook 04: from the preset's knobs ----------------------------------------------------

def settings_from_knobs(knobs: Mapping[str, Any]) -> Settings:
    """The :class:`Settings` named by notebook 04's knobs."""
    return Settings(attack=knobs["alpha_attack"], eps=float(knobs["eps"]),
                    steps=int(knobs["steps"]), step_fraction=float(knobs["step_fraction"]),
                    n_images=int(knobs["n_images"]), probe=knobs["probe"],
                    probe_epochs=int(knobs["probe_epochs"]), probe_lr=float(knobs["probe_lr"]),
                    probe_recipe=knobs["probe_recipe"],
                    val_fraction=float(knobs["val_fraction"]),
                    squared_alpha2=bool(knobs["squared_alpha2"]),
                    batch_size=int(knobs["batch_size"]), direction=knobs["alpha_direction"])


def check_data(knobs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Fail at once when the paper preset's data are missing (FileNotFoundError naming the
    variable, the path and what to download); returns each real data set's loader kwargs.
    The embedded data sets need nothing. The folders found are exported as
    ``$ADVLENS_CIFAR10`` / ``$ADVLENS_STL10``, where the zoo reads its training data."""
    if knobs["liang_data"] == "embedded":
        return {}
    from advlens.data import cifar10, stl10
    from advlens.data.sources import require

    found = {"cifar10": require("cifar10", knobs["cifar_kw"]),
             "stl10": require("stl10", knobs["stl10_kw"])}
    cifar10("test", n=1, **found["cifar10"])  # readable, not merely present
    stl10("test", n=1, **found["stl10"])
    for name, kw in found.items():
        if kw.get("root"):
            os.environ[f"ADVLENS_{name.upper()}"] = str(kw["root"])
    return found


@contextmanager
def _naming(knobs: Mapping[str, Any], *names: str) -> Iterator[None]:
    """A ValueError raised inside, raised again naming notebook 04's knob(s) ``names`` and their
    values (the model config's own message said "unknown arch" or "classes must be ...", not
    which knob held it)."""
    try:
        yield
    except ValueError as err:
        given = " and ".join(f"{name!r} = {knobs[name]!r}" for name in names)
        raise ValueError(f"knob{'s' * (len(names) > 1)} {given}: {err}") from err


def check_knobs(knobs: Mapping[str, Any]) -> None:
    """Fail before any model trains, naming the knob, on what the model configs would refuse
    later without naming it: an unknown architecture (``arch``; ``b_reference_arch`` and the
    keys of ``b_archs`` where experiment B runs), a class list of experiment A (``a_target``,
    ``a_other``) or B (``b_source``, ``b_target``) that is not >= 2 distinct classes of the
    data (the embedded data only: the paper preset's lists are fixed), and experiment B
    without a source (``b_archs = {}`` ran and left B out of every table)."""
    wanted = list(knobs["experiments"])
    b = any(name.startswith("B-") for name in wanted)
    for name in ("arch", *(("b_reference_arch",) if b else ())):
        with _naming(knobs, name):
            ModelConfig(knobs[name])
    if b:
        if not knobs["b_archs"]:
            raise ValueError(f"knob 'b_archs' = {knobs['b_archs']!r} gives experiment B no "
                             "source; name at least one architecture with its epochs, like "
                             "{'mlp-s': 30}, or leave the B experiment out of 'experiments'.")
        for arch in knobs["b_archs"]:
            with _naming(knobs, "b_archs"):
                ModelConfig(arch)
    if knobs["liang_data"] != "embedded":
        return
    lists = ((("a_target", "a_other") if any(n.startswith("A-") for n in wanted) else ())
             + (("b_source", "b_target") if b else ()))
    for name in lists:
        with _naming(knobs, name):
            ModelConfig(knobs["arch"], classes=tuple(knobs[name]))


def experiments_from_knobs(knobs: Mapping[str, Any]) -> list[Experiment]:
    """Notebook 04's experiments on the embedded data: "A-digits", "A-twin-cue" (class subsets)
    and "B-digits" (zoo families), as listed in ``knobs["experiments"]``; a bad knob fails
    naming it (:func:`check_knobs`)."""
    check_knobs(knobs)
    if knobs["liang_data"] == "cifar10-stl10":
        return paper_experiments(knobs)
    common = {"batch_size": int(knobs["train_batch_size"])}
    digits_ref = ModelConfig(knobs["arch"], epochs=int(knobs["epochs"]),
                             n_train=knobs["digits_n_train"], **common)
    twin_ref = ModelConfig(knobs["arch"], dataset="twin-cue", variant="both",
                           epochs=int(knobs["twin_epochs"]), n_train=knobs["twin_n_train"],
                           n_test=knobs["twin_n_test"], **common)
    makers = {
        "A-digits": lambda: experiment_a("A-digits", digits_ref, knobs["a_target"],
                                         knobs["a_other"]),
        "A-twin-cue": lambda: experiment_a("A-twin-cue", twin_ref, knobs["a_target"],
                                           knobs["a_other"]),
        "B-digits": lambda: replace(experiment_b(
            "B-digits", digits_ref.replace(arch=knobs["b_reference_arch"]), knobs["b_target"],
            knobs["b_source"], knobs["b_archs"]), probe_epochs=knobs["b_probe_epochs"]),
    }
    assert tuple(makers) == EXPERIMENTS["embedded"]  # (the names the knob check offers)
    unknown = sorted(set(knobs["experiments"]) - set(makers))
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {sorted(makers)}.")
    knobs_of = {"A": ("a_target", "a_other"), "B": ("b_source", "b_target")}
    made = []
    for name in knobs["experiments"]:
        with _naming(knobs, *knobs_of[name[0]]):  # lists not disjoint, or of unequal lengths
            made.append(makers[name]())
    return made


def paper_experiments(knobs: Mapping[str, Any]) -> list[Experiment]:
    """The paper's CIFAR-10 → STL-10 experiments: A — ``knobs["arch"]`` trained on each of
    :data:`PAPER_SOURCES` (shares = fraction of animal classes, from the CIFAR-10 names), its
    reference ``arch`` trained on the STL-10 classes :data:`PAPER_TARGET`; B — the ``b_archs``
    (arch -> epochs) trained on all of CIFAR-10, its reference ``b_reference_arch`` trained on
    all ten STL-10 classes (their cmd.sh: ``train_clf.py -d stl10 -a res_net50`` and
    ``adv2know.py -d stl10 --include_list 0 … 9``; the published 28.3 % of fcnet is a ten-class
    accuracy; their adv2know.py itself loads a ``res_net18`` reference, stl10_resnet18.pth).
    STL-10 is resized to 32×32.
    Every model is trained as their ``train_clf.py`` does (:data:`PAPER_TRAINING`): SGD with
    momentum 0.9 at learning rate 0.1, cosine-annealed to 0, weight decay 10⁻⁴, random crops
    after 4 pixels of padding and horizontal flips; the networks are theirs (``fcnet`` of their
    ``models/fc.py``, ``lenet`` as their ``le_net``, the CIFAR-stem ``resnet18-cifar`` /
    ``resnet50-cifar`` of their ``models/resnet.py``) but for ``alexnet``, a CIFAR AlexNet
    whose match with their ``models/alexnet.py`` is unchecked (that file is not published with
    the rest). Training runs on ``$ADVLENS_DEVICE``. Deviations: the momentum is
    Nesterov's and the cosine steps per batch, not per epoch; each model normalises by its
    training images' per-channel mean and std, not by 0.5 / 0.5; the epochs and batch size are
    the knobs ``epochs`` / ``b_archs`` and ``train_batch_size`` (the preset: their 100 and
    64)."""
    from advlens.data.cifar import CLASSES as CIFAR
    from advlens.data.stl10 import CLASSES as STL

    common = {"batch_size": int(knobs["train_batch_size"]), "epochs": int(knobs["epochs"]),
              **PAPER_TRAINING}
    target = tuple(STL.index(name) for name in PAPER_TARGET)
    reference = ModelConfig(knobs["arch"], dataset="stl10", classes=target, **common)
    reference_b = ModelConfig(knobs["b_reference_arch"], dataset="stl10", **common)  # 10 classes
    sources_a = []
    for classes in PAPER_SOURCES:
        names = [CIFAR[c] for c in classes]
        sources_a.append(Source(share_label(names, ANIMALS, word="animal"),
                                ModelConfig(knobs["arch"], dataset="cifar10", classes=classes,
                                            **common), class_share(names, ANIMALS)))
    sources_b = tuple(Source(arch, ModelConfig(arch, dataset="cifar10",
                                               **{**common, "epochs": int(epochs)}))
                      for arch, epochs in knobs["b_archs"].items())
    made = {"A-cifar10-stl10": Experiment("A-cifar10-stl10", reference, tuple(sources_a),
                                          "CIFAR-10 class subsets -> STL-10 animals"),
            "B-cifar10-stl10": Experiment("B-cifar10-stl10", reference_b, sources_b,
                                          "architectures on CIFAR-10 -> STL-10 (ten classes)",
                                          probe_epochs=knobs["b_probe_epochs"])}
    assert tuple(made) == EXPERIMENTS["cifar10-stl10"]  # (the names the knob check offers)
    unknown = sorted(set(knobs["experiments"]) - set(made))
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {sorted(made)}.")
    return [made[name] for name in knobs["experiments"]]


def experiment_table(experiments: Sequence[Experiment]) -> pd.DataFrame:
    """One row per source: experiment, label, architecture, classes, share (of target classes;
    of animal classes in the paper's experiment A), and the reference's classes (what notebook
    04 shows before running)."""
    return pd.DataFrame([{"experiment": e.name, "source": s.label, "arch": s.config.arch,
                          "dataset": s.config.dataset, "classes": list(s.config.classes or ()),
                          "share": s.share, "reference": e.reference.name}
                         for e in experiments for s in e.sources])


def run_all(experiments: Sequence[Experiment], seeds: Sequence[int], settings: Settings, *,
            root: str | None = None, progress: bool = False) -> pd.DataFrame:
    """:func:`run_experiment` for each experiment, one table."""
    return pd.concat([run_experiment(e, seeds, settings, root=root, progress=progress)
                      for e in experiments], ignore_index=True)
