"""A model wrapper that clocks the CPU time spent in the wrapped model's own forward and backward
passes, so an attack's overhead (everything else it does per step) is measured inside the same run,
free of the drift between separate timed runs on a shared machine."""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn


class ModelClock(nn.Module):
    """Wraps ``model``; ``seconds`` accumulates this process's CPU time inside its forward calls
    and inside the backward passes through them (from the gradient reaching the output to the
    gradient reaching the input: hooks on both ends)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.seconds = 0.0
        self._backward_from = 0.0

    def reset(self) -> None:
        self.seconds = 0.0

    def _backward_starts(self, grad: Tensor) -> Tensor:
        self._backward_from = time.process_time()
        return grad

    def _backward_ends(self, grad: Tensor) -> Tensor:
        self.seconds += time.process_time() - self._backward_from
        return grad

    def forward(self, x: Tensor) -> Tensor:
        start = time.process_time()
        with_grad = torch.is_grad_enabled() and x.requires_grad
        if with_grad:
            x = x.view_as(x)  # a non-leaf to hook: its gradient is the backward's last result
            x.register_hook(self._backward_ends)
        out = self.inner(x)
        if with_grad:
            out.register_hook(self._backward_starts)
        self.seconds += time.process_time() - start
        return out
