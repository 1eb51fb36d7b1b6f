"""GPU fast paths with identical code on the CPU: autocast, channels-last, ``torch.compile`` and a
batch size chosen from free memory.

:func:`prepare` wraps a model (taking [0, 1] images, like every advlens model) so that attacks,
inversion and feature extraction run unchanged on it: :class:`Autocast` runs the forward pass
under ``torch.autocast`` and returns float32 logits (hooks on inner layers, e.g. the penultimate
one, still see the inner modules); channels-last memory format and ``torch.compile`` are
optional. On a CPU the defaults change nothing (no autocast, contiguous format, no compile).

Where bf16 autocast is used by default (:data:`BF16_DEFAULT`): only for computations whose
results it changed by less than :data:`BF16_TOLERANCE` when measured on CPU-bf16 against fp32
(``benchmarks/bench_bf16.py``; the numbers are in ``benchmarks/README.md``).
:func:`batch_size_for` measures the memory one image needs (the tensors autograd saves for the
backward pass, via ``saved_tensors_hooks``) and divides the free memory by it -- the same code on
CPU (free RAM) and GPU (``torch.cuda.mem_get_info``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from advlens.rng import seeded

# Relative change of a result (inversion loss, minimal attack norm) or absolute change of a CKA
# value above which bf16 is not the default for that computation.
BF16_TOLERANCE = 0.01
# Measured on CPU-bf16 (benchmarks/bench_bf16.py, 4 laptop-zoo models): CKA moves by at most
# 1.3e-3 (within); the final relative inversion loss by 7-33 % (it is ~0.3 %, bf16's own
# resolution); minimal-L2 norms by 0.74-2.58 % per image on average (resnet8-xs and vit-xs above
# the tolerance, single images up to 53 %; rerun of 2026-12-05 on the rebuilt zoo, where the
# first measurement had 0.01-0.77 %): bf16 for features only.
BF16_DEFAULT = {"features": True, "inversion": False, "attacks": False}


class Autocast(nn.Module):
    """``model(x)`` under ``torch.autocast(dtype)`` (optionally channels-last input), returning
    float32 outputs; the wrapped model is ``self.model``."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None = torch.bfloat16,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.channels_last = channels_last

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype is None:
            return self.model(x)
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            out = self.model(x)
        # anything but one tensor is left to the caller's check (a tuple has no .float())
        return out.float() if isinstance(out, Tensor) else out


def unwrap(model: nn.Module) -> nn.Module:
    """``model`` without the :class:`Autocast` and ``torch.compile`` wrappers of :func:`prepare`
    (any depth)."""
    while True:
        if isinstance(model, Autocast):
            model = model.model
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DEVICE_ENV = "ADVLENS_DEVICE"


def env_device() -> torch.device | None:
    """``$ADVLENS_DEVICE`` as a device (None when unset or empty), checked here: torch's own
    errors (a missing NVIDIA driver, an unknown device type) did not name the variable."""
    value = os.environ.get(DEVICE_ENV, "").strip()
    if not value:
        return None
    try:
        device = torch.device(value)
    except RuntimeError as err:
        raise ValueError(f"${DEVICE_ENV}={value!r} is not a torch device ({err}); set it to "
                         "e.g. 'cuda', 'cuda:1' or 'cpu'.") from err
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= count:
        raise RuntimeError(f"${DEVICE_ENV}={value!r} asks for CUDA, but torch sees {count} CUDA "
                           "device(s) here (no GPU or driver, or a CPU-only torch); unset "
                           f"{DEVICE_ENV} to run on the CPU, or name a device this machine has.")
    if device.type == "meta":  # tensors without data: every computation fails later
        raise RuntimeError(f"${DEVICE_ENV}={value!r}: the meta device holds no data; unset "
                           f"{DEVICE_ENV} to run on the CPU, or name a device this machine has.")
    if device.type not in ("cuda", "cpu"):  # mps, xla, hpu, ...: failed later, in training
        try:
            torch.empty(1, device=device)
        except Exception as err:  # (hpu: ModuleNotFoundError; mps: RuntimeError)
            raise RuntimeError(f"${DEVICE_ENV}={value!r}: torch cannot use that device here "
                               f"({err}); unset {DEVICE_ENV} to run on the CPU, or name a "
                               "device this machine has.") from err
    return device


def prepare(model: nn.Module, *, kind: str = "features", device: torch.device | str | None = None,
            autocast: torch.dtype | None | str = "auto", channels_last: bool | None = None,
            compile: bool = False) -> nn.Module:
    """``model`` on ``device`` (default: CUDA if available), wrapped for speed.

    Parameters
    ----------
    kind: "features", "inversion" or "attacks": picks the ``"auto"`` autocast (bf16 on a GPU
        where :data:`BF16_DEFAULT` allows it for that computation, else none).
    autocast: a dtype, None (fp32) or "auto".
    channels_last: None = on a GPU only.
    compile: wrap the inner model with ``torch.compile``.

    Returns
    -------
    The model itself when nothing applies (CPU defaults), else an :class:`Autocast` wrapper. A
    model prepared before is unwrapped first, so these settings replace the earlier ones (an
    inner bf16 wrapper would otherwise outlive a later fp32 request).
    """
    if kind not in BF16_DEFAULT:
        raise ValueError(f"kind must be one of {sorted(BF16_DEFAULT)}; got {kind!r}.")
    if autocast != "auto" and autocast is not None and not isinstance(autocast, torch.dtype):
        # checked here: torch.autocast refused it only at the first forward pass, in its terms
        raise TypeError(f"autocast must be a torch dtype (e.g. torch.bfloat16), None (fp32) or "
                        f"'auto'; got {autocast!r}.")
    model = unwrap(model)
    device = torch.device(device) if device is not None else default_device()
    gpu = device.type == "cuda"
    if autocast == "auto":
        autocast = torch.bfloat16 if gpu and BF16_DEFAULT[kind] else None
    channels_last = gpu if channels_last is None else channels_last
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model)
    if autocast is None and not channels_last:
        return model
    return Autocast(model, autocast, channels_last)


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


@contextlib.contextmanager
def _count_saved() -> Iterator[list[int]]:
    """The bytes of the tensors autograd saves, each memory block once (a ReLU's output that
    the next layer saves too, the q, k, v views of one projection)."""
    total, seen = [0], set()

    def pack(t: Tensor) -> Tensor:
        try:
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
        except (RuntimeError, NotImplementedError):  # a tensor without its own storage
            key, size = id(t), t.numel() * t.element_size()
        if key not in seen:
            seen.add(key)
            total[0] += size
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def bytes_per_image(model: nn.Module, shape: tuple[int, ...], *, backward: bool = True,
                    device: torch.device | str | None = None) -> int:
    """Memory one image of ``shape`` (C, H, W) needs in a forward (+ input-gradient) pass: the
    bytes autograd saves for backward per image (what a batch of 4 saves beyond a batch of 2:
    the weights it saves once a batch are not an image's) but at least its largest activation,
    or that activation alone when ``backward`` is False."""
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    # the measuring pass leaves the caller's random state (the images, dropout) and the model's
    # buffers (a train-mode BatchNorm's running statistics) as they were
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with seeded(0):
            return _measure(model, shape, backward, device)
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


def _measure(model: nn.Module, shape: tuple[int, ...], backward: bool,
             device: torch.device) -> int:
    largest = _largest_activation(model, shape, device)
    if not backward:
        return largest
    # autograd on whatever the caller's mode: under no_grad or inference_mode it saved
    # nothing, and one image seemed to need 1 byte (the batch was always max_batch).
    # Per image: what 2 more images add. Autograd also saves the weights (for the input
    # gradient), once per batch: halving a batch of 2's total counted half the weights as
    # each image's (ResNet-18 at 64x64: 26 MB an image, not 2.7)
    saved = []
    for n in (2, 4):
        batch = torch.rand(n, *shape, device=device)
        with torch.inference_mode(False), torch.enable_grad(), _count_saved() as total:
            model(batch.clone().requires_grad_())  # (a clone: not an inference tensor)
        saved.append(total[0])
    # at least the largest activation: a frozen affine model saves nothing per image for the
    # input gradient, yet its activations still take memory (it measured 1 byte an image)
    return max(largest, (saved[1] - saved[0]) // 2)


def _largest_activation(model: nn.Module, shape: tuple[int, ...], device: torch.device) -> int:
    """The bytes of the largest module output per image (a forward pass of 2 images)."""
    sizes: list[int] = []
    handles = [m.register_forward_hook(
        lambda _m, _i, o: sizes.append(o.numel() * o.element_size()
                                       if isinstance(o, Tensor) else 0))
        for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.rand(2, *shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return max(1, max(sizes, default=2) // 2)


def batch_size_for(model: nn.Module, shape: tuple[int, ...], *, backward: bool = True,
                   fraction: float = 0.5, max_batch: int = 1024,
                   device: torch.device | str | None = None) -> int:
    """The largest batch (≤ ``max_batch``, ≥ 1) whose per-image memory
    (:func:`bytes_per_image`) fits in ``fraction`` of the device's free memory."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}.")
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    per_image = bytes_per_image(model, shape, backward=backward, device=device)
    return int(max(1, min(max_batch, fraction * _free_bytes(device) // per_image)))
