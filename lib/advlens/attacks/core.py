"""Machinery shared by every attack: input validation, model mode, gradients, success checks."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import lp_norms
from advlens.checks import (
    as_tensor,
    check_images,
    check_labels,
    check_positive,  # noqa: F401 (moved to checks; the attacks import it from here)
    frozen,
    images_for,
    model_device,
    model_output,
    output_error,
    positive_number,  # noqa: F401 (moved to checks; the attacks import it from here)
)


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode, parameter gradients off, input gradients on; every mode/flag restored after."""
    with frozen(model), torch.enable_grad():
        yield model


def bookkeeping() -> torch.inference_mode:
    """Inference mode, for an attack loop's own per-step arithmetic (inside :func:`attack_mode`).

    Why: on a small batch each small op costs a few µs of dispatch, about half of it autograd's
    (recording checks, version counters), which this arithmetic never needs; the gradient helpers
    (:func:`logits_and_grad`, :func:`margin_and_grad`) leave inference mode for their pass. The
    numbers are bitwise the same. Tensors made inside are inference tensors: outside, use them
    only in functional ops (no in-place ones, no ``requires_grad_``); :meth:`BestAdversarial.result`
    returns ordinary tensors.
    """
    return torch.inference_mode()


def graph_input(x: Tensor) -> Tensor:
    """``x`` as a fresh leaf that requires its gradient (call outside inference mode): a clone of
    an inference tensor, which cannot enter a graph itself; otherwise ``x.detach()``."""
    return (x.clone() if x.is_inference() else x.detach()).requires_grad_(True)


def prepare(model: nn.Module, x: Tensor, y: Tensor, *,
            targets: Tensor | None = None) -> tuple[Tensor, Tensor, Criterion]:
    """Validate inputs and build the criterion; returns (x, y, criterion) on the model's device.

    ``y`` are the true labels; the attack is targeted iff ``targets`` (the target classes, each
    different from its true label) are given. Labels must be class indices >= 0; the criterion
    refuses, at the first logits, any label that is not one of the model's classes.
    """
    x = check_images(as_tensor(x, "x"), "x")
    if x.dtype in _HALF:
        raise ValueError(
            f"x is {x.dtype}: attacks take float32 or float64 images (their acceptance margin, "
            "64 ulps of the logits, is half a logit or more in bfloat16, and their small "
            "steps are lost to rounding). For half-precision speed keep x in float32 and wrap the "
            "model: advlens.accel.prepare(model, kind='attacks', autocast=torch.bfloat16), "
            "which returns float32 logits.")
    n = x.shape[0]
    y = _class_indices(y, n, "y")
    device = model_device(model)
    given = x.detach()
    x, y = images_for(model, given).to(device), y.to(device)
    if x.untyped_storage().data_ptr() == given.untyped_storage().data_ptr():
        # neither cast nor moved: a copy, so that the attacks' clean reference is theirs
        # whatever the model does to its input
        x = x.clone()
    if targets is None:
        return x, y, Criterion(y, False, _largest(("y", y)))
    targets = _class_indices(targets, n, "targets").to(device)
    same = (targets == y).nonzero().flatten()
    if same.numel():
        raise ValueError(
            f"{same.numel()} targets equal the true label (first at index {int(same[0])}); a "
            "targeted attack needs a different class. Use advlens.attacks.choose_targets."
        )
    return x, y, Criterion(targets, True, _largest(("y", y), ("targets", targets)))


_HALF = (torch.float16, torch.bfloat16)


def model_logits(model: nn.Module, x: Tensor) -> Tensor:
    """``model(x)``, refused with a clear error unless it is one tensor of float32 / float64
    logits of shape (N, classes); logits of another precision than ``x`` are taken in x's (an
    attack's per-step bookkeeping mixes the two, and mixed dtypes crashed ALMA and FAB)."""
    expected = f"one float32 or float64 tensor of logits, shape ({x.shape[0]}, classes)"
    out = model_output(model, x, expected)
    if out.ndim != 2 or out.shape[0] != x.shape[0] or out.dtype in _HALF:
        raise TypeError(output_error(expected,
                                     f"a {out.dtype} tensor of shape {tuple(out.shape)}"))
    if x.requires_grad and torch.is_grad_enabled() and not out.requires_grad:
        # (autograd's own error, "element 0 of tensors does not require grad", named neither)
        raise TypeError(
            "the model's logits carry no gradient with respect to its input: its forward runs "
            "under torch.no_grad() or torch.inference_mode(), detaches its output, or leaves "
            "PyTorch (NumPy). Gradient attacks need a differentiable forward: remove that "
            "decorator or context from forward (the attacks set eval mode and freeze the "
            "parameters themselves).")
    return out if out.dtype == x.dtype else out.to(x.dtype)


class NonFiniteOutput(ValueError):
    """The model's logits, or their gradient with respect to its input, are NaN or ±inf for
    some images: no attack can judge or move those images (a NaN margin is never adversarial, a
    NaN step makes a NaN image), and each misreported them differently (PGD an all-NaN
    adversarial as a success, the minimal attacks inf, the eps searches broken at eps 0; a logit
    of −inf made the acceptance tolerance inf, so that nothing was ever adversarial). ``rows``:
    the indices of those images in the batch the attack was given."""

    def __init__(self, rows: list[int], n: int, what: str) -> None:
        self.rows, self.n, self.what = rows, n, what
        shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        if what == "gradient":
            detail = (
                "the gradient of the model's logits with respect to its input is NaN or inf "
                "(the logits there are finite): a square root, a std or a norm of 0 in the "
                "forward (a constant image) has an infinite derivative. Add an epsilon inside it "
                "(e.g. torch.sqrt(var + 1e-6)), or leave those images out")
        else:
            detail = (
                "the model's logits are NaN or inf: a division by a per-image statistic that is "
                "0 (the std of a constant image), a log of 0 (log-probabilities that underflow: "
                "return the logits instead), an overflow. Add an epsilon in the model's "
                "normalisation (e.g. (x - mean) / (std + 1e-6)), or leave those images out")
        super().__init__(f"{len(rows)} of {n} images (at indices {shown}): {detail}.")

    def reindexed(self, rows: Tensor | int, n: int) -> NonFiniteOutput:
        """The same error for a caller that ran the attack on part of its batch (``n`` images):
        ``rows`` maps each image of that part to its index in the batch (or an offset)."""
        if isinstance(rows, int):
            return NonFiniteOutput([rows + r for r in self.rows], n, self.what)
        return NonFiniteOutput([int(rows[r]) for r in self.rows], n, self.what)


def finite_rows(t: Tensor) -> Tensor:
    """(N,) whether every value of each row (image) of ``t`` is finite; no host sync."""
    return torch.isfinite(t).flatten(1).all(1)


def check_finite(logits: Tensor, *, grad_ok: Tensor | None = None,
                 points: Tensor | None = None) -> None:
    """Refuse (:class:`NonFiniteOutput`) NaN or ±inf ``logits`` (N, k), and the images whose
    ``grad_ok`` (N,) is False (their input gradient at the attack's first pass was not finite,
    :func:`finite_rows`, noted without a sync). One host sync on a GPU: call it on an attack's
    confirming (or clean) forward only. ``points``: where the logits were taken; where those
    are not finite themselves (an attack's iterate), the gradient that moved them is named."""
    ok = finite_rows(logits)
    if grad_ok is not None:
        ok = ok & grad_ok
    if bool(ok.all()):
        return
    bad = ~ok
    what = "logits" if not bool(finite_rows(logits[bad]).all()) else "gradient"
    if points is not None and not bool(finite_rows(points[bad]).all()):
        what = "gradient"  # a NaN iterate: a NaN step moved it there
    raise NonFiniteOutput(bad.nonzero().flatten().tolist(), int(logits.shape[0]), what)


def _class_indices(labels: Tensor, n: int, name: str) -> Tensor:
    labels = check_labels(labels, n, name)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{name} holds the label {int(labels.min())}; class indices are >= 0.")
    return labels


def _largest(*named: tuple[str, Tensor]) -> tuple[tuple[str, int], ...]:
    return tuple((name, int(t.max())) for name, t in named if t.numel())


def check_start(start: Tensor, x0: Tensor) -> Tensor:
    """A warm start for an attack on ``x0``: same shape, moved to x0's device and dtype, clamped
    into [0, 1]; NaN or inf values are refused (a clamp leaves NaN as it is, and the attack then
    reported such an image as not fooled)."""
    start = as_tensor(start, "start").detach().to(x0.device, x0.dtype)
    if start.shape != x0.shape:
        raise ValueError(f"start must have the shape of x {tuple(x0.shape)}; "
                         f"got {tuple(start.shape)}.")
    finite = torch.isfinite(start).flatten(1).all(1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        raise ValueError(f"start contains NaN or inf values ({bad.numel()} of {start.shape[0]} "
                         f"images, the first at index {int(bad[0])}); fix the step that produced "
                         "them, or start those images at x.")
    return start.clamp(0.0, 1.0)


def input_grad(output: Tensor, x: Tensor, grad_output: Tensor | None = None) -> Tensor:
    """d(output)/dx (weighted by ``grad_output``) as a tensor of its own memory: a model that
    first sums its input (over pixels, say, or uses none of it) gets an expanded gradient,
    whose elements share memory, and the attacks update gradients in place."""
    (grad,) = torch.autograd.grad(output, x, grad_output)
    return grad if grad.is_contiguous() else grad.contiguous()


def logits_and_grad(model: nn.Module, x: Tensor,
                    objective: Callable[[Tensor, Tensor], Tensor]
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """One forward+backward pass: detached logits at ``x``, the per-sample objective values,
    and d(sum objective)/dx.

    ``objective(logits, x)`` returns per-sample values; samples are independent, so the gradient
    of the sum is each sample's own gradient.
    """
    with torch.inference_mode(False):  # (it also turns gradients on)
        x = graph_input(x)
        logits = model_logits(model, x)
        values = objective(logits, x)
        grad = input_grad(values.sum(), x)
    return logits.detach(), values.detach(), grad


def margin_and_grad(model: nn.Module, x: Tensor, crit: Criterion,
                    weight: Callable[[Tensor], Tensor] | None = None
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`logits_and_grad` for the objective ``weight(margin)·margin``: detached logits,
    the margin (N,) and d(Σ w·margin)/dx, w = ``weight(margin)`` (default 1) held constant.

    Bitwise what :func:`logits_and_grad` gives with that objective (w detached): the margin's
    gradient with respect to the logits is formed by hand (:meth:`Criterion.margin_backward`).
    """
    with torch.inference_mode(False):
        x = graph_input(x)
        out = model_logits(model, x)
    # the margin and its gradient with respect to the logits: in the caller's mode
    logits = out.detach()
    margin, ties = crit.margin_and_ties(logits)
    if weight is None:
        dz = crit.unit_margin_backward(ties, margin.dtype)
    else:
        dz = crit.margin_backward(ties, weight(margin))
    with torch.inference_mode(False):
        grad = input_grad(out, x, dz)
    return logits, margin, grad


def linearised_l2_distance(margin: Tensor, grad: Tensor) -> Tensor:
    """Per sample, the L2 distance to the boundary of the margin linearised where it was taken:
    max(margin, 0)/||∇margin||₂ (N,), 0 where already across it."""
    return margin.clamp_min(0) / lp_norms(grad, "l2").clamp_min(1e-12)


@torch.no_grad()
def forward(model: nn.Module, x: Tensor, *, confirm: bool = False) -> Tensor:
    """One forward-only pass (no graph). ``confirm``: an attack's confirming (or clean) pass,
    whose logits are refused if not finite (:func:`check_finite`, one host sync)."""
    logits = model_logits(model, x)
    if confirm:
        check_finite(logits, points=x)
    return logits


def tqdm_disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for a ``progress`` flag; None lets tqdm decide (off without a TTY)."""
    return None if progress is None else not progress


def cosine(i: int, n: int, start: float, end: float) -> float:
    """Cosine annealing from ``start`` (i = 0) towards ``end`` (i = n)."""
    return end + (start - end) * (1 + math.cos(math.pi * i / max(n, 1))) / 2
