"""Linsley et al. (2023), "Adversarial alignment", on a set of models.

- :func:`attack_alignment` — per image: the attack tolerance (the minimal-eps L2 PGD search of
  :func:`advlens.attacks.minimal_eps_pgd`, or DDN's minimal L2 norm) and the Spearman alignment
  of the successful perturbation with an importance map. Images never broken are kept and
  flagged (``broken`` False, ``tolerance`` inf), never dropped.
- :func:`summarize`, :func:`model_table` — per model and attack: accuracy, mean tolerance over
  broken images, share not broken, mean alignment ± s.e.
- :func:`rank_correlation` — Spearman ρ across models with a bootstrap CI over models.
- :func:`twin_pairs`, :func:`twin_arrows` — each plain model and its harmonized twin.
- :func:`cue_reliance` — the twin-cue ground truth: accuracy on ``a-only``/``b-only`` images and
  the share of |saliency| on the shape vs the grating mask.
- :func:`findings` — the paper's claims checked with fixed decision rules.

Published models see the images through their own mean/std normalisation
(:class:`advlens.zoo.published.NormalizedClassifier`). Linsley et al.'s attack code fed the
[0, 1] ClickMe images to the timm models without it (their Colab output: vgg11 right on 326 of
1,000 images, against a top-1 of about 69 %), so tolerances and ρ at the paper preset are not
comparable number for number with the published ones.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest, spearmanr
from torch import Tensor, nn

from advlens import attacks
from advlens.alignment import saliency, spearman_alignment
from advlens.checks import as_tensor, check_images, check_labels, check_positive_int, images_for
from advlens.data import ImageSet, twin_cue
from advlens.features import accuracy, predict
from advlens.findings import all_of, combine, encode_statistics
from advlens.resample import images_to_side, maps_to_side, model_sides
from advlens.stats import (
    Estimate,
    below_alpha,
    bootstrap_ci,
    min_sign_pairs,
    min_testable_points,
    permutation_p,
    testable,
)
from advlens.zoo.config import ModelConfig
from advlens.zoo.paper import input_side

ATTACKS = ("pgd", "ddn")


def run_attack(model: nn.Module, x: Tensor, y: Tensor, attack: str, *,
               ddn_steps: int = 100) -> tuple[Tensor, Tensor, Tensor]:
    """(adversarial images, tolerance, broken) of one batch. ``pgd``: Linsley et al.'s search
    (tolerance = smallest eps that fooled, inf if none); ``ddn``: DDN with ``ddn_steps`` steps
    (tolerance = the L2 norm of its minimal adversarial, inf if none)."""
    if attack == "pgd":
        result = attacks.minimal_eps_pgd(model, x, y, progress=False)
        assert result.eps is not None
        tolerance = result.eps
    elif attack == "ddn":
        # DDN judges each iterate at the next step: one step never judges the one it takes
        ddn_steps = check_positive_int(ddn_steps, "ddn_steps", least=2)
        result = attacks.minimal_l2(model, x, y, method="ddn", budget=ddn_steps + 1)
        tolerance = result.norms
    else:
        raise ValueError(f"attack must be one of {ATTACKS}; got {attack!r}.")
    broken = result.success.clone()
    return result.adv, torch.where(broken, tolerance, torch.full_like(tolerance, np.inf)), broken


def attack_alignment(model: nn.Module, x: Tensor, y: Tensor, maps: Tensor, *,
                     attack: str = "pgd", ddn_steps: int = 100, batch_size: int = 128
                     ) -> pd.DataFrame:
    """Per image: ``tolerance``, ``broken``, ``l2`` (||adv − x||₂) and ``alignment`` (Spearman ρ
    of the perturbation with ``maps``; NaN where not broken).

    Parameters
    ----------
    model : classifier on [0, 1] images. x, y : images the model classifies correctly (see
    :func:`correct`). maps : (N, 1, H, W) or (N, H, W) importance maps. attack : "pgd" or "ddn".

    Returns
    -------
    DataFrame with one row per image, in order (column ``image`` = position in ``x``).
    """
    x = as_tensor(x, "x")
    if x.shape[0] == 0:  # e.g. a model that gets no image of the pool right
        return pd.DataFrame({"image": np.zeros(0, int), "tolerance": np.zeros(0),
                             "broken": np.zeros(0, bool), "l2": np.zeros(0),
                             "alignment": np.zeros(0)})
    # the images the attack runs on (float64 ones become float32 for a float32 model): the
    # perturbation is measured from them, not from images that rounding already moved
    x = images_for(model, check_images(x, "x"))
    y = check_labels(y, x.shape[0], "y")
    maps = as_tensor(maps, "maps")
    if maps.shape[0] != x.shape[0]:
        raise ValueError(f"maps has {maps.shape[0]} maps for {x.shape[0]} images.")
    if tuple(maps.shape[-2:]) != tuple(x.shape[-2:]):  # (it failed after the first batch)
        raise ValueError(f"maps are {tuple(maps.shape[-2:])} and the images "
                         f"{tuple(x.shape[-2:])}: resize the maps to the images' size "
                         "(advlens.resample.maps_to_side) before attacking.")
    rows = []
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        adv, tolerance, broken = run_attack(model, xb, yb, attack, ddn_steps=ddn_steps)
        delta = (adv.to(xb.device) - xb).detach()
        rho = spearman_alignment(delta, maps[start:start + batch_size].to(xb.device))
        rho = torch.where(broken.to(rho.device), rho, torch.full_like(rho, np.nan))
        rows.append(pd.DataFrame({
            "image": np.arange(start, start + xb.shape[0]),
            "tolerance": tolerance.detach().double().cpu().numpy(),
            "broken": broken.cpu().numpy().astype(bool),
            "l2": delta.flatten(1).norm(dim=1).double().cpu().numpy(),
            "alignment": rho.cpu().numpy()}))
    return pd.concat(rows, ignore_index=True)


def correct(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 512) -> Tensor:
    """Boolean mask of the images ``model`` classifies correctly."""
    logits = predict(model, x, batch_size=batch_size)
    return logits.argmax(1) == check_labels(y, logits.shape[0], "y",
                                            classes=logits.shape[1]).cpu()


def at_side(data: ImageSet, maps: Tensor, side: int | None) -> tuple[ImageSet, Tensor]:
    """``data`` and its ``maps`` resized to ``side``×``side`` as Linsley et al. feed a model of
    another input size (their ``main.py``: torchvision's bicubic ``Resize`` of the image and
    heatmap tensors alike, which in their torchvision did not antialias tensors: Keys' cubic
    with a = −0.75): images clamped to [0, 1] (their ``img_normalize`` min-max normalises each
    batch of 10 images instead, which would make one image's pixels depend on the others'),
    each map min-max normalised as theirs (:func:`~advlens.resample.maps_to_side`). Unchanged
    where ``side`` is None or already the images' side."""
    if side is None or tuple(data.images.shape[-2:]) == (side, side):
        return data, maps
    resized = maps_to_side(maps, side)
    masks = (None if data.masks is None else resized if data.masks is maps
             else maps_to_side(data.masks, side))  # ClickMe's maps are its masks: once
    images = images_to_side(data.images, side)
    return dataclasses.replace(data, images=images, masks=masks), resized


def summarize(per_image: pd.DataFrame) -> dict[str, float]:
    """One model under one attack: ``n_images``, ``not_broken`` (share never fooled: for
    ``pgd``, within the L2 distance its 3 steps of 0.5 can reach, 1.5 — see
    :func:`advlens.attacks.minimal_eps_pgd`), ``tolerance`` — the median tolerance over every
    attacked image, a never-broken one counted as beyond reach (+inf; the median is +inf where
    at least half are), the statistic of the claims and figures — and ``tolerance_mean``, the
    mean over the broken images (Linsley et al.'s "mean tolerance"; it drops exactly the images
    that resist, so a robust model's, resting on its easy images, can fall below a weaker
    model's), ``alignment`` mean ± s.e. over the broken images with a defined ρ, and
    ``n_alignment`` how many those are (an undefined ρ: a constant map or perturbation)."""
    broken = per_image[per_image["broken"]]
    rho = broken["alignment"].dropna().to_numpy()
    everyone = np.where(per_image["broken"].to_numpy(bool),
                        per_image["tolerance"].to_numpy(float), np.inf)
    return {"n_images": len(per_image), "not_broken": float(1.0 - per_image["broken"].mean())
            if len(per_image) else float("nan"),
            "tolerance": float(np.median(everyone)) if len(everyone) else float("nan"),
            "tolerance_mean": float(broken["tolerance"].mean()) if len(broken)
            else float("nan"),
            "alignment": float(rho.mean()) if len(rho) else float("nan"),
            "alignment_se": float(rho.std(ddof=1) / np.sqrt(len(rho))) if len(rho) > 1
            else float("nan"),
            "n_alignment": len(rho)}



def model_table(models: Mapping[str, nn.Module], data: ImageSet, maps: Tensor, *,
                accuracy: Mapping[str, float], attacks_: Sequence[str] = ATTACKS,
                n_images: int | None = None, ddn_steps: int = 100, batch_size: int = 128,
                seed: int = 0, sides: Mapping[str, int | None] | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tolerance and alignment of every model under every attack.

    ``n_images`` random images of ``data`` (all if None, drawn with ``seed``) form one pool;
    each model is attacked on those *it* classifies correctly, at its own input side where
    ``sides`` names one (:func:`at_side`: the pool and its maps resized). ``accuracy`` gives
    each model's clean test accuracy (the x axis of the paper's figures). Returns (summary: one
    row per model and attack, per-image rows with ``model`` and ``attack`` columns; their
    ``image`` is the image's index in ``data``, not its position in the pool).
    """
    if isinstance(attacks_, str):  # its letters were taken as attacks ("got 'd'")
        raise ValueError(f"attacks_ must be a list of attack names, not the string "
                         f"{attacks_!r}; pass [{attacks_!r}].")
    attacks_ = list(attacks_)  # once: a generator was used up by the first model
    pick = torch.arange(len(data))  # each pool image's index in data: the rows' `image`
    if n_images is not None and n_images < len(data):
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(data), generator=gen)[:n_images].sort().values
        data, maps = data.subset(pick), maps[pick]
    summary, per_image = [], []
    pool, pool_maps = data, maps
    sides = model_sides(sides, models)
    for name, model in models.items():
        data, maps = at_side(pool, pool_maps, sides.get(name))
        ok = correct(model, data.images, data.labels)
        x, y, m = data.images[ok], data.labels[ok], maps[ok]
        index = pick[ok].numpy()  # in data, not in the pool (03b's `image` is too)
        for attack in attacks_:
            rows = attack_alignment(model, x, y, m, attack=attack, ddn_steps=ddn_steps,
                                    batch_size=batch_size)
            rows = rows.assign(image=index[rows["image"].to_numpy()], model=name, attack=attack)
            per_image.append(rows)
            summary.append({"model": name, "attack": attack, "accuracy": accuracy[name],
                            **summarize(rows)})
    return pd.DataFrame(summary), pd.concat(per_image, ignore_index=True)


def rank_correlation(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *,
                     n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Spearman ρ of ``x`` and ``y`` across models (pairs with a non-finite value dropped),
    with a percentile bootstrap CI over models (:func:`advlens.stats.bootstrap_ci`)."""
    pairs = np.column_stack([np.asarray(x, float), np.asarray(y, float)])
    pairs = pairs[np.isfinite(pairs).all(axis=1)]
    if len(pairs) < 3:
        raise ValueError(f"rank_correlation needs >= 3 models with finite values; got "
                         f"{len(pairs)}.")
    return bootstrap_ci(pairs, statistic=lambda v: float(spearmanr(v[:, 0], v[:, 1])[0]),
                        n_boot=n_boot, seed=seed, level=level)


def plain_twin(config: ModelConfig) -> ModelConfig:
    """The plain (standard) twin of a harmonized config: the same config but the regime."""
    return config.replace(regime="standard", harmonizer_weight=0.0, importance_map=None)


def _twin_key(config: ModelConfig) -> ModelConfig:
    """What a twin shares: a published pair has two weights files, so not the checkpoint."""
    return config if config.source == "trained" else config.replace(checkpoint=None)


def twin_pairs(configs: Mapping[str, ModelConfig]) -> list[tuple[str, str]]:
    """(plain name, harmonized name) for every harmonized model in ``configs`` (name → config)
    whose plain twin is there too (for published models: the same arch, seed, tag and source,
    another checkpoint)."""
    by_config = {_twin_key(c): name for name, c in configs.items()}
    return [(by_config[_twin_key(plain_twin(c))], name) for name, c in configs.items()
            if c.regime == "harmonized" and _twin_key(plain_twin(c)) in by_config]


def twin_arrows(summary: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                value: str) -> pd.DataFrame:
    """One row per (pair, attack): accuracy and ``value`` of the plain model and of its
    harmonized twin (``*_plain``, ``*_harmonized``) and the change in ``value``."""
    rows = []
    table = summary.set_index(["model", "attack"])
    for plain, harm in pairs:
        for attack in summary["attack"].unique():
            if (plain, attack) not in table.index or (harm, attack) not in table.index:
                continue
            a, b = table.loc[(plain, attack)], table.loc[(harm, attack)]
            with np.errstate(invalid="ignore"):  # both beyond reach (inf − inf): no change, NaN
                change = b[value] - a[value]
            rows.append({"plain": plain, "harmonized": harm, "attack": attack,
                         "accuracy_plain": a["accuracy"], "accuracy_harmonized": b["accuracy"],
                         f"{value}_plain": a[value], f"{value}_harmonized": b[value],
                         "change": change})
    return pd.DataFrame(rows)


def saliency_share(model: nn.Module, x: Tensor, y: Tensor, masks: Tensor) -> Tensor:
    """(N, K) share of each image's saliency mass that falls on each of the K masks (N, K, H,
    W). The saliency is the largest |gradient| over colour channels
    (:func:`advlens.alignment.saliency` with ``channels="max-abs"``), the map Harmonization
    evaluates, not the signed channel mean its loss trains: a harmonized model can lower that
    mean on a coloured cue by gradients that cancel across channels, its sensitivity there
    unchanged (a review measured the shape's share of twin-cue cnn-s/harm at 0.47 by the mean,
    0.28 by max-abs; its plain twin 0.13 by either)."""
    sal = saliency(model, x, y, channels="max-abs")
    total = sal.flatten(1).sum(1).clamp_min(1e-30)
    return (sal[:, None] * masks.to(sal)).flatten(2).sum(2) / total[:, None]


def cue_reliance(models: Mapping[str, nn.Module], *, n: int = 1000, size: int = 32,
                 seed: int = 0, design: str = "independent") -> pd.DataFrame:
    """The twin-cue ground truth per model: test accuracy on ``both``, ``a-only`` (only the
    shape tells the class) and ``b-only`` (only the grating does) images; share of saliency
    (:func:`saliency_share`: the largest |gradient| over channels) on the shape mask and on the
    grating mask (mean over ``both`` test images, next to each
    mask's share of the image area for reference). The three variants share layouts and
    clutter, so accuracy differences come from the cue alone. ``design``: the twin-cue design
    the models were trained on ("independent" or "latent"; the images are of that design)."""
    data = {v: twin_cue("test", v, n=n, size=size, seed=seed, design=design)
            for v in ("both", "a-only", "b-only")}
    both = data["both"]
    assert both.masks is not None
    area = both.masks.flatten(2).mean(2).mean(0)
    rows = []
    for name, model in models.items():
        acc = {f"acc_{v}": accuracy(model, d.images, d.labels) for v, d in data.items()}
        share = saliency_share(model, both.images, both.labels, both.masks).mean(0)
        rows.append({"model": name, **acc, "saliency_shape": float(share[0]),
                     "saliency_grating": float(share[1]), "area_shape": float(area[0]),
                     "area_grating": float(area[1])})
    return pd.DataFrame(rows)


def qualitative(model: nn.Module, x: Tensor, y: Tensor, maps: Tensor, *,
                attack: str = "pgd", ddn_steps: int = 100) -> dict[str, Tensor]:
    """What the qualitative panel shows for a few images: the image, the map, |mean over
    channels of the perturbation| and |saliency|, each map scaled to peak 1; plus each image's
    Spearman alignment (NaN where not broken, as in :func:`attack_alignment`) and tolerance."""
    x = images_for(model, check_images(as_tensor(x, "x"), "x"))  # as the attack sees them
    adv, tolerance, broken = run_attack(model, x, y, attack, ddn_steps=ddn_steps)
    delta = (adv.to(x.device) - x).detach()
    rho = spearman_alignment(delta, maps).cpu()

    def peak(m: Tensor) -> Tensor:
        m = m.abs().detach().cpu()
        return m / m.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]

    return {"image": x.detach().cpu(), "map": peak(maps.reshape(x.shape[0], *x.shape[-2:])),
            "perturbation": peak(delta.mean(1)), "saliency": peak(saliency(model, x, y)),
            "alignment": torch.where(broken.cpu(), rho, torch.full_like(rho, np.nan)),
            "tolerance": tolerance.cpu(),
            "broken": broken.cpu()}


# the sign of each claimed trend against accuracy (Linsley et al.: tolerance grows, alignment
# falls): findings test it, and ``correlations`` asks whether that side can be tested;
# ``tolerance_mean`` is the paper's own statistic (mean over the broken images), reported beside
# the median the claims use
CLAIM_SIGNS = {"tolerance": +1, "tolerance_mean": +1, "alignment": -1}
# how trend lines and findings name each quantity of ``correlations``
QUANTITY_NAMES = {"tolerance": "median tolerance",
                  "tolerance_mean": "mean tolerance over the broken images (the paper's)",
                  "alignment": "alignment"}


def correlations(summary: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """ρ(accuracy, tolerance), ρ(accuracy, tolerance_mean) (Linsley et al.'s statistic, beside
    the median the claims use) and ρ(accuracy, alignment) across the models of ``summary``, per
    attack, with bootstrap CIs over models (rows: attack, quantity, rho, lo, hi, p, n_models,
    testable). ``p``: the two-sided permutation p of ρ (:func:`advlens.stats.permutation_p`;
    exact up to 7 models); ``testable``: whether some ordering of those models' values would be
    significant at 95 % on the side of the claim (:data:`CLAIM_SIGNS`),
    :func:`advlens.stats.testable` -- not with fewer than 5 models, nor where ties leave too
    few distinct orderings. ``p_family`` (where ``summary`` has a
    ``family`` column and a family has two models): the two-sided p of ρ with accuracies paired
    only within families (``strata``): the models of a family share its effects on accuracy and
    on tolerance, so ρ across families may be theirs alone (NaN otherwise). A tolerance of +inf
    (beyond the attack's reach) ranks above every finite one (:func:`beyond_reach_ranked`)."""
    rows = []
    for attack, part in summary.groupby("attack", sort=False):
        # (a summary written before ``tolerance_mean`` existed has none: its ρ is left out)
        for quantity in (q for q in CLAIM_SIGNS if q != "tolerance_mean" or q in part):
            both = part[["accuracy", quantity]].to_numpy(float, copy=True)
            both[:, 1] = beyond_reach_ranked(both[:, 1])
            kept = np.isfinite(both).all(axis=1)
            values = both[kept]
            family = part["family"].to_numpy()[kept] if "family" in part else None
            if len(values) < 3:  # too few models: not testable, said so rather than raised
                rows.append({"attack": attack, "quantity": quantity, "rho": np.nan,
                             "lo": np.nan, "hi": np.nan, "p": np.nan, "p_family": np.nan,
                             "family_testable": False, "n_models": len(values),
                             "testable": False})
                continue
            sizes = pd.Series(family).value_counts() if family is not None else pd.Series([1])
            shared = sizes.max() > 1
            # within families only prod(n_f!) pairings exist: with too few, no p_family reaches
            # 0.05 and the within-family half cannot be tested (one family of two: p ~ 1)
            pairings = math.prod(math.factorial(int(n)) for n in sizes)
            est = rank_correlation(values[:, 0], values[:, 1], n_boot=n_boot, seed=seed)
            rows.append({"attack": attack, "quantity": quantity, "rho": est.value,
                         "lo": est.lo, "hi": est.hi,
                         "p": permutation_p(values[:, 0], values[:, 1], rank=True, seed=seed),
                         "p_family": permutation_p(values[:, 0], values[:, 1], rank=True,
                                                   seed=seed, strata=family)
                         if shared else np.nan,
                         "family_testable": bool(not shared
                                                 or 2 / pairings < 0.05 * (1 - 1e-9)),
                         "n_models": est.n, "testable": testable(
                             values[:, 0], values[:, 1], sign=CLAIM_SIGNS[quantity])})
    return pd.DataFrame(rows)


def beyond_reach_ranked(values: np.ndarray) -> np.ndarray:
    """``values`` with +inf (a model whose median tolerance is beyond the attack's reach: half
    its images or more never broken) replaced by a finite number above every finite one, so
    that rank statistics keep it as the most tolerant (it was dropped as non-finite, and the
    most robust models left the correlation); NaN stays NaN."""
    values = np.array(values, dtype=float)
    finite = values[np.isfinite(values)]
    values[np.isposinf(values)] = (finite.max() + 1.0) if len(finite) else 1.0
    return values


def _rho_claim(corr: pd.DataFrame, quantity: str, sign: int) -> tuple[bool | None, str]:
    part = corr[corr["quantity"] == quantity]
    if part.empty:
        return None, "no models"
    # per attack: None where ρ or its CI is undefined, or too few models to test it (fewer
    # than min_testable_points: a perfect ordering of 3 or 4 has CI [1, 1], permutation p ≥ 1/24);
    # an attack whose CI is on the wrong side refutes the claim whatever the others, an
    # undefined one leaves it untested
    needed = min_testable_points()
    checks = [None if not np.isfinite([r.rho, r.lo, r.hi]).all() or _too_few(r)
              or (_family_untestable(r) and _significant(r._replace(p_family=np.nan), sign))
              else _significant(r, sign) for r in part.itertuples()]
    holds = combine(checks)
    text = "; ".join(
        f"{r.attack}: ρ = {r.rho:.2f} [{r.lo:.2f}, {r.hi:.2f}]{_p_text(r)} (n = {r.n_models}"
        + (", too few models within families to test: no within-family pairing reaches "
           "p 0.05)" if _family_untestable(r) and not _too_few(r) else
           f", too few models to test: {needed} needed)" if r.n_models < needed else
           ", too many ties to test: no ordering of these values is significant)"
           if _too_few(r) else ")")
        if np.isfinite(r.rho) else  # with >= 3 finite pairs ρ is NaN only for constant values
        f"{r.attack}: {_undefined_rho(r, quantity)}" for r in part.itertuples())
    return holds, text


def _undefined_rho(r: Any, quantity: str) -> str:
    """Why a row of :func:`correlations` has no ρ (with >= 3 finite pairs ρ is NaN only for
    constant values)."""
    if r.n_models >= 3:
        return (f"ρ undefined: accuracy or {QUANTITY_NAMES.get(quantity, quantity)} is the same "
                f"for all {r.n_models} models")
    return f"only {r.n_models} models with a finite value; {min_testable_points()} needed"


def _significant(r: Any, sign: int) -> bool:
    """Whether a row of :func:`correlations` shows ρ of the sign ``sign``: its 95 % CI on that
    side of 0, its permutation p below 0.05 (the percentile CI alone rejects too often with
    few models) and, where models share families, its within-family p (``p_family``) below
    0.05 too (models paired across families read "holds" 1 time in 9 on a family-effects null
    of the laptop's 37 digits models, 6 families); a table without ``p`` (written before it)
    by the CI alone."""
    side = r.lo > 0 if sign > 0 else r.hi < 0
    return bool(side and not getattr(r, "p", np.nan) >= 0.05
                and not getattr(r, "p_family", np.nan) >= 0.05)


def _family_untestable(r: Any) -> bool:
    """Whether a row of :func:`correlations` has too few within-family pairings for any
    ``p_family`` below 0.05 (its ``family_testable``; a table without it: testable)."""
    known = getattr(r, "family_testable", None)
    return known is not None and not pd.isna(known) and not known


def _p_text(r: Any) -> str:
    p, within = getattr(r, "p", np.nan), getattr(r, "p_family", np.nan)
    return ((f", p = {p:.2g}" if np.isfinite(p) else "")
            + (f", within families p = {within:.2g}" if np.isfinite(within) else ""))


def _too_few(r: Any) -> bool:
    """Whether a row of :func:`correlations` cannot test the sign of ρ: its ``testable`` column
    (tie-aware), or fewer than :func:`advlens.stats.min_testable_points` models in a table
    without it."""
    known = getattr(r, "testable", None)
    return r.n_models < min_testable_points() if known is None or pd.isna(known) else not known


def trend_lines(corr: pd.DataFrame) -> list[str]:
    """One Markdown line per row of ``corr`` (:func:`correlations` with a ``dataset`` column):
    the quantity "rises" / "falls" with accuracy where the 95 % CI of ρ is above / below 0
    and its permutation p below 0.05, "shows no clear trend" otherwise, and "cannot be
    tested" where :func:`findings` says so (ρ or its CI undefined, or fewer models than
    :func:`advlens.stats.min_testable_points`: a perfect ordering of 4 models has the CI
    [1, 1], which is no evidence; nor where ties leave no significant ordering)."""
    needed = min_testable_points()
    lines = []
    for r in corr.itertuples():
        stated = (f"ρ = {r.rho:.2f}, 95 % CI [{r.lo:.2f}, {r.hi:.2f}]{_p_text(r)}, "
                  f"{r.n_models} models")
        if not np.isfinite(r.rho):
            trend = f"cannot be tested here ({_undefined_rho(r, r.quantity)})"
        elif not np.isfinite([r.lo, r.hi]).all() or _too_few(r):
            trend = (f"cannot be tested here ({stated}; " + (
                f"{needed} models with a defined ρ needed)" if r.n_models < needed else
                "too many ties: no ordering of these values is significant)"))
        elif _family_untestable(r) and any(_significant(r._replace(p_family=np.nan), sign)
                                           for sign in (+1, -1)):
            # as in _rho_claim: a trend across families that no within-family pairing could
            # confirm is untested, not absent
            trend = (f"cannot be tested within families here ({stated}; no within-family "
                     "pairing of these models reaches p 0.05)")
        else:
            trend = ("rises" if _significant(r, +1) else "falls" if _significant(r, -1) else
                     "shows no clear trend") + f" with accuracy ({stated})"
        lines.append(f"- **{r.dataset}, {r.attack}**: "
                     f"{QUANTITY_NAMES.get(r.quantity, r.quantity)} {trend}.")
    return lines


def _pair_claim(arrows: pd.DataFrame, test: str, *,
                no_worse: bool = False) -> tuple[bool | None, str]:
    """Verdict of a twin claim that every pair passes ``test``. ``no_worse``: the claim is
    that harmonized models are no worse (it is true where there is no effect), so a pair that
    fails refutes it only as part of a one-sided sign test: the claim reads "does not hold" where
    so many independent pairs fail in every attack that p is below the one-sided 0.025
    (:func:`advlens.stats.below_alpha`, the level of :func:`advlens.stats.min_sign_pairs`: at
    least 6 pairs; one failing pair of 3 failed 7
    times in 8 with no effect); fewer leave it untested."""
    if arrows.empty:
        return None, "no harmonized twins"
    text = "; ".join(f"{r.plain} → {r.harmonized} ({r.attack}): {r.change:+.3g}"
                     for r in arrows.itertuples())
    # a change of ±inf is defined (one model's median tolerance beyond the attack's reach, the
    # other's not: its sign is known); NaN is not (both beyond reach, or nothing broken)
    defined = ~np.isnan(arrows["change"].to_numpy(float))
    finite = arrows[defined]
    if finite.empty:  # e.g. no image broken: nothing to compare
        return None, f"no pair with a defined change: {text}"
    ok = finite.eval(test)
    # as for ρ: a failing pair refutes the claim, an undefined one (e.g. a model never broken)
    # leaves "every pair" untested
    holds = combine([*map(bool, ok), *[None] * int((~defined).sum())])
    untested = f", {int((~defined).sum())} undefined" if not defined.all() else ""
    # "every pair" is a sign test over the pairs of models (an attack's rows share the pair's
    # models): with no effect all of k pass 1 time in 2^k, 1 in 16 for 4 pairs -- below
    # min_sign_pairs no number of passing pairs is evidence
    needed = min_sign_pairs()
    # independent pairs: each harmonized model has one plain twin, and pairs that share a plain
    # model share its noise, so they count once (the most pairs with no model in common)
    n_pairs = finite["plain"].nunique()
    few = ""
    if no_worse and holds is False:
        # a plain model's pairs fail when every finite row of them fails (attacks correlated)
        failing = int((~finite.assign(ok=ok).groupby("plain")["ok"].any()).sum())
        p_fail = float(binomtest(failing, n_pairs, 0.5, alternative="greater").pvalue)
        # one-sided at (1 - 0.95)/2 = 0.025, the level of every other sign test here (the
        # "holds" side via min_sign_pairs, the ρ claims' two-sided p < 0.05): at 0.05 five
        # lower pairs of 5 (p 1/32) refuted it, where 5 higher pairs cannot make a claim hold
        if not below_alpha(p_fail):
            holds = None
            few = (f" ({failing} of {n_pairs} independent pairs fail in every attack: sign test "
                   f"p = {p_fail:.2g} with no effect, no evidence that harmonized models are "
                   "worse" + (f"; {needed} independent pairs needed to refute it"
                              if n_pairs < needed else "") + ")")
        else:
            few = (f" ({failing} of {n_pairs} independent pairs fail in every attack: sign test "
                   f"p = {p_fail:.2g})")
    if holds and n_pairs < needed:
        holds = None
        shared = len(finite[["plain", "harmonized"]].drop_duplicates()) - n_pairs
        few = (f" (too few pairs to test: with no effect "
               f"{all_of(n_pairs, 'pair passes', 'pairs pass')} 1 time in {2**n_pairs}; "
               f"{needed} needed"
               + (f"; {shared} more share a plain model with another pair" if shared else "")
               + ")")
    # the count is of the rows that pass, out of those with a defined change ("2/6 pairs with a
    # finite value" read as 4 of 6 pairs being undefined when all 6 were finite and 4 failed);
    # a row is a pair under one attack ("6 of 6 pairs" counted 3 pairs twice)
    return holds, (f"{int(ok.sum())} of {len(ok)} (pair, attack) rows with a defined change "
                   f"pass ({test}; {n_pairs} pair{'s' if n_pairs != 1 else ''} of models)"
                   f"{untested}{few}: {text}")


PAPER = {"1": "Spearman 0.70 between ImageNet accuracy and mean tolerance over 283 models",
         "2": "alignment with ClickMe maps falls as ImageNet accuracy rises",
         "3": "harmonized models' attacks are more aligned with ClickMe maps",
         "4": "harmonized models are no easier to fool (both detectable and aligned attacks)",
         "5": "not in the paper: a ground truth only the twin-cue data give"}


def _finding(key: str, name: str, holds: bool | None, text: str,
             stats: Mapping[str, float] | None = None, dataset: str = "") -> dict[str, object]:
    suffix = f" ({dataset})" if dataset else ""
    return {"finding": f"{key} {name}{suffix}", "holds": holds, "evidence": text,
            "paper": PAPER[key], "statistics": encode_statistics(stats or {})}


def findings(corr: pd.DataFrame, align_arrows: pd.DataFrame, tol_arrows: pd.DataFrame, *,
             dataset: str = "") -> pd.DataFrame:
    """The paper's claims with fixed decision rules (ours; the paper states them qualitatively),
    as a findings table (``finding``, ``holds``, ``evidence``, ``paper``, ``statistics``; see
    :mod:`advlens.findings`); ``holds`` None = not testable with these models.

    1. Tolerance grows with accuracy: ρ(accuracy, tolerance) has its 95 % CI above 0 and its
       permutation p below 0.05, that within families too (``p_family``, every attack). The
       tolerance is each model's median over every attacked image (:func:`summarize`); the
       evidence also states ρ of the paper's statistic, the mean over the broken images
       (``tolerance_mean``), and whether it would pass the same rule, without deciding the
       verdict (it drops exactly the images that resist).
       2. Alignment falls with accuracy: CI of ρ(accuracy, alignment) below 0, p (and
       ``p_family``) below 0.05. An
       attack with ρ undefined (tied models), with fewer models than
       :func:`advlens.stats.min_testable_points` (5), or with so many ties that no ordering
       would be significant (``testable`` False) makes the claim None unless another attack's
       CI refutes it.
    3. Harmonized twins are attacked more in line with the maps: alignment higher in every pair
       (every attack). 4. ... without becoming easier to fool: tolerance not lower in every pair;
       refuted only where so many independent pairs are lower in every attack that a one-sided
       sign test gives p < 0.025 (the level of ``min_sign_pairs``, so at least 6 pairs; with no
       effect the claim is true, yet one of 3 pairs is lower 7 times in 8); fewer lower pairs
       leave it untested. A pair whose change is undefined (NaN: both models' median
       tolerance beyond reach, or nothing broken; a change of ±inf, one model beyond reach, is
       defined) makes the claim None unless another pair refutes it; so do fewer pairs of
       models with a defined change than
       :func:`advlens.stats.min_sign_pairs` (6): with no effect all of 4 pairs pass 1 time in
       16, whatever their attacks (one pair's rows share its models).
    """
    rows = []
    paper = corr[corr["quantity"] == "tolerance_mean"]  # finding 1's clause on the paper's
    for key, quantity, name in (("1", "tolerance", "tolerance grows with accuracy"),
                                ("2", "alignment", "alignment falls with accuracy")):
        holds, text = _rho_claim(corr, quantity, CLAIM_SIGNS[quantity])
        part = corr[corr["quantity"] == quantity]
        stats = {f"rho_{r.attack}": r.rho for r in part.itertuples()}
        if quantity == "tolerance" and not paper.empty:
            paper_holds, paper_text = _rho_claim(corr, "tolerance_mean",
                                                 CLAIM_SIGNS["tolerance_mean"])
            verdict = {True: "holds", False: "does not hold",
                       None: "is not testable"}[paper_holds]
            text += (f". On the paper's statistic, the mean tolerance over the broken images "
                     f"(not the verdict's): {paper_text}; by the same rule it {verdict}")
            stats |= {f"rho_mean_{r.attack}": r.rho for r in paper.itertuples()}
        rows.append(_finding(key, name, holds, text, stats, dataset))
    holds, text = _pair_claim(align_arrows, "change > 0")
    rows.append(_finding("3", "harmonized twins: more aligned attacks", holds, text,
                         _pair_numbers(align_arrows, "change > 0"), dataset))
    holds, text = _pair_claim(tol_arrows, "change >= 0", no_worse=True)
    rows.append(_finding("4", "harmonized twins: tolerance not lower", holds, text,
                         _pair_numbers(tol_arrows, "change >= 0"), dataset))
    return pd.DataFrame(rows)


def _pair_numbers(arrows: pd.DataFrame, test: str) -> dict[str, float]:
    """The headline numbers of a twin claim (the sweep's mean ± s.d. over seeds): how many
    (pair, attack) rows have a defined change and pass ``test`` (``rows``, ``rows_passing``),
    how many pairs of models (``pairs``) and how many pass under every attack
    (``pairs_passing``), and each attack's mean change over its rows."""
    if arrows.empty:
        return {}
    finite = arrows[~np.isnan(arrows["change"].to_numpy(float))]
    passing = finite.assign(ok=finite.eval(test)) if len(finite) else finite.assign(ok=False)
    # rows are (pair, attack); "pairs" counts pairs of models, "pairs_passing" those that pass
    # under every attack
    numbers = {"rows_passing": float(passing["ok"].sum()), "rows": float(len(finite)),
               "pairs_passing": float(passing.groupby("plain")["ok"].all().sum())
               if len(finite) else 0.0,
               "pairs": float(finite["plain"].nunique())}
    return numbers | {f"mean_change_{attack}": float(group["change"].mean())
                      for attack, group in finite.groupby("attack", sort=False)}


def cue_finding(reliance: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Claim 5 (the twin-cue ground truth, ours) as a one-row findings table: in every (plain,
    harmonized-to-shape) pair the twin has higher ``a-only`` accuracy, lower ``b-only``
    accuracy and a larger share of |saliency| on the shape (:func:`cue_reliance` rows). One
    failing pair refutes it; every pair passing reads "holds" from
    :func:`advlens.stats.min_sign_pairs` pairs on, "not testable" below."""
    r = reliance.set_index("model")
    checks, parts = [], []
    for plain, harm in pairs:
        if plain not in r.index or harm not in r.index:
            continue
        a, b = r.loc[plain], r.loc[harm]
        checks.append(b["acc_a-only"] > a["acc_a-only"] and b["acc_b-only"] < a["acc_b-only"]
                      and b["saliency_shape"] > a["saliency_shape"])
        parts.append(f"{plain} → {harm}: a-only {a['acc_a-only']:.2f}→{b['acc_a-only']:.2f}, "
                     f"b-only {a['acc_b-only']:.2f}→{b['acc_b-only']:.2f}, saliency on shape "
                     f"{a['saliency_shape']:.2f}→{b['saliency_shape']:.2f}")
    stats = {"pairs_holding": float(sum(checks)), "pairs": float(len(checks))}
    holds = bool(all(checks)) if checks else None
    text = "; ".join(parts) or "no twin-cue pairs"
    # as for claims 3 and 4: every pair passing is evidence only from min_sign_pairs pairs on
    # (with no effect all of k pass about 1 time in 2^k where the three conditions move together)
    if holds and len(checks) < min_sign_pairs():
        holds = None
        text = (f"{all_of(len(checks), 'pair passes', 'pairs pass')}, too few to test "
                f"({min_sign_pairs()} needed): " + text)
    return pd.DataFrame([_finding("5", "harmonized to the shape cue → relies more on shape",
                                  holds, text, stats, "twin-cue ground truth")])


# dataset of the notebook -> (dataset of the zoo models scored on it, importance map, label)
EVAL_SETS = {"digits": ("digits", "stroke", "stroke map (stand-in)"),
             "twin-cue": ("twin-cue", "shape", "shape-cue map (stand-in)"),
             "clickme": ("imagenet", "clickme", "ClickMe human map")}


def check_zoo_knobs(knobs: Mapping[str, object]) -> None:
    """Raise before any work if notebook 03's ``archs`` names an architecture that ``zoo`` has
    for none of ``datasets`` (a misspelt name was dropped silently), or leaves a data set
    without a model (it failed after the attacks of the others, in pandas), or gives a
    ``data_kw`` of its own (ClickMe's loader options, other than the preset's) without
    ``clickme`` among ``datasets`` (they were ignored, and recorded in the provenance as if
    used). ``knobs``: the notebook's resolved
    ``P``."""
    from advlens.zoo import spec

    archs, zoo, datasets = knobs["archs"], knobs["zoo"], knobs["datasets"]
    from advlens.presets import PRESETS

    preset_kw = PRESETS["03"].get(str(knobs.get("preset")), {}).get("data_kw")
    if knobs.get("data_kw") and knobs.get("data_kw") != preset_kw \
            and "clickme" not in datasets:  # type: ignore[operator]
        raise ValueError(f"knob 'data_kw' = {knobs['data_kw']!r} holds ClickMe's loader options, "
                         f"but 'datasets' = {list(datasets)} has no 'clickme' (the stand-ins "
                         "take none): add 'clickme' to datasets, or drop data_kw.")
    if archs is None:
        return
    configs = spec(zoo)
    have = {name: sorted({c.arch for c in configs if c.dataset == EVAL_SETS[name][0]})
            for name in datasets}
    missing = [a for a in archs if not any(a in found for found in have.values())]
    if missing:
        raise ValueError(f"knob 'archs' names {missing}: zoo {zoo!r} has no model of them for "
                         f"datasets {list(datasets)}; its architectures per data set: {have}.")
    empty = {name: found for name, found in have.items() if not set(archs) & set(found)}
    if empty:
        raise ValueError(f"knob 'archs' = {list(archs)} selects no model of zoo {zoo!r} for "
                         f"{sorted(empty)} (its architectures there: {empty}); add one of "
                         "them to 'archs', or drop that data set from 'datasets'.")


def eval_set(dataset: str, *, n: int | None = None, seed: int = 0,
             data_kw: Mapping[str, object] | None = None) -> tuple[ImageSet, Tensor]:
    """The test images of ``dataset`` (digits, twin-cue ``both``, or ClickMe) and their
    (N, 1, H, W) importance maps: the stroke / shape-cue stand-ins (the masks blurred like
    ClickMe maps by :func:`advlens.data.clickme_standin`) or ClickMe's human maps.
    ``data_kw`` goes to the loader (ClickMe: ``path``, ``split``, ``size``, ``max_per_class``)."""
    from advlens.data import clickme, clickme_standin, digits
    from advlens.zoo.regimes import MAP_CUES

    kw = dict(data_kw or {})
    if dataset == "digits":
        data = digits("test", **kw)  # type: ignore[arg-type]
    elif dataset == "twin-cue":
        data = twin_cue("test", "both", n=n, seed=seed, **kw)  # type: ignore[arg-type]
    elif dataset == "clickme":
        data = clickme(n=n, progress=False, **kw)  # type: ignore[arg-type]
        assert data.masks is not None
        return data, data.masks
    else:
        raise ValueError(f"dataset must be one of {sorted(EVAL_SETS)}; got {dataset!r}.")
    return data, clickme_standin(data, MAP_CUES[EVAL_SETS[dataset][1]])


def study(models: Mapping[str, nn.Module], configs: Mapping[str, ModelConfig], data: ImageSet,
          maps: Tensor, *, attacks_: Sequence[str] = ATTACKS, n_images: int | None = None,
          ddn_steps: int = 100, batch_size: int = 128, n_boot: int = 2000, seed: int = 0,
          top1: Mapping[str, float] | None = None) -> dict[str, pd.DataFrame]:
    """Everything the accuracy figures need for one dataset: ``summary`` (per model and attack,
    with family and regime), ``per_image``, ``corr`` (:func:`correlations`),
    ``arrows_tolerance`` / ``arrows_alignment`` (:func:`twin_arrows`).
    A published model whose input side differs from the images' (:func:`input_side`) sees them
    resized to it, as in Linsley et al.'s code (:func:`at_side`).

    ``top1``: each model's clean accuracy, the x axis (Linsley et al.: its ImageNet top-1,
    :func:`imagenet_accuracy`); None: measured on all of ``data``."""
    sides = {name: input_side(configs[name]) for name in models}
    if top1 is not None:
        missing = [name for name in models if name not in top1]
        if missing:
            raise ValueError(f"top1 has no accuracy for models {missing}; pass one per "
                             "model, or None to measure it on the evaluation images.")
        acc = {name: float(top1[name]) for name in models}
    else:
        acc = {name: accuracy(model, at_side(data, maps, sides[name])[0].images, data.labels)
               for name, model in models.items()}
    summary, per_image = model_table(models, data, maps, accuracy=acc, attacks_=attacks_,
                                     n_images=n_images, ddn_steps=ddn_steps,
                                     batch_size=batch_size, seed=seed, sides=sides)
    summary.insert(1, "family", summary["model"].map(lambda m: configs[m].family))
    summary.insert(2, "regime", summary["model"].map(lambda m: configs[m].regime))
    pairs = twin_pairs(configs)
    return {"summary": summary, "per_image": per_image,
            "corr": correlations(summary, n_boot=n_boot, seed=seed),
            "arrows_tolerance": twin_arrows(summary, pairs, "tolerance"),
            "arrows_alignment": twin_arrows(summary, pairs, "alignment")}


def imagenet_accuracy(entries: Sequence[Any], dataset: str) -> dict[str, float] | None:
    """The x axis of Linsley et al.'s figures for the zoo ``entries`` scored on ``dataset``:
    on ClickMe, each published model's ImageNet top-1 accuracy (the zoo's ``test_acc``, on every
    ImageNet validation image; the paper took timm's published top-1), not its accuracy on the
    few ClickMe images; None for the stand-in sets (accuracy on the evaluation images)."""
    if EVAL_SETS[dataset][0] != "imagenet":
        return None
    missing = [e.config.name for e in entries if e.meta.get("test_acc") is None]
    if missing:
        raise ValueError(f"no ImageNet top-1 accuracy (test_acc) in the zoo metadata of "
                         f"{missing}; rebuild them with $ADVLENS_IMAGENET set.")
    return {e.config.name: float(e.meta["test_acc"]) for e in entries}


def accuracy_label(dataset: str) -> str:
    """What the accuracy axis of notebook 03's figures is on ``dataset``
    (:func:`imagenet_accuracy`): each model's ImageNet top-1 on ClickMe, its accuracy on the
    evaluation images on the stand-in sets."""
    if dataset not in EVAL_SETS:
        raise ValueError(f"dataset must be one of {sorted(EVAL_SETS)}; got {dataset!r}.")
    return ("ImageNet top-1 accuracy" if EVAL_SETS[dataset][0] == "imagenet" else
            "clean accuracy on the evaluation images")


def saliency_alignment(models: Mapping[str, nn.Module], data: ImageSet, maps: Tensor, *,
                       human_maps: bool, n_images: int | None = None,
                       batch_size: int = 128,
                       sides: Mapping[str, int | None] | None = None) -> pd.DataFrame:
    """Harmonization's evaluation of each model's saliency against the maps, on the first
    ``n_images`` images: mean Spearman, top-10 % Dice and IoU, and — only for real human maps
    (``human_maps``) — the score (mean ρ ÷ the ClickMe human ceiling); NaN for stand-ins. The
    saliency is theirs (Xplique's ``Saliency``): the largest |gradient| over colour channels
    (:func:`~advlens.alignment.saliency` with ``channels="max-abs"``). A model that ``sides``
    gives an input side (:func:`input_side`) sees the images and maps resized to it
    (:func:`at_side`)."""
    from advlens.alignment import harmonization_score

    k = len(data) if n_images is None else min(n_images, len(data))
    pool, pool_maps = data.subset(torch.arange(k)), maps[:k]
    rows = []
    sides = model_sides(sides, models)
    for name, model in models.items():
        sized, sized_maps = at_side(pool, pool_maps, sides.get(name))
        x, y = sized.images, sized.labels
        m = sized_maps.reshape(k, *x.shape[-2:])
        sal = torch.cat([saliency(model, x[i:i + batch_size], y[i:i + batch_size],
                                  channels="max-abs").cpu() for i in range(0, k, batch_size)])
        score = harmonization_score(sal, m)
        if not human_maps:
            score["score"] = float("nan")
        rows.append({"model": name, **score, "n_images": k})
    return pd.DataFrame(rows)
