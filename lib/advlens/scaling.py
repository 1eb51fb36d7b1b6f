"""Su et al.'s robustness-vs-accuracy analysis: per-model distortion and the scaling law.

Distortion of a model under an attack = mean norm of the **successful** adversarial examples
(pixel range of width 1), with a bootstrap CI; success rate = successes / attempts. The
"linear scaling law" fits ``distortion ≈ a·ln(top-1 error) + b`` across models (natural log).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from advlens.attacks.result import AttackResult
from advlens.stats import Estimate, LinearFit, bootstrap_ci, linear_fit


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
        ok = np.asarray(success, dtype=bool)
    if norms.ndim != 1 or norms.shape != ok.shape:
        raise ValueError(f"norms and success must be 1-D of equal length; got {norms.shape} "
                         f"and {ok.shape}.")
    attempts = int(norms.shape[0])
    if attempts == 0:
        raise ValueError("no attempts: distortion needs at least one attacked image.")
    values = norms[ok]
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
    if ((e <= 0) | (e > 1) | ~np.isfinite(e)).any():
        raise ValueError("top-1 errors must lie in (0, 1]; a model with zero measured error "
                         "has no log error (evaluate it on more images or drop it).")
    if not np.isfinite(d).all():
        raise ValueError("distortions contain NaN/inf (a model with no successful example); "
                         "drop it before fitting.")
    return linear_fit(np.log(e), d, n_boot=n_boot, level=level, seed=seed)


def scaling_laws(table: pd.DataFrame, *, by: Iterable[str] = ("attack", "norm"),
                 error: str = "top1_error", value: str = "distortion", n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One :func:`scaling_law` per group of ``table`` (one row per model × group).

    Returns slope, intercept (with CIs), R² and the number of models per group; groups with
    fewer than 3 usable models are reported with NaNs rather than dropped.
    """
    by = list(by)
    missing = [c for c in [*by, error, value] if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; it has {list(table.columns)}.")
    rows = []
    for key, group in table.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        usable = group[np.isfinite(group[value]) & (group[error] > 0)]
        row: dict[str, object] = dict(zip(by, key, strict=True))
        row["n_models"] = len(usable)
        try:
            fit = scaling_law(usable[value].to_numpy(), usable[error].to_numpy(), n_boot=n_boot,
                              level=level, seed=seed)
            row.update(slope=fit.slope.value, slope_lo=fit.slope.lo, slope_hi=fit.slope.hi,
                       intercept=fit.intercept.value, intercept_lo=fit.intercept.lo,
                       intercept_hi=fit.intercept.hi, r2=fit.r2)
        except ValueError:
            row.update({k: float("nan") for k in ("slope", "slope_lo", "slope_hi", "intercept",
                                                  "intercept_lo", "intercept_hi", "r2")})
        rows.append(row)
    return pd.DataFrame(rows)


def distortion_table(results: Mapping[tuple[str, str], AttackResult],
                     errors: Mapping[str, float], *, n_boot: int = 2000,
                     seed: int = 0) -> pd.DataFrame:
    """One row per (model, attack) of ``results`` with its distortion, CI, success rate, norm
    and the model's top-1 error (from ``errors``)."""
    rows = []
    for (model, attack), result in results.items():
        if model not in errors:
            raise ValueError(f"no top-1 error given for model {model!r}.")
        d = distortion(result, n_boot=n_boot, seed=seed)
        rows.append({"model": model, "attack": attack, "norm": result.norm,
                     "top1_error": float(errors[model]), **d.as_dict()})
    return pd.DataFrame(rows)


def prediction_band(distortions: Sequence[float] | np.ndarray,
                    errors: Sequence[float] | np.ndarray, grid: Sequence[float] | np.ndarray,
                    *, n_boot: int = 2000, level: float = 0.95,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile-bootstrap band (lo, hi) of the fitted line at the errors ``grid``
    (resampling models, as :func:`scaling_law` does), for plotting the fit's uncertainty."""
    d = np.asarray(distortions, dtype=np.float64)
    lx = np.log(np.asarray(errors, dtype=np.float64))
    g = np.log(np.asarray(grid, dtype=np.float64))
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_boot):
        i = rng.integers(0, d.shape[0], size=d.shape[0])
        if np.ptp(lx[i]) > 0:
            slope, intercept = np.polyfit(lx[i], d[i], 1)
            lines.append(slope * g + intercept)
    if not lines:
        raise ValueError("a prediction band needs at least 2 distinct error values.")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.array(lines), [alpha, 1.0 - alpha], axis=0)
    return lo, hi
