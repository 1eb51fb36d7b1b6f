"""Input validation shared by every module: clear errors that say what was wrong and what to do."""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


def as_tensor(x: Tensor | np.ndarray, name: str = "input") -> Tensor:
    """Return ``x`` as a torch tensor (numpy arrays are wrapped without copying, except views
    torch cannot wrap -- reversed, e.g. ``np.flip``, or of non-native byte order -- which are
    copied)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        if not x.dtype.isnative or any(stride < 0 for stride in x.strides):
            x = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))
        try:
            return torch.from_numpy(x)
        except TypeError as err:  # torch's text names neither the argument nor a way out
            raise TypeError(f"{name} is a NumPy array of dtype {x.dtype}, which torch cannot "
                            "hold; convert it first, e.g. .astype(np.float64).") from err
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}.")


def check_positive_int(value: object, name: str, *, least: int = 1,
                       allowed: str | None = None) -> int:
    """``value`` as an int if it is an integer >= ``least`` (NumPy's and 0-dim integer tensors
    included); a clear error otherwise, saying what is ``allowed`` (0 or a negative count used
    to read one image, or every image but one)."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        number = None
    if isinstance(value, bool) or number is None or number < least:
        raise ValueError(f"{name} must be {allowed or f'an int >= {least}'}; got {value!r}.")
    return number


def check_count(value: object, name: str, *, least: int = 1, none: str = "all") -> int | None:
    """:func:`check_positive_int`, with None allowed (``none``: what it means, for the error)."""
    if value is None:
        return None
    return check_positive_int(value, name, least=least,
                              allowed=f"None{f' ({none})' if none else ''} or an int >= {least}")


def _numbers(name: str, value: object, what: str) -> Tensor:
    """``value`` as a tensor of numbers; TypeError naming ``name`` for a string, a boolean (a
    flag is no number: True read as 1) or anything torch cannot read (its error names neither
    the argument nor the value)."""
    try:
        v = torch.as_tensor(value)
    except (TypeError, RuntimeError, ValueError) as err:
        raise TypeError(f"{name} must be {what}; got {value!r}.") from err
    if v.dtype == torch.bool:
        raise TypeError(f"{name} must be a number, not a boolean; got {value!r}.")
    return v


def check_positive(name: str, value: float | Tensor, *, allow_zero: bool = False) -> None:
    """Refuse a non-positive (or negative, with ``allow_zero``) scalar or per-sample budget, and
    a boolean (a flag is no number: True read as 1)."""
    v = _numbers(name, value, "a number or an (N,) tensor")
    ok = bool((v >= 0).all()) if allow_zero else bool((v > 0).all())
    if not ok or not bool(torch.isfinite(v).all()):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; got {value!r}.")


def one_number(name: str, value: float | Tensor) -> float:
    """``value`` as a float (NumPy's and 0-dim tensor numbers included) if it is one number, a
    clear error otherwise: a string, a boolean (a flag is no number) or several values (an (N,)
    tensor broadcast against the images' last axis, or failed inside torch); the caller checks
    its range (NaN fails every comparison)."""
    v = _numbers(name, value, "a number")
    if v.numel() != 1:
        raise ValueError(f"{name} must be one number for the whole batch; got {v.numel()} "
                         f"values ({value!r}). For per-image values, make one call per image "
                         "(or group of images sharing a value).")
    # in float64: as_tensor(0.05) is float32, whose 0.05 reads 0.0500000007
    return torch.as_tensor(value, dtype=torch.float64).item()


def positive_number(name: str, value: float | Tensor, *, allow_zero: bool = False) -> float:
    """:func:`one_number` that is finite and > 0 (>= 0 with ``allow_zero``), as
    :func:`check_positive` for a setting that is one number for the whole batch (EAD's ``beta``
    and ``lr`` ran with (N,) tensors silently)."""
    number = one_number(name, value)
    check_positive(name, value, allow_zero=allow_zero)
    return number


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is a bool (NumPy's included); a clear error otherwise (a string such as
    "False" is truthy and would silently mean True)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__}).")


def check_images(x: Tensor, name: str = "images") -> Tensor:
    """Check a float image batch (N, C, H, W) lies in [0, 1] and is finite."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W).")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W); got {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point in [0, 1]; got dtype {x.dtype}. "
                         "Divide uint8 images by 255.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); pass at least "
                         "one image.")
    if x.numel() == 0:  # torch's min() of it named neither the argument nor the shape
        raise ValueError(f"{name} have no pixels (shape {tuple(x.shape)}): C, H and W must be "
                         ">= 1; check the crop or resize that made them.")
    values = x.detach()
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).flatten(1).any(1).sum())
        raise ValueError(f"{name} contain NaN or inf values ({bad} of {x.shape[0]} images); "
                         "drop those images or fix the step that produced them.")
    lo, hi = float(values.min()), float(values.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}). advlens models take "
            "unnormalised pixels and normalise inside the model; pass raw images scaled to [0, 1]."
        )
    return x


def check_labels(y: Tensor | np.ndarray | list[int] | tuple[int, ...], n: int,
                 name: str = "labels", *, classes: int | None = None) -> Tensor:
    """Check integer labels of length ``n`` (a tensor, an array, or a list / tuple of ints;
    never booleans: a mask such as ``y == 3`` is no label), each in ``0..classes - 1`` where
    ``classes`` is given (the width of the model's logits)."""
    if isinstance(y, list | tuple):
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in y):
            raise ValueError(f"{name} must be integer class indices; got {list(y)[:5]!r}...")
        y = torch.tensor([int(v) for v in y], dtype=torch.long)
    y = as_tensor(y, name)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},); got {tuple(y.shape)}.")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class indices; got dtype {y.dtype}.")
    y = y.long()
    if classes is not None and y.numel():
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= classes:
            # one output is a binary classifier's logit, not one class: relabelling was no fix
            fix = ("For a binary classifier with one logit z, return two: "
                   "torch.cat([-z, z], dim=1) / 2." if classes == 1 else
                   f"Relabel the classes 0..{classes - 1}.")
            raise ValueError(f"{name} must be class indices in 0..{classes - 1} (the model has "
                             f"{classes} outputs); got {low}..{high}. {fix}")
    return y


def check_different_labels(seed_labels: Tensor, target_labels: Tensor) -> None:
    """Raise if any seed/target pair shares a label (the inversion protocol forbids it)."""
    same = (as_tensor(seed_labels) == as_tensor(target_labels)).nonzero().flatten()
    if same.numel():
        raise ValueError(
            f"{same.numel()} seed/target pairs have the same label (first at index "
            f"{int(same[0])}); draw pairs with advlens.inversion.draw_pairs, which never pairs "
            "images of one class."
        )


def model_output(model: nn.Module, x: Tensor, expected: str = "one tensor of logits") -> Tensor:
    """``model(x)``, refused with a clear error unless it is one tensor (a model returning a
    tuple or a dict failed on the first tensor method called on it, naming neither);
    ``expected`` describes the output wanted, for the error."""
    out = forward_keeping_input(model, x)
    if not isinstance(out, Tensor):
        raise TypeError(output_error(expected, f"a {type(out).__name__}"))
    return out


_IN_PLACE = ("the model changed its input tensor in place (e.g. torchvision's "
             "Normalize(inplace=True), or an in-place op such as x.sub_() or x /= std at the "
             "start of forward): it would overwrite the images it is given, the attacks' clean "
             "reference among them. Make that operation out of place (inplace=False, "
             "x = x - mean), or put a copy first: nn.Sequential(Copy(), model) with a module "
             "whose forward returns x.clone().")
_LEAF_IN_PLACE = ("the model's forward wrote in place into a tensor that requires grad: its "
                  "input (e.g. torchvision's Normalize(inplace=True), x.sub_(), x /= std), "
                  "which would overwrite the images it is given, or one of its parameters. "
                  "Make that operation out of place (inplace=False, x = x - mean).")


def forward_keeping_input(model: Callable[[Tensor], Any], x: Tensor) -> Any:
    """``model(x)``, refused with a clear error where the model writes into ``x`` (its version
    counter moves; autograd's own error on an input that requires grad named neither the model
    nor a fix)."""
    version = None if x.is_inference() else x._version  # inference tensors keep no count
    try:
        out = model(x)
    except Exception as err:  # also a hook's stop signal (features.capture) after the write
        if _written(x, version):
            raise ValueError(_IN_PLACE) from err
        if isinstance(err, RuntimeError) and "leaf Variable that requires grad" in str(err):
            # autograd refused the write before it happened; it may have been to a parameter
            raise ValueError(_LEAF_IN_PLACE) from err
        raise
    if _written(x, version):
        raise ValueError(_IN_PLACE)
    return out


def _written(x: Tensor, version: int | None) -> bool:
    return version is not None and x._version != version


def output_error(expected: str, got: str) -> str:
    """The message for a model whose output is not ``expected`` (it was ``got``), with the way
    out."""
    return (f"the model must return {expected}; it returned {got}. Wrap it so that forward "
            "returns the logits (e.g. model(x)[0] for a model returning a tuple, "
            "model(x)['logits'] for a dict; advlens.accel.prepare for one that computes in half "
            "precision).")


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for a parameter-free model)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of a model's first floating-point parameter or buffer (None if it has none)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def images_for(model: nn.Module, x: Tensor) -> Tensor:
    """``x`` in the dtype of a float32 or float64 model where a cast is needed and changes no
    value's meaning: float64 and half-precision (float16 / bfloat16, exact in float32) images
    meet a float32 model in float32; float32 and half-precision images meet a model whose every
    floating parameter and buffer is float64 in float64 (exact). Without the cast both failed in
    the first layer as "mat1 and mat2 must have the same dtype". Never down to half precision;
    a model of mixed dtypes (e.g. a float64 temperature over a float32 body, which casts for
    itself) gets float32 images as they are."""
    dtype = model_dtype(model)
    if dtype == torch.float32 and x.dtype in (torch.float64, torch.float16, torch.bfloat16):
        return x.float()
    if dtype == torch.float64 and x.dtype in (torch.float32, torch.float16, torch.bfloat16) \
            and all(t.dtype == torch.float64 for t in (*model.parameters(), *model.buffers())
                    if t.is_floating_point()):
        return x.double()
    return x


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode and restore each submodule's own mode afterwards."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes.items():
            module.train(training)  # (a module's own train() may do more than set the flag)
        # then each flag exactly: train() recurses, so a submodule that two parents share (a
        # re-used block, a tied head) was set again by the later parent, an eval one to train
        for module, training in modes.items():
            module.training = training


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode with parameter gradients off (input gradients still flow); restores both."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    with eval_mode(model):
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield model
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)
