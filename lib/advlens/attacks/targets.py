"""Target classes for targeted attacks (Su et al.: least-likely, top-2, random)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from advlens.attacks.core import forward, prepare
from advlens.checks import as_tensor, eval_mode

TargetMode = Literal["least-likely", "top-2", "random"]
TARGET_MODES: tuple[str, ...] = ("least-likely", "top-2", "random")


def choose_targets(model: nn.Module, x: Tensor, y: Tensor, mode: str = "random",
                   generator: torch.Generator | None = None) -> Tensor:
    """One target class ≠ ``y`` per image.

    - ``"least-likely"``: the class with the lowest logit (among classes ≠ y);
    - ``"top-2"``: the most likely class other than y (the second most likely for a correctly
      classified image);
    - ``"random"``: uniform over the classes ≠ y, drawn with ``generator``.
    One forward pass (eval mode) gives the number of classes and the ranking.
    """
    if mode not in TARGET_MODES:
        raise ValueError(f"mode must be one of {TARGET_MODES}; got {mode!r}.")
    home = as_tensor(x, "x").device
    with eval_mode(model):
        x0, y0, crit = prepare(model, x, y)
        logits = forward(model, x0)
    k = logits.shape[1]
    if k < 2:  # before the criterion's check, whose message speaks of untargeted attacks
        raise ValueError(f"targeted attacks need a model of at least 2 classes; this one has {k}. "
                         "For a binary classifier with one logit z, return two: "
                         "torch.cat([-z, z], dim=1) / 2 (their margin is z).")
    crit.check_outputs(logits)
    if mode in ("least-likely", "top-2"):
        # the first class other than y in rank order (ties: the lowest index, as argmax). Not a
        # masked argmax: where every other logit is already ∓inf, that returned y itself
        order = logits.argsort(dim=1, descending=mode == "top-2", stable=True)
        t = order.gather(1, (order != y0[:, None]).int().argmax(1, keepdim=True)).squeeze(1)
    else:
        device = generator.device if generator is not None else torch.device("cpu")
        r = torch.randint(0, k - 1, (x0.shape[0],), generator=generator, device=device)
        r = r.to(y0.device)
        t = r + (r >= y0).long()
    return t.to(home)
