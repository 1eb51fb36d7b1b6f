"""Independent references shared by tests: plain float64 numpy, no advlens code."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def numpy_linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA in the feature-space form, straight from the definition."""
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.linalg.norm(a.T @ b) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


def numpy_debiased_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA with the unbiased HSIC of Song et al. (2012), written out on Gram matrices."""
    def hsic(k: np.ndarray, l: np.ndarray) -> float:
        n = k.shape[0]
        k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
        return (np.trace(k @ l) + k.sum() * l.sum() / ((n - 1) * (n - 2))
                - 2 / (n - 2) * k.sum(0) @ l.sum(0)) / (n * (n - 3))

    k, l = a @ a.T, b @ b.T
    return float(hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l)))


def penultimate(model: nn.Sequential, x: torch.Tensor) -> np.ndarray:
    """A Sequential model's input to its last layer, in float64."""
    with torch.no_grad():
        return model[:-1](x).double().numpy()


# --- Carlini & Wagner's l2_attack.py and Chen et al.'s EAD (en_attack.py / l1_attack.py) -------
# Transcribed per step from the TensorFlow originals (nn_robust_attacks, EAD_Attack), with their
# images in [-0.5, 0.5] moved to [0, 1] and their gradients written out for a ReLU MLP.


def mlp_margin(weights: tuple[np.ndarray, ...], x: np.ndarray, labels: np.ndarray,
               targeted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits of W2·relu(W1·x + b1) + b2 (N, k), the C&W margin (N,) (untargeted
    z_y − max_{j≠y} z_j, targeted max_{j≠t} z_j − z_t) and its gradient (N, D)."""
    w1, b1, w2, b2 = weights
    h = x @ w1.T + b1
    z = np.maximum(h, 0) @ w2.T + b2
    jac = np.einsum("kh,nh,hd->nkd", w2, (h > 0).astype(float), w1)
    rows = np.arange(len(x))
    others = np.where(np.eye(z.shape[1])[labels] > 0, -np.inf, z)
    j = others.argmax(1)
    margin = z[rows, j] - z[rows, labels]
    grad = jac[rows, j] - jac[rows, labels]
    return (z, margin, grad) if targeted else (z, -margin, -grad)


def _succeeds(z: np.ndarray, label: int, targeted: bool, kappa: float) -> bool:
    """``compare`` of the EAD code (C&W's original subtracts κ for untargeted attacks too)."""
    z = z.copy()
    z[label] += -kappa if targeted else kappa
    return bool(z.argmax() == label) if targeted else bool(z.argmax() != label)


def _next_const(c: np.ndarray, lo: np.ndarray, up: np.ndarray, ok: np.ndarray) -> None:
    """The constant update of both codes, in place (upper bound 1e10 = none yet)."""
    for e in range(len(c)):
        if ok[e]:
            up[e] = min(up[e], c[e])
            if up[e] < 1e9:
                c[e] = (lo[e] + up[e]) / 2
        else:
            lo[e] = max(lo[e], c[e])
            c[e] = (lo[e] + up[e]) / 2 if up[e] < 1e9 else c[e] * 10


def carlini_l2(weights: tuple[np.ndarray, ...], x: np.ndarray, labels: np.ndarray, *,
               targeted: bool = False, kappa: float = 0.0, lr: float = 1e-3,
               binary_steps: int = 9, steps: int = 1000, initial_const: float = 0.01,
               abort_early: bool = True, abort_rule: str = "batch",
               keep_modifier: bool = False, eps_inside: bool = False
               ) -> tuple[np.ndarray, int]:
    """l2_attack.py: Adam (TF's form) on w, x' = tanh(w + atanh((x − ½)·1.999999))/2 + ½, the
    distance to the reconstructed x, the batch loss checked every steps//10 iterations against
    a previous 1e6 before the best is kept; returns (L2 norms to x, inf = none; passes).
    ``abort_rule="every"``: Su et al.'s copy of it, the per-image losses, ``np.all(l >
    prev*.9999)``; ``keep_modifier``: Su et al.'s too, whose per-constant reset
    (``self.init``) re-zeroes Adam's moments and step but not the modifier w; ``eps_inside``:
    Su et al.'s too, whose ``adam_optimizer_tf`` steps by m/sqrt(v + 1e-8), not m/(sqrt(v) +
    1e-8)."""
    n = len(x)
    timg = np.arctanh((x - 0.5) * 1.999999)
    start = np.tanh(timg) / 2 + 0.5
    lo, c, up = np.zeros(n), np.full(n, initial_const), np.full(n, 1e10)
    o_best, o_adv = np.full(n, 1e10), x.copy()
    passes = 0
    w = np.zeros_like(x)
    for _ in range(binary_steps):
        if not keep_modifier:
            w = np.zeros_like(x)
        m, v = np.zeros_like(x), np.zeros_like(x)
        best = np.full(n, 1e10)
        ok = np.zeros(n, bool)
        prev = 1e6
        for it in range(steps):
            img = np.tanh(w + timg) / 2 + 0.5
            z, f, g = mlp_margin(weights, img, labels, targeted)
            passes += 1
            l2 = ((img - start) ** 2).sum(1)
            hinge = c * np.maximum(0.0, f + kappa)
            loss = hinge.sum() + l2.sum() if abort_rule == "batch" else hinge + l2
            grad = (2 * (img - start) + (c * (f + kappa > 0))[:, None] * g) * (
                1 - np.tanh(w + timg) ** 2) / 2
            m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2
            w = w - lr * np.sqrt(1 - 0.999 ** (it + 1)) / (1 - 0.9 ** (it + 1)) * m / (
                np.sqrt(v + 1e-8) if eps_inside else np.sqrt(v) + 1e-8)
            if abort_early and it % (steps // 10) == 0:
                if np.all(loss > prev * 0.9999):
                    break
                prev = loss
            for e in range(n):
                if _succeeds(z[e], labels[e], targeted, kappa):
                    if l2[e] < best[e]:
                        best[e], ok[e] = l2[e], True
                    if l2[e] < o_best[e]:
                        o_best[e], o_adv[e] = l2[e], img[e]
        _next_const(c, lo, up, ok)
    return np.where(o_best < 1e10, np.linalg.norm(o_adv - x, axis=1), np.inf), passes


def chen_ead(weights: tuple[np.ndarray, ...], x: np.ndarray, labels: np.ndarray, *,
             targeted: bool = False, kappa: float = 0.0, lr: float = 1e-2, beta: float = 1e-3,
             rule: str = "l1", binary_steps: int = 9, steps: int = 1000,
             initial_const: float = 0.01, abort_early: bool = True) -> tuple[np.ndarray, int]:
    """en_attack.py / l1_attack.py: a gradient step on the slack y with rate lr·sqrt(1 − k/steps),
    x = the β-shrinkage of it clipped to the box, y = x + (k+1)/(k+4)·(x − x_old) (the code's
    global step, one past the paper's k), then x scored by L1 or EN and its loss (with β·L1)
    checked for the abort; returns (L1 norms to x, inf = none; gradient passes)."""
    n = len(x)
    lo, c, up = np.zeros(n), np.full(n, initial_const), np.full(n, 1e10)
    o_best, o_adv = np.full(n, 1e10), x.copy()
    passes = 0
    for _ in range(binary_steps):
        new, slack = x.copy(), x.copy()
        best = np.full(n, 1e10)
        ok = np.zeros(n, bool)
        prev = 1e6
        for it in range(steps):
            _, f, g = mlp_margin(weights, slack, labels, targeted)
            passes += 1
            z = slack - lr * (1 - it / steps) ** 0.5 * (
                2 * (slack - x) + (c * (f + kappa > 0))[:, None] * g)
            old, d = new, z - x
            new = np.where(d > beta, np.minimum(z - beta, 1.0),
                           np.where(d < -beta, np.maximum(z + beta, 0.0), x))
            slack = new + (it + 1) / (it + 4) * (new - old)
            out, f, _ = mlp_margin(weights, new, labels, targeted)
            l2, l1 = ((new - x) ** 2).sum(1), np.abs(new - x).sum(1)
            loss = (c * np.maximum(0.0, f + kappa)).sum() + l2.sum() + beta * l1.sum()
            if abort_early and it % (steps // 10) == 0:
                if loss > prev * 0.9999:
                    break
                prev = loss
            score = l1 if rule == "l1" else l2 + beta * l1
            for e in range(n):
                if _succeeds(out[e], labels[e], targeted, kappa):
                    if score[e] < best[e]:
                        best[e], ok[e] = score[e], True
                    if score[e] < o_best[e]:
                        o_best[e], o_adv[e] = score[e], new[e]
        _next_const(c, lo, up, ok)
    return np.where(o_best < 1e10, np.abs(o_adv - x).sum(1), np.inf), passes


def su_iter_fgsm(weights: tuple[np.ndarray, ...], x: np.ndarray, labels: np.ndarray,
                 eps: np.ndarray, steps: int, targeted: bool) -> np.ndarray:
    """``one_attack`` of Su et al.'s ``Iter_FGSM_attack.py`` run with ``--use_zvalue`` (their
    README's and ``test_IterFGSM.py``'s setting), on the ReLU MLP of :func:`mlp_margin`,
    pixels in [0, 1] (theirs [-0.5, 0.5]): ``steps`` steps of eps/steps along the sign of the
    gradient of the raw logit (−z_y untargeted, +z_t targeted), clip to the box, then the
    perturbation to [−eps, eps]. ``x`` (N, D), ``eps`` (N,); returns the images (N, D)."""
    w1, b1, w2, b2 = weights
    rows, eps = np.arange(len(x)), np.asarray(eps, dtype=np.float64)[:, None]
    eta = np.zeros_like(x)
    for _ in range(steps):
        h = (x + eta) @ w1.T + b1
        jac = np.einsum("kh,nh,hd->nkd", w2, (h > 0).astype(float), w1)
        grad = jac[rows, labels] if targeted else -jac[rows, labels]
        adv = np.clip(x + eta + eps / steps * np.sign(grad), 0.0, 1.0)
        eta = np.clip(adv - x, -eps, eps)
    return np.clip(x + eta, 0.0, 1.0)
