"""Su et al. (ECCV 2018) on a set of models: the attack suite and the checks of its findings.

- :class:`Distortion`, :func:`distortion`, :func:`distortion_table` — mean norm of the
  **successful** adversarial examples (pixel range of width 1) with a bootstrap CI, and the
  success rate (successes / attempts).
- :func:`scaling_law`, :func:`scaling_laws`, :func:`prediction_band` — the "linear scaling law"
  ``distortion ≈ a·ln(top-1 error) + b`` across models (natural log).
- :func:`attack_suite` — FGSM and I-FGSM with the per-image eps search (L∞), C&W-L2 and
  EAD-L1, untargeted and targeted, on the images each model classifies correctly; one row per
  (model, attack, target mode) with the distortion over successful examples (bootstrap CI) and
  the success rate.
- :func:`variance_explained` — how much of the spread in distortion a grouping (architecture
  family) or a covariate (log model size) explains: "architecture matters more than size".
- :func:`transfer_summary` — within- vs across-family transfer and each source's reach.
- :func:`findings` — the four findings checked by fixed decision rules (holds / not / untestable).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens import attacks
from advlens.attacks.const_search import check_abort_rule
from advlens.attacks.core import tqdm_disabled
from advlens.attacks.cw import check_adam_eps, check_restart
from advlens.attacks.pgd import LOSSES as SEARCH_LOSSES
from advlens.attacks.result import AttackResult
from advlens.attacks.targets import TARGET_MODES
from advlens.checks import (
    as_tensor,
    check_bool,
    check_images,
    check_labels,
    check_positive_int,
    positive_number,
)
from advlens.features import predict
from advlens.findings import all_of, combine, encode_statistics
from advlens.resample import images_to_side, model_sides
from advlens.rng import name_seed
from advlens.stats import (
    Estimate,
    LinearFit,
    bootstrap_ci,
    linear_fit,
    min_sign_pairs,
    min_testable_points,
)

if TYPE_CHECKING:
    from advlens.zoo.collection import ZooEntry
    from advlens.zoo.config import ModelConfig


@dataclass(frozen=True)
class Distortion:
    """Mean distortion over successful examples (NaN estimate if none) and the success rate."""

    mean: Estimate
    success_rate: float
    attempts: int

    def as_dict(self, prefix: str = "distortion") -> dict[str, float]:
        return {prefix: self.mean.value, f"{prefix}_lo": self.mean.lo,
                f"{prefix}_hi": self.mean.hi, "n_success": self.mean.n,
                "success_rate": self.success_rate, "attempts": self.attempts}


def distortion(result: AttackResult | Sequence[float] | np.ndarray,
               success: Sequence[bool] | np.ndarray | None = None, *, n_boot: int = 2000,
               level: float = 0.95, seed: int = 0) -> Distortion:
    """Distortion of one model under one attack, from an :class:`AttackResult` or from arrays
    of norms and success flags. Failed examples never enter the mean."""
    if isinstance(result, AttackResult):
        norms = result.norms.detach().cpu().double().numpy()
        ok = result.success.detach().cpu().numpy().astype(bool)
    else:
        norms = np.asarray(result, dtype=np.float64)
        if success is None:
            raise ValueError("pass success flags with raw norms (or pass an AttackResult).")
        ok = np.asarray(success)
        if np.issubdtype(ok.dtype, np.number) and np.isin(ok, (0, 1)).all():
            ok = ok.astype(bool)  # 0/1 flags, as integers or floats
        if ok.dtype != bool:
            raise ValueError(f"success must hold booleans (True where the attack succeeded); got "
                             f"dtype {ok.dtype}. Strings such as 'False' or probabilities are "
                             "not flags: compare them first (e.g. p > 0.5).")
    if norms.ndim != 1 or norms.shape != ok.shape:
        raise ValueError(f"norms and success must be 1-D of equal length; got {norms.shape} "
                         f"and {ok.shape}.")
    attempts = int(norms.shape[0])
    if attempts == 0:
        raise ValueError("no attempts: distortion needs at least one attacked image.")
    values = norms[ok]
    wrong = ~(np.isfinite(values) & (values >= 0))
    if wrong.any():  # a negative one made a mean of 0.0 with a CI [-1, 1] out of [-1, 1]
        raise ValueError(f"the norms of successful examples must be finite and >= 0; got "
                         f"{values[wrong][:5].tolist()}.")
    if values.size == 0:
        nan = float("nan")
        return Distortion(Estimate(nan, nan, nan, 0), 0.0, attempts)
    return Distortion(bootstrap_ci(values, n_boot=n_boot, level=level, seed=seed),
                      float(ok.mean()), attempts)


def scaling_law(distortions: Sequence[float] | np.ndarray, errors: Sequence[float] | np.ndarray,
                *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> LinearFit:
    """Fit ``distortion = slope·ln(error) + intercept`` across models (bootstrap over models).

    ``errors`` are top-1 error rates in (0, 1]; a model with zero measured error has no
    logarithm — evaluate it on more images or leave it out.
    """
    d = np.asarray(distortions, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    if d.shape != e.shape or d.ndim != 1:
        raise ValueError(f"distortions and errors must be 1-D of equal length; got {d.shape} "
                         f"and {e.shape}.")
    bad = (e <= 0) | (e > 1) | ~np.isfinite(e)
    if bad.any():
        raise ValueError(f"top-1 errors must be fractions in (0, 1] (not percent); got "
                         f"{e[bad][:5].tolist()}. A model with zero measured error has no log "
                         "error (evaluate it on more images or drop it).")
    if not np.isfinite(d).all():
        raise ValueError("distortions contain NaN/inf (a model with no successful example); "
                         "drop it before fitting.")
    return linear_fit(np.log(e), d, n_boot=n_boot, level=level, seed=seed)


def scaling_laws(table: pd.DataFrame, *, by: Iterable[str] = ("attack", "norm"),
                 error: str = "top1_error", value: str = "distortion", n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One :func:`scaling_law` per group of ``table`` (one row per model × group).

    Returns slope, intercept (with CIs), the slope's two-sided permutation p (``slope_p``,
    :attr:`advlens.stats.LinearFit.p`), R², the number of models per group and ``testable``
    (:attr:`advlens.stats.LinearFit.testable`: some ordering of the models would give a
    significant slope -- not with fewer than 5, nor with many tied errors); groups with
    fewer than 3 usable models (finite distortion, error > 0) of distinct error are reported
    with NaNs (``testable`` False) rather than dropped. Invalid input (errors in percent,
    ``n_boot`` < 1) raises.
    """
    by = list(by)
    missing = [c for c in [*by, error, value] if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; it has {list(table.columns)}.")
    if "model" in table:  # a model twice in a group (e.g. several target modes) is no law
        repeated = table[table.duplicated([*by, "model"], keep=False)]
        if len(repeated):
            first = repeated.iloc[0]
            raise ValueError(f"model {first['model']!r} has several rows in group "
                             f"{tuple(first[by])} (several target modes?); add that column "
                             "to by= (e.g. by=('attack', 'norm', 'mode')) or pass one mode's "
                             "rows.")
    errors = pd.to_numeric(table[error], errors="coerce")
    bad = table[~(errors.between(0, 1))]  # NaN too: such a model was dropped silently
    if len(bad):
        who = bad["model"].tolist()[:5] if "model" in bad else bad.index.tolist()[:5]
        raise ValueError(f"{error} must hold fractions in (0, 1] (not percent); got "
                         f"{bad[error].tolist()[:5]} (models {who}); a 0, which has no log "
                         "error, is left out of the fit, a NaN is not an error rate.")
    rows = []
    for key, group in table.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        usable = group[np.isfinite(group[value]) & (group[error] > 0)]
        row: dict[str, object] = dict(zip(by, key, strict=True))
        row["n_models"] = len(usable)
        # only too few models is a NaN row: any other ValueError of the fit is the caller's
        if len(usable) < 3 or usable[error].nunique() < 2:
            row.update({k: float("nan") for k in ("slope", "slope_lo", "slope_hi", "slope_p",
                                                  "intercept", "intercept_lo", "intercept_hi",
                                                  "r2")},
                       testable=False)
        else:
            fit = scaling_law(usable[value].to_numpy(), usable[error].to_numpy(), n_boot=n_boot,
                              level=level, seed=seed)
            row.update(slope=fit.slope.value, slope_lo=fit.slope.lo, slope_hi=fit.slope.hi,
                       slope_p=fit.p, intercept=fit.intercept.value, intercept_lo=fit.intercept.lo,
                       intercept_hi=fit.intercept.hi, r2=fit.r2, testable=fit.testable)
        rows.append(row)
    return pd.DataFrame(rows)


def distortion_table(results: Mapping[tuple[str, ...], AttackResult],
                     errors: Mapping[str, float], *, n_boot: int = 2000,
                     seed: int = 0) -> pd.DataFrame:
    """One row per (model, attack) of ``results`` with its distortion, CI, success rate, norm
    and the model's top-1 error (from ``errors``). Keys are (model, attack) or, as
    :func:`attack_suite` returns them, (model, attack, mode): the table then has a ``mode``
    column."""
    rows = []
    for key, result in results.items():
        if not isinstance(key, tuple) or len(key) not in (2, 3):
            raise ValueError(f"results must be keyed by (model, attack) or (model, attack, "
                             f"mode) tuples, as attack_suite returns them; got key {key!r}.")
        model, attack = key[:2]
        if model not in errors:
            raise ValueError(f"no top-1 error given for model {model!r}.")
        d = distortion(result, n_boot=n_boot, seed=seed)
        mode = {"mode": key[2]} if len(key) == 3 else {}
        rows.append({"model": model, "attack": attack, **mode, "norm": result.norm,
                     "top1_error": float(errors[model]), **d.as_dict()})
    return pd.DataFrame(rows)


def prediction_band(distortions: Sequence[float] | np.ndarray,
                    errors: Sequence[float] | np.ndarray, grid: Sequence[float] | np.ndarray,
                    *, n_boot: int = 2000, level: float = 0.95,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile-bootstrap band (lo, hi) of the fitted line at the errors ``grid``
    (the bootstrap refits of :func:`scaling_law`, which resamples models), for plotting the
    fit's uncertainty."""
    fit = scaling_law(distortions, errors, n_boot=n_boot, level=level, seed=seed)
    return fit.band(np.log(np.asarray(grid, dtype=np.float64)))


SUITE = ("fgsm", "ifgsm", "cw", "ead")
NORM = {"fgsm": "linf", "ifgsm": "linf", "cw": "l2", "ead": "l1"}


@dataclass(frozen=True)
class SuiteSettings:
    """Knobs of the attack suite; the defaults are Su et al.'s settings (their code's where the
    paper is silent)."""

    search_tries: int = 9
    search_start: float = 0.02
    # FGSM / I-FGSM objective: "logit" (Su et al.'s code, --use_zvalue, which made their
    # distortions) or "ce" (the cross-entropy, as Goodfellow et al. published the attacks)
    search_loss: str = "logit"
    ifgsm_steps: int = 50
    cw_binary_steps: int = 9
    cw_steps: int = 1000
    cw_lr: float = 0.001
    cw_initial_const: float = 0.01
    ead_binary_steps: int = 9
    ead_steps: int = 1000
    # EAD's own code's default rate (Chen et al.), not C&W's 0.001: PROTOCOLS §2's "EAD: same"
    # names the shared search (9 constants x 1000 iterations from 0.01, κ 0)
    ead_lr: float = 0.01
    ead_initial_const: float = 0.01
    ead_beta: float = 1e-3
    # C&W / EAD early abort: "image" (Su et al.'s l2_attack.py and l1_attack.py, run one image
    # at a time as their README's commands do, --attack_batch_size=1: each image's constant
    # stops when its own objective stalls, so its result does not depend on the batch), "every"
    # (the same code on a batch: a constant stops once every image's objective stalled) or
    # "batch" (Carlini & Wagner's summed objective, which stops sooner: notebook 02's laptop
    # C&W distortions came out up to 44 % larger with it than with "every")
    abort_rule: str = "image"
    # where C&W starts each constant after the first: "last", the previous constant's last
    # iterate (Su et al.'s l2_attack.py resets Adam's moments but not the modifier), or "x"
    # (Carlini & Wagner's code: notebook 02's laptop C&W distortions 2-61 % larger with it,
    # vit-xs 0.309 vs 0.192, convmixer-xs 0.239 vs 0.200)
    cw_restart_from: str = "last"
    # where C&W's Adam adds its 1e-8: "inside" the square root of the uncorrected second moment
    # (Su et al.'s l2_attack.py, adam_optimizer_tf: it damps the steps of pixels whose gradients
    # are below ~1e-4, as on ImageNet) or "outside" (published Adam, Carlini & Wagner's code;
    # notebook 02's smoke and laptop presets, whose lr 0.05 is not Su et al.'s)
    cw_adam_eps: str = "inside"

    def __post_init__(self) -> None:
        # checked here, not when the attack runs: a bad EAD setting failed after FGSM, I-FGSM
        # and C&W had run on the first model (at the paper preset, hours)
        for name in ("search_tries", "ifgsm_steps", "cw_binary_steps", "cw_steps",
                     "ead_binary_steps", "ead_steps"):
            check_positive_int(getattr(self, name), name)
        for name in ("search_start", "cw_lr", "cw_initial_const", "ead_lr",
                     "ead_initial_const"):
            positive_number(name, getattr(self, name))
        positive_number("ead_beta", self.ead_beta, allow_zero=True)
        if self.search_start > 1:
            raise ValueError(f"search_start, an L-inf radius on [0, 1] images, must be <= 1; "
                             f"got {self.search_start}.")
        if self.search_loss not in SEARCH_LOSSES:
            raise ValueError(f"search_loss must be one of {SEARCH_LOSSES} ('logit': Su et "
                             f"al.'s code); got {self.search_loss!r}.")
        check_abort_rule(self.abort_rule)
        check_restart(self.cw_restart_from, "cw_restart_from")
        check_adam_eps(self.cw_adam_eps, "cw_adam_eps")

    @classmethod
    def from_knobs(cls, knobs: Mapping[str, Any]) -> SuiteSettings:
        """Settings from a preset dict (keys that are not fields are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in knobs.items() if k in names})


def run_attack(name: str, model: nn.Module, x: Tensor, y: Tensor, settings: SuiteSettings,
               targets: Tensor | None = None) -> AttackResult:
    """One attack of the suite on one batch."""
    s = settings
    if name == "fgsm":
        return attacks.fgsm_search(model, x, y, start_eps=s.search_start, tries=s.search_tries,
                                   targets=targets, loss=s.search_loss, progress=False)
    if name == "ifgsm":
        return attacks.ifgsm_search(model, x, y, steps=s.ifgsm_steps, start_eps=s.search_start,
                                    tries=s.search_tries, targets=targets, loss=s.search_loss,
                                    progress=False)
    if name == "cw":
        return attacks.cw_l2(model, x, y, targets=targets, binary_steps=s.cw_binary_steps,
                             steps=s.cw_steps, lr=s.cw_lr, initial_const=s.cw_initial_const,
                             abort_rule=s.abort_rule, restart_from=s.cw_restart_from,
                             adam_eps=s.cw_adam_eps, progress=False)
    if name == "ead":
        return attacks.ead(model, x, y, targets=targets, binary_steps=s.ead_binary_steps,
                           steps=s.ead_steps, lr=s.ead_lr, initial_const=s.ead_initial_const,
                           beta=s.ead_beta, abort_rule=s.abort_rule, progress=False)
    raise ValueError(f"unknown attack {name!r}; the suite has {SUITE}.")


def _attack_model(model: nn.Module, *, x: Tensor, y: Tensor, targets: dict[str, Tensor | None],
                  settings: SuiteSettings, suite: Sequence[str], batch_size: int, n_boot: int,
                  seed: int, keep_adv: bool = True
                  ) -> list[tuple[str, str, dict[str, Any], AttackResult]]:
    """Every attack of ``suite`` in every mode (``targets``: mode -> targets or None) on one
    model's correctly classified images: (attack, mode, table row, result) in mode, attack
    order; without ``keep_adv``, each result's ``adv`` is dropped as soon as its row is made
    (:func:`_without_adv`)."""
    out = []
    for mode, t in targets.items():
        for attack in suite:
            start = time.perf_counter()
            r = attacks.run_batched(
                lambda m, xb, yb, targets=None, a=attack: run_attack(a, m, xb, yb, settings,
                                                                     targets),
                model, x, y, batch_size=batch_size, targets=t, progress=False)
            wall = time.perf_counter() - start
            d = distortion(r, n_boot=n_boot, seed=seed)
            out.append((attack, mode, {"norm": r.norm, **d.as_dict(), "passes": r.passes,
                                       "wall_s": wall}, r if keep_adv else _without_adv(r)))
    return out


def _without_adv(result: AttackResult) -> AttackResult:
    """``result`` with its adversarial images dropped: ``adv`` becomes an empty (0, C, H, W)
    tensor of their dtype; the per-image norms, success, eps and targets stay."""
    return replace(result, adv=result.adv.new_empty((0, *result.adv.shape[1:])))


def _distinct_names(values: Sequence[str], name: str, known: Sequence[str]) -> list[str]:
    """``values`` as a list, refused if a bare string, or naming something not in ``known``,
    or naming it twice (a repeat ran it twice: repeated table rows, one result kept)."""
    if isinstance(values, str):
        raise ValueError(f"{name} must be a list of names, not the string {values!r}; pass "
                         f"[{values!r}].")
    values = list(values)
    unknown = sorted({str(v) for v in values} - set(known))
    if unknown:
        raise ValueError(f"unknown {name} {unknown}; choose from {tuple(known)}.")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{name} repeats {repeated}; give each once.")
    return values


def attack_suite(models: Mapping[str, nn.Module], x: Tensor, y: Tensor, *,
                 settings: SuiteSettings | None = None, suite: Sequence[str] = SUITE,
                 target_modes: Sequence[str] = (), generator: torch.Generator | None = None,
                 batch_size: int = 256, n_boot: int = 2000, seed: int = 0,
                 progress: bool | None = None, client: Any | None = None,
                 sides: Mapping[str, int | None] | None = None,
                 keep_adv: bool = True) -> tuple[pd.DataFrame, dict]:
    """Run ``suite`` on every model, untargeted and for each of ``target_modes``.

    Each model is attacked on the images of ``x`` it classifies correctly (Su et al.: correctly
    classified images), at its own input side where ``sides`` gives one
    (:func:`advlens.zoo.paper.input_side`; the images resampled, :mod:`advlens.resample`: Su
    et al. ran each model at its own size, so its distortions are measured there). Returns
    (table, results): one table row per (model, attack, mode) with
    norm, distortion (mean over successful examples, bootstrap CI), success rate, attempts,
    passes and wall time; ``results[(model, attack, mode)]`` is the :class:`AttackResult`.
    ``keep_adv=False`` drops each result's adversarial images (``adv`` is then an empty
    (0, C, H, W) tensor; norms, success, eps and targets stay) as soon as its row is made: kept,
    they take one image's memory per attacked image, attack and mode (at the ``paper`` preset
    of notebook 02, 21 models × 4 attacks × 4 modes × ~760 images of 3×224×224 float32: about
    150 GB of host memory).
    Random targets: each model draws them from a stream of its own, seeded from one draw of
    ``generator`` (without one: from ``seed``) and the model's name
    (:func:`advlens.rng.name_seed`), so a model's targets are the same whichever other models
    are attacked beside it and in which order.
    ``client``: a dask client (or ``$ADVLENS_SCHEDULER``) to attack the models in parallel
    (:func:`advlens.parallel.map_models`); the correct images and the targets are chosen here
    first, so the results are the serial ones, in the same order (bitwise when both sides run
    torch with the same number of threads: workers of :func:`~advlens.parallel.local_cluster`
    use one).
    """
    from advlens.parallel import SCHEDULER_ENV, map_models

    settings = settings or SuiteSettings()
    keep_adv = check_bool(keep_adv, "keep_adv")
    suite = _distinct_names(suite, "suite", SUITE)
    target_modes = _distinct_names(target_modes, "target_modes", TARGET_MODES)
    x = check_images(as_tensor(x, "x"), "x")
    y = check_labels(y, x.shape[0], "y").cpu()  # compared with predict's CPU logits
    modes = ["untargeted", *target_modes]
    sides = model_sides(sides, models)
    # one generator shared in model order moved every later model's random targets when a
    # model was added, dropped or moved (notebook 02's archs knob); and None drew them from
    # torch's global RNG, unseeded
    device = generator.device if generator is not None else torch.device("cpu")
    base = seed if generator is None or "random" not in modes else int(
        torch.randint(0, 2**62, (1,), generator=generator, device=device))
    inputs: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        xm = images_to_side(x, sides.get(name))
        correct = predict(model, xm, batch_size=batch_size).argmax(1) == y
        xs, ys = xm[correct], y[correct]
        if xs.shape[0] == 0:
            raise ValueError(f"model {name!r} classifies none of the images correctly.")
        own = torch.Generator(device=device).manual_seed(name_seed(base, str(name)))
        targets = {mode: None if mode == "untargeted" else attacks.choose_targets(
            model, xs, ys, mode, own) for mode in modes}
        inputs[name] = {"x": xs, "y": ys, "targets": targets}
    common = {"settings": settings, "suite": suite, "batch_size": batch_size,
              "n_boot": n_boot, "seed": seed, "keep_adv": keep_adv}
    if client is not None or os.environ.get(SCHEDULER_ENV):
        done = map_models(_attack_model, models, client=client, progress=bool(progress),
                          per_model=inputs, **common)
    else:
        done = {name: _attack_model(model, **inputs[name], **common)
                for name, model in tqdm(models.items(), desc="attack suite",
                                        disable=tqdm_disabled(progress))}
    rows, results = [], {}
    for name, attacked in done.items():
        for attack, mode, row, r in attacked:
            results[(name, attack, mode)] = r
            rows.append({"model": name, "attack": attack, "mode": mode, **row})
    return pd.DataFrame(rows), results


def variance_explained(table: pd.DataFrame, value: str, *, group: str | None = None,
                       covariate: str | None = None) -> float:
    """Share of the variance of ``value`` across rows explained by a categorical ``group``
    (η² = between-group / total sum of squares) or by a linear fit on a numeric
    ``covariate`` (R²). Compare the two to ask whether family or size matters more."""
    if (group is None) == (covariate is None):
        raise ValueError("pass exactly one of group= or covariate=.")
    v = table[value].to_numpy(dtype=np.float64)
    total = ((v - v.mean()) ** 2).sum()
    # equal values have no spread to explain; their float mean need not equal them, which
    # left a rounding-noise total (η² 1, R² −8.7)
    if total == 0 or np.ptp(v) == 0:
        return float("nan")
    if group is not None:
        means = table.groupby(group)[value].transform("mean").to_numpy(dtype=np.float64)
        return float(((means - v.mean()) ** 2).sum() / total)
    c = table[covariate].to_numpy(dtype=np.float64)
    slope, intercept = np.polyfit(c, v, 1)
    return float(1 - ((v - (slope * c + intercept)) ** 2).sum() / total)


def transfer_summary(heatmap: pd.DataFrame, family: Mapping[str, str], *, n_perm: int = 2000,
                     seed: int = 0) -> pd.DataFrame:
    """Per source model: mean transfer rate to other models of its family, to models of other
    families, and overall (off-diagonal), from a source × target matrix; ``p_within`` (the
    same on every row: one test of the zoo) is :func:`within_family_p` of the matrix."""
    p_within = within_family_p(heatmap, family, n_perm=n_perm, seed=seed)
    rows = []
    for source in heatmap.index:
        within, across = [], []
        for target in heatmap.columns:
            if target == source or not np.isfinite(heatmap.loc[source, target]):
                continue
            same = family[source] == family[target]
            (within if same else across).append(float(heatmap.loc[source, target]))
        rows.append({"source": source, "family": family[source],
                     "within_family": np.mean(within) if within else float("nan"),
                     "across_families": np.mean(across) if across else float("nan"),
                     "all_others": np.mean(within + across) if within + across else float("nan"),
                     "p_within": p_within})
    return pd.DataFrame(rows)


def within_family_p(heatmap: pd.DataFrame, family: Mapping[str, str], *, n_perm: int = 2000,
                    seed: int = 0) -> float:
    """One-sided permutation p of "transfer within families exceeds transfer across them": the
    mean over sources with a within-family rate of (within − across), as in
    :func:`transfer_summary`, against the same mean with each source family paired with another
    family's models as its "own" targets (family labels permuted among the families).

    Whole families are the units: a family's models share source strength and target
    vulnerability (in notebook 02's laptop matrix the family part of either is about twice the
    model part), so labels permuted over single models read "holds" in 16–23 % of zoos with no
    within-family excess; pairing families keeps that structure (about 5 % at 0.05). Exact
    (every pairing) where the families' orderings number at most ``n_perm``, else Monte Carlo,
    p = (1 + as large) / (1 + n_perm). NaN without a source that has a within-family rate.
    Pairings that differ only where no source has a within-family rate (families of one
    model) tie, so the smallest p is (K − K₂)! / K! for K families, K₂ of two models or more
    (4 families of two: 1/24; 3 families: 1/6, no test at 0.05).
    """
    if isinstance(n_perm, bool) or not isinstance(n_perm, int | np.integer) or n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer; got {n_perm!r}.")
    missing = [m for m in dict.fromkeys([*heatmap.index, *heatmap.columns]) if m not in family]
    if missing:
        raise ValueError(f"no family given for model(s) {missing[:5]}.")
    names = sorted({family[m] for m in [*heatmap.index, *heatmap.columns]})
    code = {name: i for i, name in enumerate(names)}
    src = np.array([code[family[m]] for m in heatmap.index])
    tgt = np.array([code[family[m]] for m in heatmap.columns])
    values = heatmap.to_numpy(dtype=np.float64)
    ok = np.isfinite(values) & (np.asarray(heatmap.index)[:, None]
                                != np.asarray(heatmap.columns)[None, :])
    values = np.where(ok, values, 0.0)

    def gaps(pairing: np.ndarray) -> np.ndarray:  # (P, K) family -> "own" target family
        same = pairing[:, src][:, :, None] == tgt[None, None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            w = (values * same).sum(-1) / (ok & same).sum(-1)
            a = (values * ~same).sum(-1) / (ok & ~same).sum(-1)
        return w - a

    own = gaps(np.arange(len(names))[None, :])[0]
    sources = np.isfinite(own)
    if not sources.any():
        return float("nan")
    observed = float(own[sources].mean())
    exact = math.factorial(len(names)) <= n_perm
    rng = np.random.default_rng(seed)
    pairings = (np.array(list(itertools.permutations(range(len(names))))) if exact else
                np.array([rng.permutation(len(names)) for _ in range(n_perm)]))
    def mean_gap(chunk: np.ndarray) -> np.ndarray:  # over the sources, NaN cells left out
        g = gaps(chunk)[:, sources]
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(g), g, 0.0).sum(1) / np.isfinite(g).sum(1)

    null = np.concatenate([mean_gap(chunk) for chunk in
                           np.array_split(pairings, max(1, len(pairings) // 256))])
    count = int((null >= observed - 1e-12).sum())  # the identity is among the exact pairings
    return count / len(pairings) if exact else (1 + count) / (1 + n_perm)


def pareto_front(table: pd.DataFrame, *, error: str = "top1_error",
                 value: str = "distortion") -> pd.Series:
    """Boolean mask of the accuracy–robustness Pareto frontier: rows no other row beats on both
    lower ``error`` and higher ``value`` (Su et al.'s evaluation criterion for designs). A row
    with a NaN or infinite ``error`` or ``value`` (a model no attack succeeded on) is not on
    the frontier and beats no other row."""
    e = table[error].to_numpy(dtype=np.float64)
    v = table[value].to_numpy(dtype=np.float64)
    # a NaN compares False both ways, so it was beaten by nothing: on the frontier
    measured = np.isfinite(e) & np.isfinite(v)
    front = [bool(measured[i]) and not bool(
        (measured & (e <= e[i]) & (v >= v[i]) & ((e < e[i]) | (v > v[i]))).any())
        for i in range(len(e))]
    return pd.Series(front, index=table.index)


def family_vs_size(table: pd.DataFrame, value: str = "distortion", *, family: str = "family",
                   size: str = "params", n_perm: int = 2000, seed: int = 0) -> dict[str, float]:
    """Does architecture family or model size explain more of the spread in ``value``?

    η² of ``family``, R² of a line on ln(``size``), and the test of family beyond size:
    ``eta2_beyond_size``, the family η² of that line's residuals, against its permutation null
    (``eta2_null``: mean η² and ``p_family``: p-value with family labels shuffled across models:
    with few models per family η² is large by chance alone). Families differ in size (at the
    paper zoo MobileNet and ShuffleNet have 2–4 M parameters, VGG 138 M), so with a size effect
    alone raw family labels explain the spread too: their p read below 0.05 in 11–16 % of such
    zoos (size R² 0.35–0.5), the residuals' about 5 %. NaN when untestable (fewer than 2
    families, one model per family, or one value for every model).
    """
    d = table[np.isfinite(table[value])].reset_index(drop=True)
    sizes = d[family].value_counts()
    nan = float("nan")
    untestable = {"eta2_family": nan, "eta2_null": nan, "p_family": nan, "r2_log_size": nan,
                  "eta2_beyond_size": nan, "n_models": len(d)}
    # testable only with ≥ 2 families and some family holding ≥ 2 models (else η² ≡ 1)
    if len(d) < 3 or len(sizes) < 2 or sizes.max() < 2:
        return untestable
    eta2 = variance_explained(d, value, group=family)
    if not np.isfinite(eta2):  # one value for every model: its p read 1/(n_perm + 1)
        return untestable
    sized = d.assign(_log_size=np.log(d[size].to_numpy(dtype=np.float64)))
    x, v = sized["_log_size"].to_numpy(), d[value].to_numpy(dtype=np.float64)
    resid = v - np.polyval(np.polyfit(x, v, 1), x) if np.ptp(x) > 0 else v - v.mean()
    # a value exactly linear in log size leaves rounding noise: nothing beyond size
    flat = np.ptp(resid) <= 1e-12 * np.ptp(v)
    residual = d.assign(**{value: resid})
    beyond = 0.0 if flat else variance_explained(residual, value, group=family)
    rng = np.random.default_rng(seed)
    labels = d[family].to_numpy()
    null = np.array([variance_explained(residual.assign(**{family: rng.permutation(labels)}),
                                        value, group=family) for _ in range(n_perm)])
    return {"eta2_family": eta2, "eta2_null": float(null.mean()) if not flat else nan,
            "p_family": 1.0 if flat else float((1 + (null >= beyond - 1e-12).sum())
                                                / (1 + n_perm)),
            "r2_log_size": variance_explained(sized, value, covariate="_log_size"),
            "eta2_beyond_size": beyond, "n_models": len(d)}


def depth_comparison(table: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                     attacks: Sequence[str] = SUITE) -> pd.DataFrame:
    """Per (shallower, deeper) model pair and attack: both models' error and distortion with
    CIs, whether the deeper one has the larger distortion, and whether the CIs overlap.

    ``table``: one row per (model, attack) from :func:`attack_suite` (one target mode) with
    ``top1_error``; pairs with a model missing from ``table``, and attacks one of the pair was
    not run with, are left out. ``pairs`` is a list of (shallower, deeper) name pairs and
    ``attacks`` a list of names (a bare string is refused: its letters matched no attack).
    """
    if isinstance(attacks, str):
        raise ValueError(f"attacks must be a list of attack names, not the string "
                         f"{attacks!r}; pass [{attacks!r}].")
    pairs = list(pairs)
    for pair in pairs:
        if isinstance(pair, str) or not isinstance(pair, Sequence | np.ndarray) or len(pair) != 2:
            raise ValueError(f"pairs must be a list of (shallower, deeper) model name pairs; "
                             f"got item {pair!r} (for one pair pass [(shallow, deep)]).")
    repeated = table.duplicated(["model", "attack"], keep=False)
    if repeated.any():
        first = table[repeated].iloc[0]
        raise ValueError(f"table has {int(repeated.sum())} rows that repeat a (model, attack) "
                         f"pair, e.g. ({first['model']!r}, {first['attack']!r}) — several "
                         "target modes? Pass one mode's rows, e.g. "
                         "table[table['mode'] == 'untargeted'].")
    by = table.set_index(["model", "attack"])
    rows = []
    for shallow, deep in pairs:
        for attack in attacks:
            if (shallow, attack) not in by.index or (deep, attack) not in by.index:
                continue
            a, b = by.loc[(shallow, attack)], by.loc[(deep, attack)]
            rows.append({
                "shallow": shallow, "deep": deep, "attack": attack, "norm": a["norm"],
                "error_shallow": a["top1_error"], "error_deep": b["top1_error"],
                "dist_shallow": a["distortion"], "dist_shallow_lo": float(a["distortion_lo"]),
                "dist_shallow_hi": float(a["distortion_hi"]), "dist_deep": b["distortion"],
                "dist_deep_lo": float(b["distortion_lo"]),
                "dist_deep_hi": float(b["distortion_hi"]),
                "deeper_larger": b["distortion"] > a["distortion"],
                "cis_overlap": (b["distortion_lo"] <= a["distortion_hi"]
                                and a["distortion_lo"] <= b["distortion_hi"])})
    return pd.DataFrame(rows)


# Decision rules of :func:`findings`, fixed before the laptop zoo was run.
LAW_ATTACKS = ("cw", "ifgsm")  # the attacks whose fits decide findings 1 and 2
LAW_MIN_R2 = 0.5  # finding 1: a "law" explains at least half the spread ...
# ... with a slope whose permutation p is below this (R² ≥ 0.5 alone is p ≈ 0.18 on 5 models)
LAW_ALPHA = 0.05
FAMILY_ALPHA = 0.05  # finding 2: family η² beats its permutation null at this level
BROAD_TRANSFER_FAMILY = "vgg"  # finding 4: the family the paper found to transfer broadly
# finding 4's evidence: a family "carries" within-family transfer when its within-family rate
# exceeds its across-family rate by at least this much (absolute)
CARRY_MARGIN = 0.05


def min_rank_families() -> int:
    """The fewest families among which "the family reaching others most is
    :data:`BROAD_TRANSFER_FAMILY`" can be a test: with no family effect a named family of K is
    the top one 1 time in K, which must be below :data:`FAMILY_ALPHA` (21 at 0.05)."""
    k = 1
    while not 1 / k < FAMILY_ALPHA:
        k += 1
    return k


def _law_passes(law: Mapping[str, Any]) -> bool:
    """Finding 1's rule on one fitted law (a row of :func:`scaling_laws`): the slope's CI above 0,
    its permutation p below :data:`LAW_ALPHA` and R² ≥ :data:`LAW_MIN_R2`; a table without
    ``slope_p`` (written before it) by the CI and R² alone."""
    p = law.get("slope_p", np.nan)
    return bool(law["slope_lo"] > 0 and law["r2"] >= LAW_MIN_R2 and not p >= LAW_ALPHA)


def _p_text(law: Mapping[str, Any]) -> str:
    p = law.get("slope_p", np.nan)
    return f", p {p:.2g}" if np.isfinite(p) else ""


def findings(laws: pd.DataFrame, effects: pd.DataFrame, depth: pd.DataFrame,
             transfer: pd.DataFrame) -> pd.DataFrame:
    """Su et al.'s four findings checked on one zoo: one row per finding with ``holds`` (True,
    False, or None where this zoo cannot test it) and the numbers behind it (``evidence``).

    Parameters
    ----------
    laws : :func:`scaling_laws` output (columns attack, slope, slope_lo, slope_hi, r2).
    effects : one row per attack with ``attack`` and the :func:`family_vs_size` keys.
    depth : :func:`depth_comparison` output (may be empty).
    transfer : :func:`transfer_summary` output (source, family, within_family, across_families).

    Returns
    -------
    DataFrame with columns finding, holds, evidence. The rules: (1) for both attacks of
    :data:`LAW_ATTACKS`, the slope's CI lies above 0, its permutation p is below
    :data:`LAW_ALPHA` and R² ≥ :data:`LAW_MIN_R2` (None if a law
    could not be fitted -- absent, or a NaN row of :func:`scaling_laws` for fewer than 3 models
    -- or rests on fewer than :func:`advlens.stats.min_testable_points` (5) models, or on
    errors so tied that no ordering is significant (``testable`` False), and the other does
    not fail);
    (2) for both attacks of :data:`LAW_ATTACKS`, family η² exceeds the R² of log size and the
    permutation p of family beyond size (:func:`family_vs_size`) < :data:`FAMILY_ALPHA` (None
    if an η² is untestable and the other attack does not fail); (3) in every L∞ depth pair
    the deeper model has the larger distortion (None without an L∞ pair, or when every pair is
    larger but there are fewer than :func:`advlens.stats.min_sign_pairs` (6) pairs: with no
    depth effect one pair is larger half the time, 3 pairs all are 1 time in 8); (4) transfer
    within families exceeds that across families -- per source within − across, its mean
    above 0 and :func:`within_family_p` (families paired at random; ``p_within`` of
    :func:`transfer_summary`) below :data:`FAMILY_ALPHA`; a table without ``p_within`` by
    mean within > mean across -- and the family reaching other families most is
    :data:`BROAD_TRANSFER_FAMILY` (each half None where untestable -- no family of two models,
    every model of one family, fewer than 4 families to pair, no
    :data:`BROAD_TRANSFER_FAMILY` model, or it at the top of fewer than
    :func:`min_rank_families` (21) families: with no family effect one of K is the top 1 time
    in K -- and the finding None then unless the other half fails).
    """
    law = laws.set_index("attack")
    # None for a law that could not be fitted or rests on too few models to test (3 concordant
    # models give a slope CI above 0 and R² near 1 on noise): untested, not failed
    checks = [None if a not in law.index or not np.isfinite(law.loc[a, "slope_lo"])
              or law.loc[a].get("n_models", np.inf) < min_testable_points()
              or _untestable(law.loc[a]) else
              _law_passes(law.loc[a]) for a in LAW_ATTACKS]
    holds1 = combine(checks)
    rows = [{"finding": "1 linear scaling law", "holds": holds1, "evidence": "; ".join(
        f"{a}: slope {law.loc[a, 'slope']:.3g} [{law.loc[a, 'slope_lo']:.3g}, "
        f"{law.loc[a, 'slope_hi']:.3g}]{_p_text(law.loc[a])}, R² {law.loc[a, 'r2']:.2f}"
        + (" (too many tied errors to test)" if np.isfinite(law.loc[a, "slope_lo"])
           and law.loc[a].get("n_models", np.inf) >= min_testable_points()
           and _untestable(law.loc[a]) else "") for a in law.index)}]

    eff = effects.set_index("attack")
    checks = [None if a not in eff.index or not np.isfinite(eff.loc[a, "eta2_family"]) else
              bool(eff.loc[a, "eta2_family"] > eff.loc[a, "r2_log_size"]
                   and eff.loc[a, "p_family"] < FAMILY_ALPHA) for a in LAW_ATTACKS]
    holds2 = combine(checks)
    rows.append({"finding": "2 architecture > size", "holds": holds2,
                 "evidence": "; ".join(_effect_text(a, eff.loc[a]) for a in eff.index)})

    linf = depth[depth["norm"] == "linf"] if len(depth) else depth
    if len(linf):
        # a sign test over the pairs of models (both L∞ attacks of a pair share its models):
        # with no depth effect every one of k pairs is larger 1 time in 2^k (1 pair: half the
        # time), so below min_sign_pairs a larger deeper model is no evidence; one smaller
        # still refutes "every pair"
        n_pairs = len(linf[["shallow", "deep"]].drop_duplicates())
        larger = bool(linf["deeper_larger"].all())
        few = n_pairs < min_sign_pairs()
        rows.append({"finding": "3 depth slightly helps L∞",
                     "holds": None if larger and few else larger, "evidence": "; ".join(
                         f"{r.shallow}→{r.deep} {r.attack}: {r.dist_shallow:.4f}→"
                         f"{r.dist_deep:.4f} ({r.dist_deep / r.dist_shallow - 1:+.0%}; CIs "
                         f"{'overlap' if r.cis_overlap else 'apart'})"
                         for r in linf.itertuples())
                     # (a smaller deeper model refutes the claim: no chance clause then)
                     + (f" (too few pairs to test: with no depth effect "
                        f"{all_of(n_pairs, 'pair is', 'pairs are')} larger 1 time in "
                        f"{2**n_pairs}; {min_sign_pairs()} needed)" if larger and few else "")})
    else:
        rows.append({"finding": "3 depth slightly helps L∞", "holds": None,
                     "evidence": "no depth pair in this zoo"})

    by_family = transfer.groupby("family")[["within_family", "across_families"]].mean()
    within, across = transfer["within_family"].mean(), transfer["across_families"].mean()
    reach = by_family["across_families"].dropna()  # empty in a zoo of one family
    top_family = reach.idxmax() if len(reach) else "none"
    # the within/across half: per source within − across, tested by pairing whole families
    # (within_family_p); a table written before p_within by the two means alone
    gap = (transfer["within_family"] - transfer["across_families"]).dropna().mean()
    tested = "p_within" in transfer
    p_within = float(transfer["p_within"].iloc[0]) if tested and len(transfer) else np.nan
    # the smallest p: the identity alone among the distinct pairings of the families with a
    # within-family rate (those of its sources) with target families
    n_families = transfer["family"].nunique()
    n_own = transfer.dropna(subset=["within_family"])["family"].nunique()
    few_families = tested and 1 / math.perm(n_families, n_own) >= FAMILY_ALPHA
    if not (np.isfinite(within) and np.isfinite(across)):
        half1 = None
    elif not tested:
        half1 = bool(within > across)
    else:  # too few families for any p below FAMILY_ALPHA: a larger within rate is untested
        half1 = None if few_families and gap > 0 else bool(gap > 0 and p_within < FAMILY_ALPHA)
    # the VGG half, at the top with ties (idxmax names the first of tied families
    # alphabetically): with no family effect a named family of K is the top one 1 time in K
    # (the families are the units: a family's models share their source strength), so being
    # top is evidence only among min_rank_families(); not being top still refutes
    vgg_top = (bool(reach[BROAD_TRANSFER_FAMILY] >= reach.max())
               if BROAD_TRANSFER_FAMILY in reach.index else None)
    few_ranked = len(reach) < min_rank_families()
    # a zoo without the broad family cannot test its half, nor one without a family of two
    # models the within/across half: untested, not failed (unless the other half fails)
    holds4 = combine([half1, None if vgg_top and few_ranked else vgg_top])
    tests = ((f"; per source within − across {gap:.3f}, families paired at random p "
              f"{p_within:.3g}" if np.isfinite(p_within) else "")
             + (f" (too few families to test: no pairing of {n_families} families reaches p "
                f"{FAMILY_ALPHA})" if few_families and np.isfinite(within)
                and np.isfinite(across) and gap > 0 else ""))
    broad = by_family["across_families"].get(BROAD_TRANSFER_FAMILY, float("nan"))
    gap = (by_family["within_family"] - by_family["across_families"]).dropna()
    carry, rest = sorted(gap[gap >= CARRY_MARGIN].index), sorted(gap[gap < CARRY_MARGIN].index)
    per_family = ", ".join(f"{f} {r.within_family:.3f}/{_rate(r.across_families)}"
                           for f, r in by_family.dropna(subset=["within_family"]).iterrows())
    if np.isfinite(within):
        means = f"mean within {within:.3f} " + (f"vs across {across:.3f}" if np.isfinite(across)
                                                 else "(one family: no other family to reach)")
    else:
        means = "no family has two models" + (f" (mean across {across:.3f})"
                                              if np.isfinite(across) else "")
    carried = (f"; carried by {', '.join(carry) or 'no family'} (within − across ≥ "
               f"{CARRY_MARGIN})" + (f", not by {', '.join(rest)}" if rest else "")
               if len(gap) else "")
    top = (f"family reaching others most: {top_family} ({reach.max():.3f})" if len(reach)
           else "no family reaches another")
    rows.append({"finding": "4 transfer within families; VGG broadly", "holds": holds4,
                 "evidence": f"{means}{tests}"
                             + (f"; per family (within/across): {per_family}" if per_family
                                else "")
                             + f"{carried}; {top}; {BROAD_TRANSFER_FAMILY}: "
                             + (_rate(broad) if BROAD_TRANSFER_FAMILY in by_family.index
                                else "no model in this zoo")
                             + (f" (too few families to rank it: with no family effect one of "
                                f"{len(reach)} is the top 1 time in {len(reach)}; "
                                f"{min_rank_families()} needed)" if vgg_top and few_ranked
                                else "")})
    table = pd.DataFrame(rows)
    table["statistics"] = [encode_statistics(s)
                           for s in _headline_numbers(law, eff, linf, transfer)]
    return table


def _rate(value: float) -> str:
    """A transfer rate for the evidence; "none" where no other family was there to reach."""
    return f"{value:.3f}" if np.isfinite(value) else "none"


def _effect_text(attack: str, effect: pd.Series) -> str:
    """Finding 2's evidence for one attack (a :func:`family_vs_size` row)."""
    if not np.isfinite(effect["eta2_family"]):
        n = int(effect.get("n_models", 0))
        return (f"{attack}: not testable ({n} model{'' if n == 1 else 's'}; it needs two "
                "families, one of them with two models, and distortions that differ)")
    beyond = effect.get("eta2_beyond_size", np.nan)
    parts = [f"beyond size {beyond:.2f}" if np.isfinite(beyond) else "",
             f"null {effect['eta2_null']:.2f}" if np.isfinite(effect["eta2_null"]) else "",
             f"p {effect['p_family']:.3f}"]
    return (f"{attack}: η² family {effect['eta2_family']:.2f} ({', '.join(filter(None, parts))})"
            f" vs R² log size {effect['r2_log_size']:.2f}")


def _untestable(law: pd.Series) -> bool:
    """Whether a :func:`scaling_laws` row says no ordering of its models would give a
    significant slope (``testable`` False; a row without the column: no)."""
    flag = law.get("testable", True)
    return not pd.isna(flag) and not bool(flag)


def _headline_numbers(law: pd.DataFrame, eff: pd.DataFrame, linf: pd.DataFrame,
                      transfer: pd.DataFrame) -> list[dict[str, float]]:
    """The numbers behind each of :func:`findings`' four rows (its ``statistics`` column)."""
    laws = {f"{a}_{k}": law.loc[a, k] for a in law.index for k in ("slope", "slope_lo",
                                                                      "slope_hi", "r2")}
    effects = {f"{a}_{k}": eff.loc[a, k] for a in eff.index
               for k in ("eta2_family", "eta2_null", "p_family", "r2_log_size",
                         "eta2_beyond_size") if k in eff}
    depth = {f"{r.shallow}-{r.deep}_{r.attack}_{which}": getattr(r, f"dist_{which}")
             for r in linf.itertuples() for which in ("shallow", "deep")} if len(linf) else {}
    by_family = transfer.groupby("family")["across_families"].mean()
    reach = {"within": transfer["within_family"].mean(),
             "across": transfer["across_families"].mean(),
             "gap": (transfer["within_family"] - transfer["across_families"]).dropna().mean(),
             "p_within": (transfer["p_within"].iloc[0] if "p_within" in transfer
                          and len(transfer) else np.nan),
             f"{BROAD_TRANSFER_FAMILY}_across": by_family.get(BROAD_TRANSFER_FAMILY, np.nan),
             "top_family_across": by_family.max()}
    return [laws, effects, depth, reach]


def within_family_laws(table: pd.DataFrame, *, min_models: int = 3, n_boot: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """Su et al.'s law fitted inside each family: :func:`scaling_laws` by (family, attack,
    norm) over the families with at least ``min_models`` models (one row per model × attack
    in ``table``, with ``family``, ``top1_error`` and ``distortion``); adds each family's
    error range (``error_min``/``error_max``) over its models with a log error (error > 0)."""
    if "family" not in table:
        raise ValueError("table lacks a 'family' column; merge the models' families first.")
    sizes = table.groupby("family")["model"].nunique()
    kept = table[table["family"].isin(sizes[sizes >= min_models].index)]
    if kept.empty:
        return pd.DataFrame(columns=["family", "attack", "norm", "n_models", "slope",
                                     "slope_lo", "slope_hi", "r2", "error_min", "error_max"])
    laws = scaling_laws(kept, by=("family", "attack", "norm"), n_boot=n_boot, seed=seed)
    # as in the fit: an error of 0 has no log (and would start the drawn line at log 0)
    span = (kept[kept["top1_error"] > 0].groupby("family")["top1_error"]
            .agg(error_min="min", error_max="max"))
    return laws.merge(span, left_on="family", right_index=True, how="left")


def finding_within_family(family_laws: pd.DataFrame) -> dict[str, Any]:
    """Finding 1 inside families: holds iff, in every family fitted and for each attack of
    :data:`LAW_ATTACKS`, the slope's CI lies above 0, its permutation p is below
    :data:`LAW_ALPHA` and R² ≥ :data:`LAW_MIN_R2` (None when no family has enough models; a
    fit on fewer than :func:`advlens.stats.min_testable_points` models, or on errors so tied
    that no ordering is significant, is untested, so None unless another fit fails).
    ``statistics`` holds every fitted slope, its CI and R²."""
    fitted = family_laws[family_laws["attack"].isin(LAW_ATTACKS)].dropna(subset=["slope"])
    name = "1b scaling law within families"
    if fitted.empty:
        return {"finding": name, "holds": None, "statistics": encode_statistics({}),
                "evidence": "no family has enough models of distinct error"}
    ok = fitted.apply(_law_passes, axis=1).astype(bool)
    enough = (fitted["n_models"] >= min_testable_points()) & (
        fitted["testable"].astype(bool) if "testable" in fitted else True)
    holds = combine(bool(o) if e else None for o, e in zip(ok, enough, strict=True))
    stats = {f"{r.family}_{r.attack}_{k}": getattr(r, k) for r in fitted.itertuples()
             for k in ("slope", "slope_lo", "slope_hi", "r2")}
    evidence = "; ".join(f"{r.family} {r.attack}: slope {r.slope:.3g} [{r.slope_lo:.3g}, "
                         f"{r.slope_hi:.3g}]{_p_text(r._asdict())}, R² {r.r2:.2f} "
                         f"({r.n_models} models"
                         + (")" if e else f", too few to test: {min_testable_points()} needed)"
                            if r.n_models < min_testable_points() else
                            ", too many tied errors to test)")
                         for r, e in zip(fitted.itertuples(), enough, strict=True))
    return {"finding": name, "holds": holds, "statistics": encode_statistics(stats),
            "evidence": f"{int(ok[enough].sum())} of {int(enough.sum())} "
                        f"{'' if enough.all() else 'testable '}family fits pass; {evidence}"}


def check_zoo_knobs(knobs: Mapping[str, Any]) -> None:
    """Raise before any work if notebook 02's knobs name models it cannot have: an
    ``extra_models`` / ``family_models`` item that is no valid model config (it failed after
    the zoo was built, or after every attack), or an ``archs`` name with no standard model of
    ``dataset`` in ``zoo`` nor in ``extra_models`` (a misspelt name was dropped silently; a list
    of them failed with ``KeyError: 'arch'``), or a ``dataset`` of which ``zoo`` has no standard
    model (``"Digits"``, ``"cifar10"`` at the smoke zoo: the loader takes them, the model cell
    found no model and failed with ``KeyError: 'arch'``), or a ``depth_pairs`` model the run
    will not have (it was skipped with a printed line, finding 3 reading "no depth pair").
    ``knobs``: the notebook's resolved ``P``."""
    from advlens.zoo import spec
    from advlens.zoo.config import ModelConfig

    extra = []
    for name in ("extra_models", "family_models"):
        for i, kw in enumerate(knobs[name]):
            try:
                config = ModelConfig(**kw)
            except (TypeError, ValueError) as err:
                raise ValueError(f"knob {name!r} item {i} = {kw!r} is not a model config: "
                                 f"{err}") from None
            if name == "extra_models":
                extra.append(config.arch)
    zoo, dataset = knobs["zoo"], knobs["dataset"]
    standard = [c for c in spec(zoo) if c.regime == "standard"]
    have = sorted({c.arch for c in standard if c.dataset == dataset})
    if not have:
        raise ValueError(f"knob 'dataset' = {dataset!r}: zoo {zoo!r} has no standard model of "
                         f"it; its data sets: {sorted({c.dataset for c in standard})}.")
    if knobs["archs"] is not None:
        missing = [a for a in knobs["archs"] if a not in have and a not in extra]
        if missing:
            raise ValueError(f"knob 'archs' names {missing}: zoo {zoo!r} has no standard "
                             f"{dataset} model of them (nor has extra_models); it has {have}.")
    # a misspelt pair was skipped with a printed line, finding 3 reading "no depth pair"
    models = sorted(({a for a in have if a in knobs["archs"]} if knobs["archs"] is not None
                     else set(have)) | set(extra))
    for pair in knobs["depth_pairs"]:
        missing = [a for a in pair if a not in models]
        if missing:
            raise ValueError(f"knob 'depth_pairs' holds {list(pair)}: {missing} is no model of "
                             f"this run (zoo {zoo!r}'s standard {dataset} models with archs and "
                             f"extra_models: {models}).")


def zoo_configs(knobs: Mapping[str, Any], *, extra: bool = False) -> list[ModelConfig]:
    """The zoo models notebook 02 builds: the standard models of ``dataset`` in ``zoo``
    (training seeds shifted by ``zoo_seed``); with ``extra``, also its ``extra_models`` and
    ``family_models``, which it loads one by one: its first cell requires all of these, and no
    other checkpoint (the whole zoo asked for the robust ones it never loads). ``knobs``: the
    resolved ``P``."""
    from advlens.zoo import spec
    from advlens.zoo.seeds import reseed

    configs = [c for c in reseed(spec(knobs["zoo"]), knobs["zoo_seed"])
               if c.dataset == knobs["dataset"] and c.regime == "standard"]
    if extra:
        configs += knob_configs(knobs, "extra_models") + knob_configs(knobs, "family_models")
    return configs


def knob_configs(knobs: Mapping[str, Any], name: str) -> list[ModelConfig]:
    """The models of the config-list knob ``name`` (``extra_models`` or ``family_models``: dicts
    of :class:`~advlens.zoo.ModelConfig` fields), training seeds shifted by ``zoo_seed``."""
    from advlens.zoo.config import ModelConfig
    from advlens.zoo.seeds import reseed

    return reseed([ModelConfig(**kw) for kw in knobs[name]], knobs["zoo_seed"])


def models_by_name(entries: Sequence[ZooEntry], *, what: str,
                   with_tag: bool = False) -> dict[str, ZooEntry]:
    """``entries`` keyed by the names the tables use: the architecture (``arch/tag`` with
    ``with_tag``). Refused where two share a name, which one would silently replace the other
    (``what`` names where they came from, for the error)."""
    names = [f"{e.config.arch}/{e.config.tag}" if with_tag else e.config.arch for e in entries]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} hold two models named {repeated}; the tables key models by "
                         f"{'architecture/tag' if with_tag else 'architecture'}, so one would "
                         "replace the other: drop the repeat or give it another name.")
    return dict(zip(names, entries, strict=True))


def attackable(models: Mapping[str, nn.Module], x: Tensor, y: Tensor, *,
               batch_size: int = 256) -> tuple[dict[str, nn.Module], list[str]]:
    """The models that classify at least one of ``x`` correctly (the suite attacks only those
    images; a model at chance may have none) and the names of those left out."""
    y = as_tensor(y, "y").cpu()
    kept = {name: m for name, m in models.items()
            if bool((predict(m, x, batch_size=batch_size).argmax(1).cpu() == y).any())}
    return kept, [name for name in models if name not in kept]
