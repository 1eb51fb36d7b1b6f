"""Representation extraction: the penultimate layer (input of the final linear classifier) or
any named module, batched, with no hook left behind and no in-place corruption."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from advlens.checks import (
    as_tensor,
    check_labels,
    check_positive_int,
    eval_mode,
    forward_keeping_input,
    images_for,
    model_device,
    model_output,
)


class _Captured(Exception):
    """Raised inside a hook to stop the forward pass once the representation is captured."""


def final_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """Name and module of the final linear classifier (the last ``nn.Linear`` registered).

    Zoo models and torchvision/timm classifiers register their head last; a model whose head is
    not the last ``nn.Linear`` should be queried with an explicit ``layer=``. A timm model (or a
    wrapper of one) is refused when its ``get_classifier()`` is not this ``nn.Linear``: a feature
    extractor (``num_classes=0``, whose last ``nn.Linear`` is inside the last block) or a model
    with several heads (DeiT-distilled's ``head``/``head_dist``, CrossViT's per-branch heads).
    """
    _refuse_torchscript(_one_device(model))  # (its layers are no nn.Linear: "has no nn.Linear")
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear layer; pass layer='<module name>' "
            "to choose the representation explicitly."
        )
    name, last = found[-1]
    # timm models name their head (also inside a wrapper, e.g. the zoo's NormalizedClassifier)
    owners = [m for m in model.modules() if callable(getattr(m, "get_classifier", None))
              and any(sub is last for sub in m.modules())]
    head = owners[-1].get_classifier() if owners else last
    if head is not last:
        several = isinstance(head, tuple | list | nn.ModuleList)
        kind = tuple(type(h).__name__ for h in head) if several else type(head).__name__
        where = next((n for n, m in model.named_modules() if m is head and n), None)
        hint = (f"layer={where!r} (an identity head: its output is the features)"
                if isinstance(head, nn.Identity) and where else "layer='<module name>'")
        raise ValueError(
            f"{type(owners[-1]).__name__}.get_classifier() is {kind}, not its last nn.Linear "
            f"({name!r}), so no single nn.Linear takes the penultimate representation; pass "
            f"{hint} (a module's output is taken), or wrap the model so that one nn.Linear "
            "head, registered last, takes the representation you want."
        )
    return name, last


def resolve_layer(model: nn.Module, layer: str | None) -> tuple[nn.Module, bool]:
    """The module to hook and whether to capture its input (True) or output (False)."""
    if layer is None:
        return final_linear(model)[1], True
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):  # its repr was read as a name: "no module named Linear(...)"
        names = [n for n, m in modules.items() if m is layer]
        where = (f"this one is named {names[0]!r}: pass layer={names[0]!r}" if names else
                 f"this {type(layer).__name__} is not one of {type(model).__name__}'s modules")
        raise TypeError(f"layer must be a module's name in model.named_modules() (a str), not "
                        f"the module itself; {where}.")
    if layer not in modules:
        names = [n for n in modules if n][:20]
        raise ValueError(
            f"{type(model).__name__} has no module named {layer!r}. Module names are those of "
            f"model.named_modules(), e.g. {names}."
        )
    _refuse_torchscript(modules[layer])
    return modules[layer], False


def _refuse_torchscript(module: nn.Module) -> None:
    """A TorchScript module (``torch.jit.script`` / ``trace``) is refused by name: its layers run
    inside TorchScript, which calls no Python hook (torch's "register_forward_hook is not
    supported on ScriptModules", or, traced, a hook that never fired)."""
    if isinstance(module, torch.jit.ScriptModule):
        raise TypeError(
            f"{type(module).__name__} is a TorchScript module (torch.jit.script or "
            "torch.jit.trace): TorchScript runs its layers without calling forward hooks, so no "
            "representation can be read from it. Pass the original (eager) nn.Module; the "
            "attacks, predict and accuracy take the TorchScript model as it is.")


def representation_graph(model: nn.Module, x: Tensor, layer: str | None = None) -> Tensor:
    """Differentiable representation of one batch, flattened to (N, D).

    The model's mode is left as it is (call inside :func:`advlens.checks.eval_mode`). The forward
    pass stops at the captured layer, so nothing past it is computed.
    """
    return capture(model, x, *resolve_layer(model, layer))


@contextmanager
def _hooked(module: nn.Module, take_input: bool, *, stop: bool) -> Iterator[list[Tensor]]:
    """Collect the input (or output) of every call of ``module`` while the context is open;
    ``stop`` ends the forward pass at the first call. The hook is always removed."""
    captured: list[Tensor] = []

    def hook(_module: nn.Module, args: tuple, output: Tensor | None = None) -> None:
        if take_input:  # None when called with keyword arguments only
            value = args[0] if args else None
        else:
            value = output
        if isinstance(value, tuple) and value:
            value = value[0]
        if not isinstance(value, Tensor):
            what = "positional input" if take_input else "output"
            raise TypeError(
                f"the {what} of {type(_module).__name__} is {type(value).__name__}, not a tensor, "
                "so it cannot be taken as a representation; pass layer='<module name>' naming a "
                "module whose output is one tensor (or a tuple whose first item is one)."
            )
        # clone: a later in-place op (ReLU(inplace=True), re-used modules) must not alter it
        captured.append(value.clone())
        if stop:
            raise _Captured

    handle = (module.register_forward_pre_hook(hook) if take_input
              else module.register_forward_hook(hook))
    try:
        yield captured
    finally:
        handle.remove()


def _one_device(model: nn.Module) -> nn.Module:
    """The module an ``nn.DataParallel`` wraps (the model itself otherwise): its replicas share
    the wrapped modules' hooks, so on several GPUs a hook fires once per replica, each with its
    device's chunk of the batch, and only one chunk would be captured. The wrapped module holds
    the parameters on the first device, where the batch is."""
    while isinstance(model, nn.DataParallel):
        model = model.module
    return model


def _first(captured: list[Tensor], module: nn.Module) -> Tensor:
    if not captured:
        raise RuntimeError(f"{type(module).__name__} was never called in the forward pass.")
    return captured[0].flatten(1)


def capture(model: nn.Module, x: Tensor, module: nn.Module, take_input: bool) -> Tensor:
    """Run ``model(x)`` up to ``module`` and return its input (or output) flattened to (N, D).

    A module called several times in one forward pass (a shared block, a ReLU re-used inside a
    residual block) gives its first call's input (or output).

    For loops that call the same layer many times: resolve it once with :func:`resolve_layer`.
    An ``nn.DataParallel`` model runs as its wrapped module, on one device (see
    :func:`_one_device`).
    """
    with _hooked(module, take_input, stop=True) as captured:
        try:
            forward_keeping_input(_one_device(model), x)
        except _Captured:
            pass
    return _first(captured, module)


def forward_and_capture(model: nn.Module, x: Tensor, module: nn.Module,
                        take_input: bool) -> tuple[Tensor, Tensor]:
    """The logits ``model(x)`` and, from the same complete (differentiable) forward pass, the
    input (or output) of ``module`` flattened to (N, D), as :func:`capture` takes it."""
    with _hooked(module, take_input, stop=False) as captured:
        logits = forward_keeping_input(_one_device(model), x)
    return logits, _first(captured, module)


def _batches(x: Tensor, batch_size: int, device: torch.device) -> Iterator[Tensor]:
    """``x`` in batches on ``device``, each a copy: a model that writes into its input (refused
    by :func:`~advlens.checks.forward_keeping_input`) overwrites no caller's images first."""
    for start in range(0, x.shape[0], batch_size):
        yield x[start:start + batch_size].to(device, copy=True)


def _model_input(model: nn.Module, x: Tensor, batch_size: int) -> tuple[Tensor, int]:
    """``x`` as a non-empty tensor the model takes (:func:`~advlens.checks.images_for`), and
    ``batch_size`` checked. Integer images are refused: a model that normalises first
    (``(x - mean) / std``, every zoo model) promotes 0–255 pixels to float without an error."""
    x = as_tensor(x, "x")
    size = check_positive_int(batch_size, "batch_size")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x is an empty batch (shape {tuple(x.shape)}); pass at least one image.")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point images in [0, 1]; got dtype {x.dtype}. "
                         "Divide uint8 images by 255.")
    return images_for(model, x), size


@torch.no_grad()
def representation(model: nn.Module, x: Tensor, layer: str | None = None, *,
                   batch_size: int = 256, device: torch.device | str | None = None) -> Tensor:
    """Representation (N, D) of images ``x`` at ``layer`` (default: input of the final linear).

    Runs in eval mode (the model's own modes are restored), in batches, on the model's device;
    the result is returned on the CPU in float32 (float64 where the layer's output is float64:
    a float64 model keeps its precision). A module called several times in one forward
    pass (e.g. the ``relu`` of a torchvision ``BasicBlock``) gives its first call's output.
    """
    x, batch_size = _model_input(model, x, batch_size)
    device = torch.device(device) if device is not None else model_device(model)
    outputs = []
    with eval_mode(model):
        for batch in _batches(x, batch_size, device):
            rep = representation_graph(model, batch, layer)
            outputs.append(rep.to(device="cpu", dtype=torch.float64
                                  if rep.dtype == torch.float64 else torch.float32))
    return torch.cat(outputs)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, *, batch_size: int = 512,
            dtype: torch.dtype | None = torch.float32) -> Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched, returned on the CPU in ``dtype``
    (None: the model's own output dtype)."""
    x, batch_size = _model_input(model, x, batch_size)
    device = model_device(model)
    with eval_mode(model):
        logits = torch.cat([model_output(model, b).cpu() for b in _batches(x, batch_size, device)])
    return logits if dtype is None else logits.to(dtype)


def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    logits = predict(model, x, batch_size=batch_size)
    # predict returns CPU logits; labels may live on the model's device
    y = check_labels(y, logits.shape[0], "y", classes=logits.shape[1]).cpu()
    return float((logits.argmax(1) == y).float().mean())
