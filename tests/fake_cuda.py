"""A CUDA device emulated on the CPU, to test the GPU code paths where there is no GPU.

Inside :func:`fake_cuda`, torch says one CUDA device is available; a tensor or module moved
to ``"cuda"`` (``.to``, ``.cuda()``, a factory's ``device=``) stays a CPU tensor tagged as on
the GPU, whose ``.device`` reads ``cuda:0``. What a real GPU refuses raises a
``RuntimeError`` naming the op: an op mixing a GPU tensor with a non-scalar CPU tensor (CPU
0-dim tensors mix legally; a GPU tensor may be indexed with CPU indices), ``.numpy()`` /
``np.asarray`` of a GPU tensor, a CPU ``torch.Generator`` driving a GPU draw.
``torch.autocast("cuda", ...)`` runs as the CPU's autocast. Everything computes on the CPU, so
the results are the CPU's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from unittest import mock

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

CUDA = torch.device("cuda", 0)
_T = torch.Tensor
_MIXING_ALLOWED = {_T.copy_, _T.to, _T.cpu, _T.cuda, _T.is_same_size,
                   torch._has_compatible_shallow_copy_type}


def on_gpu(t: object) -> bool:
    """Whether ``t`` is a tensor on the emulated GPU."""
    return isinstance(t, _T) and t.__dict__.get("_fake_cuda", False)


def _tag(t: _T, gpu: bool) -> _T:
    t.__dict__["_fake_cuda"] = gpu
    return t


def _cuda(device: Any) -> bool:
    return device is not None and (isinstance(device, int) or torch.device(device).type == "cuda")


def _advanced(index: Any) -> bool:
    return any(isinstance(i, _T | list) for i in (index if isinstance(index, tuple) else (index,)))


class _FakeCuda(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name == "_parse_to":
            return func(*args, **kwargs)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, _T)]
        gpu = any(on_gpu(t) for t in tensors)
        if name in ("__get__", "__set__"):  # a property: device, is_cuda, data, grad, ...
            prop = getattr(getattr(func, "__self__", None), "__name__", "")
            if name == "__get__" and prop in ("device", "is_cuda", "is_cpu"):
                here = on_gpu(args[0])
                return {"device": CUDA if here else torch.device("cpu"), "is_cuda": here,
                        "is_cpu": not here}[prop]
            out = func(*args, **kwargs)
            if name == "__set__" and prop == "data":
                _tag(args[0], on_gpu(args[1]))
            elif isinstance(out, _T) and out is not args[0]:
                _tag(out, on_gpu(args[0]))
            return out
        if func in (_T.numpy, _T.__array__) and on_gpu(args[0]) and not kwargs.get("force"):
            raise TypeError(f"[fake cuda] {name}(): can't convert cuda:0 device type tensor to "
                            "numpy. Use Tensor.cpu() to copy the tensor to host memory first.")
        if func in (_T.to, _T.cuda, _T.cpu):
            return self._move(func, args, kwargs)
        device = kwargs.get("device")
        target = _cuda(device) if device is not None else gpu
        if device is not None:
            kwargs["device"] = "cpu"
        generator = kwargs.get("generator")
        if isinstance(generator, torch.Generator) and target and generator.device.type != "cuda":
            raise RuntimeError(f"[fake cuda] {name}: Expected a 'cuda' device type for "
                               "generator but found 'cpu'")
        if gpu and func not in _MIXING_ALLOWED:
            cpu = [t for t in tensors if not on_gpu(t) and t.dim() > 0]
            # a GPU tensor indexed with CPU indices (or given a CPU value through a slice)
            indexing = name == "__getitem__" or (
                name == "__setitem__" and not (any(args[2] is t for t in cpu)
                                               and _advanced(args[1])))
            if cpu and not (indexing and on_gpu(args[0])):
                raise RuntimeError(f"[fake cuda] {name}: expected all tensors to be on the same "
                                   f"device, found cuda:0 and cpu (shapes "
                                   f"{[tuple(t.shape) for t in cpu]} on the CPU)")
        out = func(*args, **kwargs)
        if target:
            inputs = {id(t) for t in tensors}
            if device is not None and isinstance(out, _T) and id(out) in inputs \
                    and not on_gpu(out):  # torch.as_tensor(cpu, device="cuda") copies it
                return _tag(out.view_as(out), True)
            tree_map(lambda o: _tag(o, True) if isinstance(o, _T) and id(o) not in inputs
                     else o, out)
        return out

    @staticmethod
    def _move(func: Any, args: tuple, kwargs: dict) -> _T:
        src, rest = args[0], list(args[1:])
        if func is not _T.to:
            target, out = func is _T.cuda, src
        else:
            other = rest.pop(0) if rest and isinstance(rest[0], _T) else kwargs.pop("other", None)
            copy = kwargs.pop("copy", False)
            if other is not None:
                device, dtype, non_blocking, fmt = None, other.dtype, False, None
                target = on_gpu(other)
            else:
                if len(rest) >= 3 and isinstance(rest[-1], bool) and isinstance(rest[-2], bool):
                    copy = rest.pop()
                device, dtype, non_blocking, fmt = torch._C._nn._parse_to(*rest, **kwargs)
                target = on_gpu(src) if device is None else _cuda(device)
            kw = {"dtype": dtype, "non_blocking": non_blocking, "copy": copy,
                  "memory_format": fmt}
            out = src.to(**{k: v for k, v in kw.items() if v is not None})
        if out is src:
            if on_gpu(src) == target:
                return src
            out = src.view_as(src)  # another tensor object (same data) on the other device
        return _tag(out, target)


_param_new = torch.nn.Parameter.__new__


def _parameter(cls: type, data: _T | None = None, requires_grad: bool = True) -> Any:
    param = _param_new(cls, data, requires_grad)
    return _tag(param, True) if on_gpu(data) else param


class _Autocast(torch.autocast):
    """``torch.autocast("cuda", ...)`` as the CPU's autocast (the real one needs a driver)."""

    def __init__(self, device_type: str, *args: Any, **kwargs: Any) -> None:
        super().__init__("cpu" if device_type == "cuda" else device_type, *args, **kwargs)


@contextlib.contextmanager
def fake_cuda() -> Iterator[None]:
    """Inside: one emulated CUDA device (8 GiB free), see the module's docstring."""
    patches = [
        mock.patch("torch.cuda.is_available", lambda: True),
        mock.patch("torch.cuda.device_count", lambda: 1),
        mock.patch("torch.cuda.current_device", lambda: 0),
        mock.patch("torch.cuda.get_device_name", lambda *a: "Fake CUDA"),
        mock.patch("torch.cuda.mem_get_info", lambda device=None: (8 * 2**30, 16 * 2**30)),
        mock.patch("torch.cuda.get_rng_state",
                   lambda device="cuda": torch.zeros(8, dtype=torch.uint8)),
        mock.patch("torch.cuda.set_rng_state", lambda *a, **k: None),
        mock.patch("torch.cuda.manual_seed_all", lambda *a, **k: None),
        mock.patch("torch.nn.Parameter.__new__", _parameter),
        mock.patch("torch.autocast", _Autocast),
        mock.patch("torch.optim.Optimizer._accelerator_graph_capture_health_check",
                   lambda self: None, create=True),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        stack.enter_context(_FakeCuda())
        yield
