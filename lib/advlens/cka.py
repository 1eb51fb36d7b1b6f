"""Centred kernel alignment (CKA, Kornblith et al. 2019) between representations.

Every estimator centres each representation once and accumulates in float64 on the input's device
(numpy arrays are computed on the CPU). Linear CKA uses the feature-space form
``||XᵀY||²_F / (||XᵀX||_F ||YᵀY||_F)`` when that is cheaper (many samples, few features) and the
Gram form ``<K, L>_F / (||K||_F ||L||_F)`` on centred n×n Gram matrices otherwise; both are exact.

``debiased=True`` swaps the biased HSIC estimator (which inflates CKA at small n / large d) for the
unbiased one of Song et al. (2012), as used by Nguyen et al. (2021). Debiased CKA of unrelated
representations fluctuates around 0 and can be slightly negative; it is returned as it is.
No function returns NaN: degenerate inputs raise ``ValueError`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from advlens.checks import as_tensor, check_bool, positive_number

Array = Tensor | np.ndarray
Kernel = Literal["linear", "rbf"]

__all__ = ["MinibatchCKA", "cka_cross", "cka_matrix", "gram_linear_cka", "linear_cka",
           "linear_gram", "rbf_cka"]

# All Gram matrices are held at once; above this size linear CKA stays in feature space.
_GRAM_MAX_BYTES = 2 * 1024**3
# The feature-space form never holds more of a d1×d2 cross product XᵀY than this at once.
_CROSS_MAX_BYTES = 256 * 1024**2


# --------------------------------------------------------------------------------------- inputs
def min_rows(debiased: bool) -> int:
    """The fewest samples (rows) CKA takes: 4 for the unbiased HSIC estimator, else 2."""
    return 4 if debiased else 2


def _checked(x: Array, name: str, *, min_rows: int,
             device: torch.device | None = None) -> Tensor:
    """Validate one representation and return it as a finite float64 (n, d) tensor."""
    if not isinstance(x, Tensor | np.ndarray):
        x = np.asarray(x)
    if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric torch.Tensor or numpy.ndarray; "
                        f"got dtype {x.dtype}.")
    x = as_tensor(x, name).detach()
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features); got shape {tuple(x.shape)}. "
            "Flatten per sample first, e.g. x.reshape(n, -1)."
        )
    n, d = x.shape
    if d == 0:
        raise ValueError(f"{name} has no features (shape {tuple(x.shape)}).")
    if n < min_rows:
        what = "debiased (unbiased-HSIC) CKA" if min_rows >= 4 else "CKA"
        raise ValueError(
            f"{name} has {n} samples (rows); {what} needs at least {min_rows}. Pass more samples."
        )
    if x.is_complex():
        raise ValueError(f"{name} is complex; CKA needs real-valued representations.")
    if device is not None:
        x = x.to(device)
    if x.device.type == "mps":  # no float64 on Apple GPUs
        x = x.cpu()
    x = x.to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(
            f"{name} contains NaN or inf values; check the model's activations "
            "(or drop those rows)."
        )
    return x


def _centre(x: Tensor, name: str, *, rescale: bool = True, allow_constant: bool = False,
            too_large: str = "rescale it (CKA is invariant to isotropic scaling)") -> Tensor:
    """Column-centre a checked float64 representation.

    ``rescale`` divides it by its peak and then its Frobenius norm, which CKA ignores but which
    keeps squares of extreme values finite; MinibatchCKA sums HSIC over batches and must keep the
    raw scale. Columns constant to rounding (relative to their own magnitude) are zeroed; if all
    are, the representation is refused, or returned as zeros with ``allow_constant``."""
    peak = float(x.abs().max())
    if rescale and peak > 0:  # CKA is scale-invariant: squares then neither overflow nor vanish
        x = x / peak
    xc = x - x.mean(dim=0, keepdim=True)
    spread, scale = xc.square().sum(0), x.square().sum(0)
    if not math.isfinite(float(scale.sum())):
        raise ValueError(f"{name} has values too large to square in float64; {too_large}.")
    # per column: a large constant unit must not make small varying ones look constant. What
    # centring leaves of a constant float64 column is below 1e-30 of its square sum (measured
    # up to 10⁶ rows); 1e-28 keeps variation of 1e-14 of a column's magnitude, ~100 ulps (at
    # 1e-20, a column varying by 1 around 1e11, 65,000 ulps, was zeroed as constant)
    flat = spread <= 1e-28 * scale
    if bool(flat.all()):
        if allow_constant:
            return torch.zeros_like(xc)
        raise ValueError(
            f"{name} is constant across samples (zero variance after centring), so CKA is "
            "undefined; check the layer (dead units?) and the inputs."
        )
    if bool((flat & (spread > 0)).any()):  # what is left of a constant column is rounding
        xc = xc.masked_fill(flat, 0.0)
    return xc / math.sqrt(float(xc.square().sum())) if rescale else xc


def _centred(x: Array, name: str, *, min_rows: int,
             device: torch.device | None = None) -> Tensor:
    """Validate one representation and return it column-centred, float64, of unit norm."""
    return _centre(_checked(x, name, min_rows=min_rows, device=device), name)


def _times_power_of_two(x: Tensor, exponent: int) -> Tensor:
    """``x · 2**exponent``, exact for normal results (two factors: 2**exponent may overflow)."""
    half = exponent // 2
    return x * math.ldexp(1.0, half) * math.ldexp(1.0, exponent - half)


def _same_rows(xs: list[Tensor], names: list[str]) -> None:
    n = xs[0].shape[0]
    for x, name in zip(xs, names, strict=True):
        if x.shape[0] != n:
            raise ValueError(
                f"{name} has {x.shape[0]} samples but {names[0]} has {n}; CKA compares "
                "representations of the same inputs, row for row."
            )


def _check_kernel(kernel: str) -> None:
    if kernel not in ("linear", "rbf"):
        raise ValueError(f"kernel must be 'linear' or 'rbf'; got {kernel!r}.")


# -------------------------------------------------------------------------------------- kernels
def _median_sq_distance(sq: Tensor) -> Tensor:
    """Median over all n² entries (self-pairs included: Kornblith's convention) of ``sq``.

    The full list is n zeros plus every off-diagonal distance twice, so its two middle elements
    are found in the upper triangle alone (numpy's median averages them when n² is even).
    """
    n = sq.shape[0]
    upper = sq[torch.ones(n, n, dtype=torch.bool, device=sq.device).triu_(1)]
    total = n * n

    def element(position: int) -> Tensor:  # 0-based position in the sorted full list
        if position < n:
            return sq.new_zeros(())
        return upper.kthvalue((position - n) // 2 + 1).values

    if total % 2:
        return element(total // 2)
    return (element(total // 2 - 1) + element(total // 2)) / 2


# below this fraction of |x_i|² + |x_j|², a squared distance from the Gram trick is mostly
# cancellation (its error is ~1e-16 of that sum): such pairs are taken from their differences
_CANCELLING = 1e-6


def _exact_close_pairs(sq: Tensor, xc: Tensor, sq_rows: Tensor, same: Tensor) -> None:
    """Recompute in place, from the rows' differences, the squared distances ``sq`` that the
    Gram trick |x_i|² + |x_j|² − 2 x_i·x_j leaves mostly rounding: near-duplicate rows (not
    identical ones, ``same``: already 0). Before, rows a relative 1e-8 apart got noise, which
    was the median (the bandwidth) when they were most of the rows: CKA 0.957934 against
    0.958384 computed from the differences."""
    close = sq <= _CANCELLING * (sq_rows[:, None] + sq_rows[None, :])
    pairs = (close & ~same).nonzero()
    chunk = max(1, (1 << 22) // max(1, xc.shape[1]))  # ~32 MB of float64 differences at a time
    for rows in pairs.split(chunk):
        i, j = rows.unbind(1)
        sq[i, j] = (xc[i] - xc[j]).square().sum(1)


def _rbf_gram(xc: Tensor, threshold: float, name: str) -> Tensor:
    """RBF kernel exp(-d²/(2σ²)) with σ = threshold × median pairwise distance."""
    sq_rows = xc.square().sum(1)
    sq = (sq_rows[:, None] + sq_rows[None, :] - 2 * (xc @ xc.T)).clamp_min_(0)
    # identical rows are exactly 0 apart (the diagonal too): masked, not recomputed (a layer
    # with many identical rows made the recomputation quadratic in them)
    group = torch.unique(xc, dim=0, return_inverse=True)[1]
    same = group[:, None] == group[None, :]
    sq.masked_fill_(same, 0.0)
    _exact_close_pairs(sq, xc, sq_rows, same)
    median = _median_sq_distance(sq)
    if float(median) <= 0:
        raise ValueError(
            f"{name}: the median pairwise distance is 0 (most rows are identical), so the RBF "
            "bandwidth is undefined; use kernel='linear' or de-duplicate the rows."
        )
    return torch.exp(sq / (-2 * threshold**2 * median))


def _centre_gram(k: Tensor, debiased: bool) -> Tensor:
    """H K H (biased) or the U-centred Gram matrix of Székely & Rizzo (2014) (debiased)."""
    if not debiased:
        k = k - k.mean(0, keepdim=True)
        return k - k.mean(1, keepdim=True)
    n = k.shape[0]
    k = k.clone()
    k.fill_diagonal_(0)
    row = k.sum(1) / (n - 2)
    row = row - row.sum() / (2 * (n - 1))
    k -= row[:, None]
    k -= row[None, :]
    k.fill_diagonal_(0)
    return k


# ------------------------------------------------------------------------------- HSIC estimators
@dataclass(frozen=True)
class _Prepared:
    """One representation, ready for HSIC with others: centred features or a centred Gram."""

    name: str
    n: int
    debiased: bool
    features: Tensor | None = None  # centred (n, d), feature-space linear form
    sq_rows: Tensor | None = None  # squared row norms, debiased feature-space form
    gram: Tensor | None = None  # centred (biased) / U-centred (debiased) n×n kernel
    scale: float = 1.0  # tr(K)² on the HSIC scale: bounds |HSIC(K, K)|, sets "numerically zero"
    constant: bool = False  # constant across samples (MinibatchCKA only): every HSIC is 0


def _hsic_denominator(n: int, debiased: bool) -> int:
    return n * (n - 3) if debiased else (n - 1) ** 2


def _prepare_gram(k: Tensor, name: str, *, debiased: bool, constant: bool = False
                  ) -> _Prepared:
    """A kernel's n×n Gram ``k`` centred (U-centred, ``debiased``) for :func:`_hsic`, scaled by
    tr(HKH)², not tr(K)² = n²: at a large RBF threshold K is nearly constant and its centred
    part, hence every self-HSIC, shrinks like 1/threshold⁴ without being degenerate."""
    n = k.shape[0]
    centred = _centre_gram(k, False)
    trace = float(centred.diagonal().sum())
    gram = _centre_gram(k, True) if debiased else centred
    return _Prepared(name, n, debiased, gram=gram, constant=constant,
                     scale=trace * trace / _hsic_denominator(n, debiased))


def _prepare(xc: Tensor, name: str, *, kernel: Kernel, debiased: bool, threshold: float,
             use_gram: bool) -> _Prepared:
    n = xc.shape[0]
    # all zero: a constant batch (MinibatchCKA only); its centred kernel, hence HSIC, is 0
    constant = not bool(xc.any())
    if kernel == "rbf":
        k = xc.new_ones(n, n) if constant else _rbf_gram(xc, threshold, name)
        return _prepare_gram(k, name, debiased=debiased, constant=constant)
    trace = float(xc.square().sum())  # = tr(HKH) of the linear kernel: xc is centred
    scale = trace * trace / _hsic_denominator(n, debiased)  # inf, not OverflowError, if huge
    if use_gram:
        return _Prepared(name, n, debiased, gram=_centre_gram(xc @ xc.T, debiased), scale=scale,
                         constant=constant)
    return _Prepared(name, n, debiased, features=xc, scale=scale, constant=constant,
                     sq_rows=xc.square().sum(1) if debiased else None)


def _cross_square_norm(x: Tensor, y: Tensor) -> Tensor:
    """``||xᵀy||²_F`` in blocks of x's columns: with wide layers (d ≫ n) the whole d1×d2 product
    would be far larger than the n×n Grams that the feature-space form avoids."""
    step = max(1, _CROSS_MAX_BYTES // (y.element_size() * y.shape[1]))
    total = x.new_zeros(())
    for start in range(0, x.shape[1], step):
        total += (x[:, start:start + step].T @ y).square().sum()
    return total


def _hsic(a: _Prepared, b: _Prepared) -> Tensor:
    """HSIC estimate (biased: /(n-1)², unbiased: Song et al. 2012) as a 0-d float64 tensor."""
    n = a.n
    if a.gram is not None and b.gram is not None:
        inner = (a.gram * b.gram).sum()
    elif a.features is not None and b.features is not None:
        inner = _cross_square_norm(a.features, b.features)
        if a.debiased:
            # U-centring of centred linear Grams in closed form: diag terms removed, row sums of
            # the zero-diagonal Gram are -||x_i||² because the features are centred.
            ka, kb = a.sq_rows, b.sq_rows
            inner = inner - n / (n - 2) * (ka @ kb) + ka.sum() * kb.sum() / ((n - 1) * (n - 2))
    else:  # mixing forms never happens: one decision per call
        raise AssertionError("internal: HSIC between a Gram and a feature-space representation")
    return inner / _hsic_denominator(n, a.debiased)


def _use_gram(n: int, dims: list[int]) -> bool:
    """Gram form when its cost n²·(Σd + pairs) beats the feature-space cost n·Σ_{i≤j} d_i d_j
    (Grams: n² per representation-feature and per pair) and all Grams fit in memory."""
    m = len(dims)
    pairs = m * (m + 1) / 2
    feature_cost = n * (sum(dims) ** 2 + sum(d * d for d in dims)) / 2
    gram_cost = n * n * (sum(dims) + pairs)
    return gram_cost < feature_cost and m * n * n * 8 <= _GRAM_MAX_BYTES


def _check_self_hsic(h: float, scale: float, name: str) -> None:
    """Refuse a self-HSIC that is not positive beyond rounding (CKA would be 0/0 or NaN)."""
    if not h > 1e-12 * scale:
        raise ValueError(
            f"{name} has a self-HSIC of {h:.3g} (not positive beyond rounding), so CKA is "
            "undefined; the representation is degenerate for this estimator (e.g. all but one "
            "row identical, or an RBF threshold so large that the kernel is constant to "
            "rounding): pass more, distinct samples, use debiased=False or a smaller threshold."
        )


def _normalise(h_xy: Tensor, a: _Prepared, h_xx: Tensor, b: _Prepared, h_yy: Tensor) -> float:
    _check_self_hsic(float(h_xx), a.scale, a.name)
    _check_self_hsic(float(h_yy), b.scale, b.name)
    return float(h_xy / torch.sqrt(h_xx * h_yy))


def _pair_cka(X: Array, Y: Array, *, kernel: Kernel, debiased: bool, threshold: float) -> float:
    debiased = check_bool(debiased, "debiased")
    xc = _centred(X, "X", min_rows=min_rows(debiased))
    yc = _centred(Y, "Y", min_rows=min_rows(debiased), device=xc.device)
    _same_rows([xc, yc], ["X", "Y"])
    use_gram = _use_gram(xc.shape[0], [xc.shape[1], yc.shape[1]])
    a, b = (_prepare(z, name, kernel=kernel, debiased=debiased, threshold=threshold,
                     use_gram=use_gram) for z, name in ((xc, "X"), (yc, "Y")))
    return _normalise(_hsic(a, b), a, _hsic(a, a), b, _hsic(b, b))


# ------------------------------------------------------------------------------------ public API
def linear_cka(X: Array, Y: Array, debiased: bool = False) -> float:
    """Linear CKA between X (n, d1) and Y (n, d2), rows being the same n inputs.

    Feature-space form when it is cheaper (n large relative to d), Gram form otherwise; float64.
    ``debiased=True`` uses the unbiased HSIC estimator (needs n ≥ 4; may be slightly negative).
    """
    return _pair_cka(X, Y, kernel="linear", debiased=debiased, threshold=1.0)


def rbf_cka(X: Array, Y: Array, threshold: float = 1.0, debiased: bool = False) -> float:
    """RBF-kernel CKA with bandwidth σ = threshold × median pairwise distance (per representation).

    Follows Kornblith et al.: the median is over all n² pairs, self-pairs included. Cost and
    memory are O(n²).
    """
    threshold = positive_number("threshold", threshold)
    return _pair_cka(X, Y, kernel="rbf", debiased=debiased, threshold=threshold)


def linear_gram(X: Array, name: str = "X") -> Tensor:
    """The linear Gram matrix ``X_c X_cᵀ`` (n×n, float64, on X's device) of X (n, d), centred
    and scaled as :func:`linear_cka` takes it. The linear CKA of any subset ``idx`` of the rows
    is :func:`gram_linear_cka` of the sub-Grams ``K[idx][:, idx]`` (centring rows commutes with
    taking them), so many subsets (a jackknife) cost one n²·d product, not one per subset."""
    xc = _centred(X, name, min_rows=2)
    return xc @ xc.T


def gram_linear_cka(grams: Mapping[str, Tensor], pairs: Sequence[tuple[str, str]],
                    debiased: bool = False, *, validate: bool = True) -> list[float]:
    """Linear CKA of each pair (a, b) of ``pairs`` from the n×n Gram matrices ``grams[a]``,
    ``grams[b]`` of representations of the same n inputs (:func:`linear_gram`, or subsets
    ``[idx][:, idx]`` of them). Each Gram is centred (U-centred, ``debiased``) and its self-HSIC
    taken once, however many pairs it is in; equal to :func:`linear_cka` of the
    representations up to rounding. Degenerate inputs raise ``ValueError`` as there; each Gram
    is checked finite and symmetric unless ``validate=False`` (for sub-Grams of Grams that
    :func:`linear_gram` made, as a jackknife takes them many times)."""
    debiased = check_bool(debiased, "debiased")
    validate = check_bool(validate, "validate")
    if not isinstance(grams, Mapping) or len(grams) == 0:
        raise ValueError("grams must be a non-empty mapping {name: n×n Gram matrix}.")
    _distinct_names(grams, "grams")
    shapes = {tuple(np.shape(g)) for g in grams.values()}
    n = next(iter(shapes))[0] if len(shapes) == 1 else -1
    if n < 0 or shapes != {(n, n)}:
        raise ValueError(f"grams must be n×n Gram matrices of the same n inputs; got shapes "
                         f"{sorted(shapes)}.")
    if n < min_rows(debiased):
        raise ValueError(f"the Grams have {n} rows; CKA needs at least {min_rows(debiased)}.")
    prepared: dict[str, tuple[_Prepared, Tensor]] = {}

    def prepare(name: str) -> tuple[_Prepared, Tensor]:
        if name not in grams:
            raise KeyError(f"pairs name {name!r}, which grams does not hold; it holds "
                           f"{list(grams)}.")
        if name not in prepared:
            gram = (_symmetric(grams[name], f"grams[{name!r}]", debiased) if validate
                    else as_tensor(grams[name], f"grams[{name!r}]").to(torch.float64))
            a = _prepare_gram(gram, name, debiased=debiased)
            prepared[name] = (a, _hsic(a, a))
        return prepared[name]

    out = []
    for x, y in pairs:
        (a, h_aa), (b, h_bb) = prepare(x), prepare(y)
        out.append(_normalise(_hsic(a, b), a, h_aa, b, h_bb))
    return out


def _symmetric(gram: Array, name: str, debiased: bool) -> Tensor:
    """A Gram matrix (tensor or NumPy array) as a finite float64 tensor, refused unless
    symmetric (to rounding): a kernel's Gram is, and CKA of any other matrix is no CKA."""
    k = _checked(gram, name, min_rows=min_rows(debiased))
    if torch.equal(k, k.T):  # (linear_gram's are, exactly)
        return k
    asymmetry = float((k - k.T).abs().max())
    if asymmetry > 1e-5 * float(k.abs().max()):
        raise ValueError(f"{name} is not symmetric (max |K - Kᵀ| = {asymmetry:.3g}); pass a "
                         "Gram matrix K = X Xᵀ of one representation (linear_gram).")
    return k


def _distinct_names(reps: Mapping[Any, object], what: str) -> None:
    """Refuse keys that name the same label (1 and "1"): the table's rows would repeat it."""
    names = [str(k) for k in reps]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} has keys that read the same as labels: {repeated} (e.g. 1 "
                         "and '1'); give every representation a distinct name.")


def _prepare_all(reps: Mapping[str, Array], *, kernel: Kernel, debiased: bool, threshold: float,
                 what: str, device: torch.device | None = None,
                 exponents: list[int | None] | None = None) -> list[_Prepared]:
    """Centre and prepare every representation. ``exponents`` (MinibatchCKA) keeps the raw
    scale: representation i is multiplied by 2**exponents[i] (exact) instead of normalised, an
    exponent still None is set here from this batch's peak, and a constant batch is allowed."""
    debiased = check_bool(debiased, "debiased")
    if not isinstance(reps, Mapping) or len(reps) == 0:
        raise ValueError(f"{what} must be a non-empty mapping {{name: (n, d) representation}}.")
    _distinct_names(reps, what)
    names = [str(k) for k in reps]
    xs: list[Tensor] = []
    for i, (key, name) in enumerate(zip(reps, names, strict=True)):
        label = f"{what}[{name!r}]"
        x = _checked(reps[key], label, min_rows=min_rows(debiased),
                     device=device if not xs else xs[0].device)
        if exponents is None:
            xs.append(_centre(x, label))
            continue
        peak = float(x.abs().max())
        if exponents[i] is None and peak > 0:
            exponents[i] = -math.frexp(peak)[1]  # peak · 2**exponent in [0.5, 1)
        xs.append(_centre(_times_power_of_two(x, exponents[i] or 0), label, rescale=False,
                          allow_constant=True,
                          too_large="MinibatchCKA fixes one scale per representation from its "
                          "first batch: pass batches of comparable magnitude"))
    _same_rows(xs, [f"{what}[{n!r}]" for n in names])
    use_gram = _use_gram(xs[0].shape[0], [x.shape[1] for x in xs])
    return [_prepare(x, f"{what}[{name!r}]", kernel=kernel, debiased=debiased,
                     threshold=threshold, use_gram=use_gram) for x, name in zip(xs, names,
                                                                                strict=True)]


def _pairwise_hsic(prepared: list[_Prepared]) -> tuple[Tensor, Tensor]:
    """Symmetric M×M table of HSIC estimates between all representations, and their scales."""
    m = len(prepared)
    table = torch.zeros(m, m, dtype=torch.float64)
    for i in range(m):
        for j in range(i, m):
            table[i, j] = table[j, i] = _hsic(prepared[i], prepared[j]).cpu()
    return table, torch.tensor([p.scale for p in prepared], dtype=torch.float64)


def _cka_from_table(table: Tensor, scales: Tensor, names: list[str],
                    labels: list[str]) -> pd.DataFrame:
    diag = table.diagonal()
    for h, scale, label in zip(diag.tolist(), scales.tolist(), labels, strict=True):
        _check_self_hsic(h, scale, label)
    product = diag[:, None] * diag[None, :]
    if bool((torch.isfinite(product) & (product > 0)).all()):
        cka = table / torch.sqrt(product)
    else:  # d_i · d_j over- or underflows float64 (MinibatchCKA's raw scale): take roots first
        root = diag.sqrt()
        cka = table / (root[:, None] * root[None, :])
    cka.fill_diagonal_(1.0)
    return pd.DataFrame(cka.numpy(), index=names, columns=names)


def cka_matrix(reps: Mapping[str, Array], kernel: Kernel = "linear", debiased: bool = False,
               threshold: float = 1.0) -> pd.DataFrame:
    """CKA between every pair of representations of the same n inputs.

    Returns an M×M DataFrame (index and columns = the mapping's keys), symmetric, diagonal exactly
    1. Each representation is centred once; linear CKA uses centred Grams when n is small
    relative to the feature dimensions and feature-space cross products otherwise.
    """
    _check_kernel(kernel)
    threshold = positive_number("threshold", threshold)
    prepared = _prepare_all(reps, kernel=kernel, debiased=debiased, threshold=threshold,
                            what="reps")
    names = [str(k) for k in reps]
    return _cka_from_table(*_pairwise_hsic(prepared), names, [p.name for p in prepared])


def cka_cross(reps: Mapping[str, Mapping[str, Array]], kernel: Kernel = "linear",
              debiased: bool = False, threshold: float = 1.0) -> pd.DataFrame:
    """Asymmetric CKA heatmap: ``reps[R][C]`` is model C's representation of row model R's data.

    Entry (R, C) = CKA(reps[R][R], reps[R][C]), e.g. both models on R's inverted dataset
    (Jones et al. 2022). Every row needs the representations of all column models.
    """
    _check_kernel(kernel)
    threshold = positive_number("threshold", threshold)
    if not isinstance(reps, Mapping) or len(reps) == 0:
        raise ValueError("reps must be a non-empty mapping {row model: {column model: rep}}.")
    _distinct_names(reps, "reps")
    rows = list(reps)
    columns = list(reps[rows[0]]) if isinstance(reps[rows[0]], Mapping) else []
    out = np.empty((len(rows), len(columns)))
    for r, row in enumerate(rows):
        inner = reps[row]
        if not isinstance(inner, Mapping) or set(inner) != set(columns) or row not in inner:
            raise ValueError(
                f"reps[{row!r}] must map every column model {columns} (including {row!r} "
                "itself) to its representation of row model's data."
            )
        inner = {c: inner[c] for c in columns}  # the first row's order, whatever this row's
        prepared = _prepare_all(inner, kernel=kernel, debiased=debiased, threshold=threshold,
                                what=f"reps[{row!r}]")
        ref = prepared[columns.index(row)]
        h_ref = _hsic(ref, ref)
        for c, other in enumerate(prepared):
            out[r, c] = (1.0 if other is ref else
                         _normalise(_hsic(ref, other), ref, h_ref, other, _hsic(other, other)))
    return pd.DataFrame(out, index=[str(r) for r in rows], columns=[str(c) for c in columns])


class MinibatchCKA:
    """Minibatch CKA (Nguyen et al. 2021) for many representations at once.

    Each :meth:`update` takes one batch ``{name: (b, d) representation}`` (same names every time,
    b ≥ 4 rows) and adds the unbiased HSIC of every pair to running sums; :meth:`compute` returns
    ``Σ HSIC(K, L) / sqrt(Σ HSIC(K, K) · Σ HSIC(L, L))`` for all pairs as an M×M DataFrame.
    Unbiased per-batch HSIC makes the result nearly independent of the batch size. A batch in
    which a representation is constant (e.g. every ReLU dead) adds 0 to its sums. Each
    representation is multiplied by one power of two fixed from its first non-zero batch, which
    keeps the batches' weighting and the CKA value while keeping HSIC finite at any magnitude.
    With ``kernel="rbf"`` each batch's bandwidth comes from that batch's own distances
    (``threshold`` × the square root of their median squared distance), not from all rows.
    """

    def __init__(self, kernel: Kernel = "linear", threshold: float = 1.0) -> None:
        _check_kernel(kernel)
        threshold = positive_number("threshold", threshold)
        self.kernel: Kernel = kernel
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.names: list[str] | None = None
        self.n_batches = 0
        self.n_samples = 0
        self._sums: Tensor | None = None
        self._scales: Tensor | None = None
        self._widths: dict[str, int] = {}
        self._exponents: list[int | None] = []  # 2**e scales representation i (see class doc)
        self._varied: list[bool] = []  # representation i was not constant in some batch

    def update(self, reps: Mapping[str, Array]) -> None:
        """Add one minibatch; every representation has the same b ≥ 4 rows (the same inputs)."""
        if isinstance(reps, Mapping):
            names = [str(k) for k in reps]
            if self.names is not None and names != self.names:
                raise ValueError(
                    f"batch has representations {names} but earlier batches had {self.names}; "
                    "pass the same names, in the same order, to every update()."
                )
            for key in reps:
                shape = tuple(reps[key].shape) if hasattr(reps[key], "shape") else np.shape(
                    reps[key])
                if len(shape) != 2:
                    raise ValueError(f"batch[{key!r}] must be a (b, d) representation; got "
                                     f"shape {shape}.")
                n = shape[0]
                if self._widths.get(str(key), shape[1]) != shape[1]:
                    raise ValueError(
                        f"batch[{key!r}] has {shape[1]} features but earlier batches had "
                        f"{self._widths[str(key)]}; pass the same layer's representation to "
                        "every update().")
                if n < 4:
                    raise ValueError(
                        f"batch[{key!r}] has {n} rows; the unbiased HSIC estimator needs at least "
                        "4 samples per batch. Use a larger batch size, or drop_last=True for a "
                        "short final batch."
                    )
        # a copy: a batch refused below must not fix any scale
        exponents = list(self._exponents) if self.names is not None else [None] * len(reps)
        prepared = _prepare_all(reps, kernel=self.kernel, debiased=True, threshold=self.threshold,
                                what="batch", exponents=exponents)
        table, scales = _pairwise_hsic(prepared)
        if self._sums is not None and self._scales is not None:
            table, scales = self._sums + table, self._scales + scales
        if not bool(torch.isfinite(table).all() and torch.isfinite(scales).all()):
            raise ValueError(
                "batch: the HSIC sums overflow float64, because this batch's values are vastly "
                "larger than in the first batch (MinibatchCKA fixes one scale per representation "
                "from its first batch); pass batches of comparable magnitude."
            )
        self._sums, self._scales, self._exponents = table, scales, exponents
        self._varied = [v or not p.constant for v, p in
                        zip(self._varied or [False] * len(prepared), prepared, strict=True)]
        self.names = [str(k) for k in reps]
        self._widths = {str(k): int(np.shape(reps[k])[1]) if not hasattr(reps[k], "shape")
                        else int(reps[k].shape[1]) for k in reps}
        self.n_batches += 1
        self.n_samples += prepared[0].n

    def compute(self) -> pd.DataFrame:
        """M×M DataFrame of minibatch CKA (symmetric, diagonal 1) over all batches so far."""
        if self._sums is None or self._scales is None or self.names is None:
            raise ValueError(
                "MinibatchCKA.compute() called before any update(); add batches first."
            )
        for name, varied in zip(self.names, self._varied, strict=True):
            if not varied:
                raise ValueError(
                    f"batch[{name!r}] was constant across samples in every batch so far (zero "
                    "variance after centring), so CKA is undefined; check the layer (dead "
                    "units?) and the inputs."
                )
        return _cka_from_table(self._sums, self._scales, self.names,
                               [f"batch[{n!r}]" for n in self.names])
