"""Representation inversion (Jones et al. 2022, after Ilyas et al. 2019).

Starting from a seed image ``s``, find an image whose representation matches a target image's:
minimise ``||Rep(x) - Rep(t)||_2 / ||Rep(t)||_2`` per sample by steps in input space. The update is
the paper's: the input gradient is normalised per sample by its L2 norm, "momentum" is an average
``m <- 0.9 m + 0.1 g``, the step is ``x <- x - step_size * m`` and the image is clamped to
``[0, 1]`` after each step (never inside the forward pass). Each sample's best (lowest-loss)
iterate is kept.

The reference implementation (the ``robustness`` library's attacker, see :mod:`advlens.compat`)
clamps inside its normalisation layer. What that does to pixels at exactly 0 or 1 depends on the
torch version: up to the 2026 change of pytorch#184574, ``torch.clamp`` had subgradient 1 at its
bounds (pytorch#7049, 2018), so on the PyTorch 1.x of Jones et al. (2022) nothing froze and the
reference equals the default here (``freeze_at_bounds=False``); where ``torch.clamp`` has zero
gradient at its bounds (torch 2.14 here), every pixel that is, or once becomes, exactly 0 or 1
never moves again on the reference path, which ``freeze_at_bounds=True`` reproduces.
:func:`advlens.compat.reference_freezes_at_bounds` says which holds for the installed torch.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.checks import (
    as_tensor,
    check_bool,
    check_different_labels,
    check_images,
    check_labels,
    check_positive_int,
    frozen,
    model_device,
    model_dtype,
    one_number,
    positive_number,
)
from advlens.features import capture, resolve_layer

_TINY = 1e-12  # guards the early-stopping gain against a zero checkpoint loss


@dataclass(frozen=True)
class EarlyStop:
    """Stop a sample once its best loss improved by less than ``rel_tol`` (relative) over the
    last ``patience`` iterations; it then leaves the batch, so later iterations cost less.

    Checked every ``patience`` iterations (one device sync per check). A sample stopped at
    iteration ``k`` has taken ``k`` steps and its last iterate is the one evaluated at ``k``.
    Samples never interact, so the result does not depend on the batch size either way."""

    patience: int = 100
    rel_tol: float = 1e-3

    def __post_init__(self) -> None:
        # an int: at patience=2.5 the check ran at iterations 5, 10, ... (multiples of 2.5)
        object.__setattr__(self, "patience",
                           check_positive_int(self.patience, "EarlyStop.patience"))
        if not self.rel_tol >= 0:
            raise ValueError(f"EarlyStop.rel_tol must be >= 0; got {self.rel_tol}.")


@dataclass
class InversionResult:
    """What :func:`invert` returns (all tensors on the CPU).

    images: (N, C, H, W) in [0, 1] in the model's dtype (float32 for most): each sample's best
        iterate if ``use_best``, else the last.
    loss: (N,) relative representation distance of ``images`` to their targets.
    final_loss: (N,) loss of the last iterate; best_loss: (N,) lowest loss over all iterates.
    iterations: (N,) gradient steps each sample took (fewer than asked where it stopped early).
    history: (iterations + 1, N) loss of every iterate (NaN after an early stop), if requested.
    """

    images: Tensor
    loss: Tensor
    final_loss: Tensor
    best_loss: Tensor
    iterations: Tensor
    history: Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def mean_loss(self) -> float:
        return float(self.loss.mean())


def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    """Losses are float64 for float64 models and float32 otherwise (also under autocast)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def relative_distance(rep: Tensor, target_rep: Tensor, target_norm: Tensor | None = None) -> Tensor:
    """Per-sample ``||rep - target_rep||_2 / ||target_rep||_2`` (the inversion loss), computed in
    float64 if ``target_rep`` is float64 and in float32 otherwise (also under autocast)."""
    rep, target_rep = as_tensor(rep, "rep"), as_tensor(target_rep, "target_rep")
    if rep.ndim != 2 or rep.shape != target_rep.shape:  # (torch's broadcast error named neither)
        raise ValueError(f"rep and target_rep must be (N, D) of one shape; got "
                         f"{tuple(rep.shape)} and {tuple(target_rep.shape)}.")
    dtype = _loss_dtype(target_rep.dtype)
    rep, target_rep = rep.to(dtype), target_rep.to(dtype)
    if target_norm is None:
        target_norm = torch.linalg.vector_norm(target_rep, dim=1)
    return torch.linalg.vector_norm(rep - target_rep, dim=1) / target_norm


def draw_pairs(labels: Tensor | np.ndarray | list[int], n: int, *,
               generator: torch.Generator | None = None,
               seed: int | None = None) -> tuple[Tensor, Tensor]:
    """Draw ``n`` (seed, target) index pairs whose labels always differ.

    Seeds are a random permutation of the indices (with replacement only when ``n`` exceeds their
    number); each target is uniform over the images of every other class. Pass ``generator`` or
    ``seed`` for a reproducible draw.
    """
    if isinstance(labels, list | tuple):  # a list of ints too, as everywhere labels are taken
        labels = check_labels(labels, len(labels), "labels")
    labels = as_tensor(labels, "labels")
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (one class index per image); got shape "
                         f"{tuple(labels.shape)}.")
    labels = check_labels(labels, labels.shape[0], "labels").cpu()
    # an int (NumPy's too): 2.0 failed in slicing, True in torch.rand, both naming neither
    n = check_positive_int(n, "n")
    classes, counts = torch.unique(labels, return_counts=True)
    if classes.numel() < 2:
        raise ValueError("draw_pairs needs images of at least two classes (pairs must differ in "
                         "label).")
    if generator is None:
        seed = check_positive_int(0 if seed is None else seed, "seed", least=0)
        generator = torch.Generator().manual_seed(seed)
    total = labels.shape[0]
    if n <= total:
        seed_idx = torch.randperm(total, generator=generator)[:n]
    else:
        seed_idx = torch.randint(0, total, (n,), generator=generator)
    # Sort by class; a target is drawn uniformly from the positions outside the seed's class block.
    order = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    cls = torch.searchsorted(classes, labels[seed_idx])
    start, count = starts[cls], counts[cls]
    r = (torch.rand(n, generator=generator, dtype=torch.float64) * (total - count)).long()
    r = torch.minimum(r, total - count - 1)
    pos = torch.where(r < start, r, r + count)
    return seed_idx, order[pos]


def _validate(seeds: Tensor, targets: Tensor, seed_labels: Tensor | None,
              target_labels: Tensor | None) -> None:
    check_images(seeds, "seeds")
    check_images(targets, "targets")
    if seeds.shape != targets.shape:
        raise ValueError(f"seeds and targets must have the same shape; got {tuple(seeds.shape)} "
                         f"and {tuple(targets.shape)} (one target per seed).")
    if (seed_labels is None) != (target_labels is None):
        raise ValueError("pass both seed_labels and target_labels (to check that every pair "
                         "differs in label), or neither.")
    if seed_labels is not None and target_labels is not None:
        n = seeds.shape[0]
        check_different_labels(check_labels(seed_labels, n, "seed_labels"),
                               check_labels(target_labels, n, "target_labels"))


class _Inverter:
    """One batch of the inversion loop; every buffer is allocated once per batch."""

    def __init__(self, model: nn.Module, layer: str | None, autocast: torch.dtype | None) -> None:
        self.model = model
        self.layer = resolve_layer(model, layer)  # once: the loop calls rep() every iteration
        self.autocast = autocast
        # fp16 gradients can underflow; the per-sample normalisation makes any loss scale harmless
        self.loss_scale = 2.0**12 if autocast == torch.float16 else 1.0

    def rep(self, x: Tensor) -> Tensor:
        if self.autocast is None:
            return capture(self.model, x, *self.layer)
        with torch.autocast(device_type=x.device.type, dtype=self.autocast):
            return capture(self.model, x, *self.layer)

    def run(self, seeds: Tensor, targets: Tensor, *, iterations: int, step_size: float,
            momentum: float, freeze_at_bounds: bool, early_stop: EarlyStop | None,
            history: Tensor | None) -> dict[str, Tensor]:
        with torch.no_grad():
            target_rep = self.rep(targets)
            target_rep = target_rep.to(_loss_dtype(target_rep.dtype))
            target_norm = torch.linalg.vector_norm(target_rep, dim=1)
            finite = torch.isfinite(target_rep).all(dim=1)
            if not bool(finite.all()):
                bad = (~finite).nonzero().flatten().tolist()
                raise ValueError(f"targets at batch positions {bad[:10]} have a representation "
                                 "holding NaN or inf (the model's output there is not finite); "
                                 "check the model and the target images.")
            if not bool(torch.isfinite(target_norm).all()):
                bad = (~torch.isfinite(target_norm)).nonzero().flatten().tolist()
                raise ValueError(f"targets at batch positions {bad[:10]} have a representation "
                                 f"too large for its L2 norm in {target_rep.dtype} (the norm is "
                                 "inf, so every relative loss would read 0); rescale the "
                                 "representation (or use a float64 model).")
            if not bool((target_norm > 0).all()):
                bad = (target_norm <= 0).nonzero().flatten().tolist()
                raise ValueError(f"targets at batch positions {bad[:10]} have an all-zero "
                                 "representation, so the relative loss is undefined; use other "
                                 "targets (or another layer=).")
        n = seeds.shape[0]
        x = seeds.detach().clone().requires_grad_(True)  # updated in place under no_grad
        m = torch.zeros_like(x)
        best_x = x.detach().clone()
        best_loss = torch.full((n,), math.inf, device=x.device, dtype=target_rep.dtype)
        norm_shape = (-1,) + (1,) * (x.ndim - 1)
        # without early stopping the working tensors are the results; with it, converged samples
        # leave the batch, `active` maps working rows to batch positions and `out` is separate
        active = torch.arange(n, device=x.device) if early_stop else None
        own = (lambda t: t.clone()) if early_stop else (lambda t: t)
        out = {"x": own(x.detach()), "best_x": own(best_x), "best_loss": own(best_loss),
               "final_loss": torch.empty_like(best_loss),
               "steps": torch.full((n,), iterations, dtype=torch.long, device=x.device)}
        checkpoint = best_loss.clone() if early_stop else None
        for it in range(iterations):
            rep = self.rep(x)
            with torch.no_grad():
                diff = rep.to(target_rep.dtype) - target_rep
                dist = torch.linalg.vector_norm(diff, dim=1)
                loss = dist / target_norm
                # d loss_i / d rep_i = diff_i / (||diff_i|| ||t_i||): the positive factor
                # 1 / ||t_i|| cancels in the per-sample gradient normalisation below, so autograd
                # is seeded with the unit vectors diff_i / ||diff_i|| (scaled against fp16
                # underflow) and runs only through the model. Seeding with diff_i itself made the
                # gradient scale with the square of the representation's scale: tiny ones fell
                # under the zero-gradient guard and stalled, large ones overflowed its norm
                diff.mul_((self.loss_scale / torch.where(dist > 0, dist, 1.0)).unsqueeze(1))
                (grad,) = torch.autograd.grad(rep, x, grad_outputs=diff.to(rep.dtype))
                if history is not None:
                    if active is None:
                        history[it].copy_(loss)
                    else:
                        history[it].index_copy_(0, active, loss)
                self._keep_best(loss, x, best_loss, best_x, norm_shape)
                if checkpoint is not None and it == 0:
                    # the first iterate's loss, not inf: the check at `patience` then has a gain
                    checkpoint.copy_(best_loss)
                elif early_stop is not None and it % early_stop.patience == 0:
                    gain = (checkpoint - best_loss) / checkpoint.clamp_min(_TINY)
                    done = gain < early_stop.rel_tol
                    if bool(done.any()):  # the one sync per check
                        rows = done.nonzero().flatten()
                        where = active[rows]
                        out["x"][where] = x[rows]
                        out["best_x"][where] = best_x[rows]
                        out["best_loss"][where] = best_loss[rows]
                        out["final_loss"][where] = loss[rows]
                        out["steps"][where] = it
                        keep = (~done).nonzero().flatten()
                        if keep.numel() == 0:
                            return out
                        active, target_rep, target_norm = (
                            active[keep], target_rep[keep], target_norm[keep])
                        best_x, best_loss, m, grad = (
                            best_x[keep], best_loss[keep], m[keep], grad[keep])
                        x = x.detach()[keep].requires_grad_(True)
                        checkpoint = best_loss.clone()
                    else:
                        checkpoint.copy_(best_loss)
                if freeze_at_bounds:
                    # the reference path's clamp-in-forward: no gradient at exactly 0 or 1
                    grad.masked_fill_((x == 0) | (x == 1), 0.0)
                gnorm = torch.linalg.vector_norm(grad.flatten(1), dim=1)
                gnorm = torch.where(gnorm > 0, gnorm, 1.0)  # only a zero gradient: a zero step
                grad.div_(gnorm.view(norm_shape))
                m.lerp_(grad, 1.0 - momentum)  # m <- momentum * m + (1 - momentum) * g
                x.sub_(m, alpha=step_size).clamp_(0.0, 1.0)
        with torch.no_grad():
            final_loss = relative_distance(self.rep(x), target_rep, target_norm)
            self._keep_best(final_loss, x, best_loss, best_x, norm_shape)
            if active is None:
                out["final_loss"].copy_(final_loss)
                if history is not None:
                    history[iterations].copy_(final_loss)
            else:
                out["x"][active] = x
                out["best_x"][active] = best_x
                out["best_loss"][active] = best_loss
                out["final_loss"][active] = final_loss
                if history is not None:
                    history[iterations].index_copy_(0, active, final_loss)
        return out

    @staticmethod
    def _keep_best(loss: Tensor, x: Tensor, best_loss: Tensor, best_x: Tensor,
                   shape: tuple[int, ...]) -> None:
        better = loss < best_loss
        torch.where(better.view(shape), x, best_x, out=best_x)
        torch.where(better, loss, best_loss, out=best_loss)


def invert(model: nn.Module, seeds: Tensor, targets: Tensor, *,
           seed_labels: Tensor | None = None, target_labels: Tensor | None = None,
           iterations: int = 2000, step_size: float = 1 / 8, momentum: float = 0.9,
           batch_size: int = 32, use_best: bool = True, layer: str | None = None,
           freeze_at_bounds: bool = False, early_stop: EarlyStop | None = None,
           history: bool = False, autocast: torch.dtype | None = None,
           channels_last: bool = False, progress: bool = True) -> InversionResult:
    """Invert ``targets``' representations through ``model``, starting from ``seeds``.

    Defaults are the paper's (2000 iterations, step 1/8, momentum 0.9, batch 32, best iterate).
    ``seeds``/``targets``: (N, C, H, W) in [0, 1], one target per seed. Give ``seed_labels`` and
    ``target_labels`` to have pairs of one class refused (the protocol forbids them; see
    :func:`draw_pairs`). ``layer``: representation layer (default: input of the final linear).
    ``freeze_at_bounds``: zero the gradient of pixels at exactly 0 or 1, as the reference code
    path does on a torch whose ``clamp`` has zero gradient at its bounds (default False: bound
    pixels may move back inside, as on the paper's PyTorch 1.x; see the module docstring).
    ``early_stop``: an :class:`EarlyStop` (default None: always run ``iterations``).
    ``autocast``: run the model
    under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``); the loss, gradient
    normalisation and update stay in float32. ``channels_last``: keep the images in channels-last
    memory format (the model is not modified). The model runs in eval mode with its parameters
    frozen; its modes and ``requires_grad`` flags are restored afterwards. It takes its own
    gradients, so it may be called inside a caller's ``torch.no_grad()`` or
    ``torch.inference_mode()`` (the results are ordinary tensors). Samples never interact,
    so results do not depend on ``batch_size`` (up to floating-point rounding of batched kernels,
    which the normalised steps can amplify over many iterations).
    """
    seeds = as_tensor(seeds, "seeds")
    targets = as_tensor(targets, "targets")
    _validate(seeds, targets, seed_labels, target_labels)
    try:  # ints only (NumPy's too): 2e3 failed inside the loop, True ran one iteration
        counts = [None if isinstance(c, bool) else operator.index(c)
                  for c in (iterations, batch_size)]
    except TypeError:
        counts = [None, None]
    if None in counts or counts[0] < 0 or counts[1] < 1:
        raise ValueError(f"need iterations >= 0 and batch_size >= 1, both ints; got "
                         f"{iterations!r}, {batch_size!r}.")
    iterations, batch_size = counts
    momentum = one_number("momentum", momentum)  # (a string failed on "<")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1); got {momentum}.")
    step_size = positive_number("step_size", step_size)  # (float("0.1") took a string)
    use_best = check_bool(use_best, "use_best")
    freeze_at_bounds = check_bool(freeze_at_bounds, "freeze_at_bounds")
    history = check_bool(history, "history")
    channels_last = check_bool(channels_last, "channels_last")
    if early_stop is not None and not isinstance(early_stop, EarlyStop):
        raise TypeError("early_stop must be an advlens.inversion.EarlyStop or None.")
    device = model_device(model)
    dtype = model_dtype(model) or torch.float32
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    inverter = _Inverter(model, layer, autocast)
    n = seeds.shape[0]
    out: dict[str, list[Tensor]] = {k: [] for k in ("x", "best_x", "best_loss", "final_loss",
                                                     "steps")}
    starts = range(0, n, batch_size)
    # the loop takes its own gradients: also inside a caller's no_grad() or inference_mode()
    # (there autograd failed with "element 0 of tensors does not require grad"); tensors made
    # here (the history updated in place too) are ordinary ones, an inference seed is cloned
    with frozen(model), torch.inference_mode(False), torch.enable_grad():
        hist = (torch.full((iterations + 1, n), math.nan, dtype=_loss_dtype(dtype))
                if history else None)
        for start in tqdm(starts, desc="Inverting", disable=not progress, leave=False):
            sl = slice(start, start + batch_size)
            s = seeds[sl].to(device, dtype).contiguous(memory_format=memory_format)
            t = targets[sl].to(device, dtype).contiguous(memory_format=memory_format)
            h = None if hist is None else hist[:, sl].to(device, copy=True)
            res = inverter.run(
                s, t, iterations=iterations, step_size=step_size, momentum=momentum,
                freeze_at_bounds=freeze_at_bounds, early_stop=early_stop, history=h)
            for key in out:
                out[key].append(res[key].cpu())
            if h is not None:
                hist[:, sl] = h.cpu()
        cat = {key: torch.cat(values) for key, values in out.items()}
        images = (cat["best_x"] if use_best else cat["x"]).contiguous()
    return InversionResult(
        images=images,
        loss=cat["best_loss"] if use_best else cat["final_loss"],
        final_loss=cat["final_loss"], best_loss=cat["best_loss"], iterations=cat["steps"],
        history=hist)
