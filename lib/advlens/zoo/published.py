"""Published ImageNet classifiers behind the zoo's interface: timm, torchvision and robustness.

Every loader returns a :class:`NormalizedClassifier` in eval mode on the CPU: it takes [0, 1]
pixels (the input normalisation of the published model lives in the wrapper), so attacks and
inversion work in pixel space, and the penultimate layer is the input of the network's last
``nn.Linear`` as for the trained zoo models (:func:`advlens.features.representation`).

Weights come from local files read with :func:`advlens.checkpoints.load_checkpoint`
(``weights_only`` first; full unpickling only when trusted). timm weights may also come from the
Hugging Face hub cache; offline, a missing file is reported with the file to fetch and where.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advlens.checkpoints import load_checkpoint, rekeyed, state_dict_of

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class NormalizedClassifier(nn.Module):
    """``model((x - mean) / std)``: takes [0, 1] images like every advlens model. Unlike
    robustness's own normaliser it does not clamp, so input gradients flow at 0 and 1 too."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        values = {name: torch.as_tensor(v, dtype=torch.float32).flatten()
                  for name, v in (("mean", mean), ("std", std))}
        # checked here, not at the first forward: a zero std gave NaN logits without a word, a
        # mean of 2 values for a 3-channel network torch's "size of tensor a (3) must match"
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = None if first_conv is None else first_conv.in_channels
        for name, v in values.items():
            if v.numel() == 0 or not bool(torch.isfinite(v).all()):
                raise ValueError(f"{name} must be finite numbers, one per input channel; got "
                                 f"{v.tolist()}.")
            if channels is not None and v.numel() not in (1, channels):
                raise ValueError(f"{name} has {v.numel()} values; the network takes "
                                 f"{channels} input channels (give {channels}, or 1 for all).")
        if bool((values["std"] <= 0).any()):
            raise ValueError(f"std must be positive; got {values['std'].tolist()}.")
        self.register_buffer("mean", values["mean"].view(1, -1, 1, 1))
        self.register_buffer("std", values["std"].view(1, -1, 1, 1))
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x - self.mean) / self.std)


def _strip(state: Mapping[str, Tensor], prefixes: Sequence[str]) -> dict[str, Tensor]:
    """``state`` with ``prefixes`` removed from its keys, the modules' versions kept."""
    def strip(key: str) -> str:
        for prefix in prefixes:
            key = key.removeprefix(prefix)
        return key

    return rekeyed(state, strip)


def _state(path: str | Path, trust: bool | None) -> dict[str, Tensor]:
    """The state dict in ``path`` (a plain state dict, or one under ``model``/``state_dict``),
    ``module.`` prefixes of DataParallel removed."""
    return _strip(state_dict_of(load_checkpoint(path, trust=trust), path), ("module.",))


def load_weights(network: nn.Module, path: str | Path, *, trust: bool | None = None,
                 state: Mapping[str, Tensor] | None = None) -> nn.Module:
    """Load the state dict in ``path`` (a plain state dict, or one under ``model``/
    ``state_dict``; ``module.`` prefixes of DataParallel removed) into ``network``, strictly
    (``state``: that state dict, already read)."""
    state = _state(path, trust) if state is None else state
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[:3]
        raise ValueError(f"{path} does not fit {type(network).__name__}: {' '.join(first)}. "
                         "Is it the checkpoint of this architecture?") from None
    return network


def timm_model(name: str, path: str | Path | None = None, *, trust: bool | None = None,
               **kwargs: Any) -> NormalizedClassifier:
    """timm model ``name`` (e.g. ``"resnet50.tv_in1k"``) with weights from ``path`` (a
    ``.pth``/``.safetensors`` state dict), or from the Hugging Face hub cache when ``path`` is
    None (offline: the cache must already hold them). ``kwargs`` go to ``timm.create_model``
    (e.g. ``img_size=224``). The wrapper normalises with the model's own mean/std."""
    import timm

    if path is None:
        try:
            network = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as err:  # hub errors vary: offline, gated, missing file
            base = name.split(".")[0]
            raise FileNotFoundError(
                f"cannot get the timm weights of {name!r} ({type(err).__name__}: {err}). On a "
                f"machine with internet run `python -c \"import timm; timm.create_model("
                f"'{name}', pretrained=True)\"` (fills the Hugging Face cache, "
                f"~/.cache/huggingface), or download the weights of https://huggingface.co/"
                f"timm/{name} and save them as '$ADVLENS_CHECKPOINTS/{name}.pth' "
                f"(or '{base}...safetensors' named as the zoo expects).") from err
    else:
        network = _timm_from_file(name, path, trust, kwargs)
    cfg = getattr(network, "pretrained_cfg", {}) or {}
    return NormalizedClassifier(network, cfg.get("mean", IMAGENET_MEAN),
                                cfg.get("std", IMAGENET_STD)).eval()


def _timm_from_file(name: str, path: str | Path, trust: bool | None,
                    kwargs: dict[str, Any]) -> nn.Module:
    """timm model ``name`` with the state dict in ``path``: loaded strictly as it is, or where
    it does not fit as it is, through the model's own checkpoint filter, as timm loads its
    pretrained files (e.g. a ViT's position embedding resampled for another ``img_size``; the
    file read by :func:`advlens.checkpoints.load_checkpoint` either way, the head kept: the
    filter never drops a classifier of another class count; loaded strictly, also for archs
    timm itself loads non-strictly)."""
    import timm
    from timm.models import _builder

    state = _state(path, trust)
    try:
        return load_weights(timm.create_model(name, pretrained=False, **kwargs), path,
                            state=state)
    except ValueError as as_is:
        overlay: dict[str, Any] = {"state_dict": dict(state)}
        if "num_classes" in kwargs:  # as the file's: the filter then keeps its head
            overlay["num_classes"] = kwargs["num_classes"]
        timm_load = _builder.load_pretrained

        def strictly(*args: Any, **options: Any) -> None:
            # strict whatever the arch's builder says (dla loads non-strictly: a file missing
            # every key left the model at its random initialisation, with a log line)
            timm_load(*args, **{**options, "strict": True})

        _builder.load_pretrained = strictly
        try:
            return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay,
                                     **kwargs)
        except (RuntimeError, KeyError, ValueError, AssertionError):
            raise as_is from None
        finally:
            _builder.load_pretrained = timm_load


# torchvision builds these with transform_input=True whenever it loads published weights (they
# were trained on (x - 0.5) / 0.5: the model turns ImageNet-normalised input into that), with the
# key prefix of their auxiliary head (in torchvision's files; not in a state dict saved from a
# googlenet(weights=...), which drops it)
TRANSFORM_INPUT = {"inception_v3": "AuxLogits.", "googlenet": "aux1."}
# torchvision's published DenseNet files keep the keys of its old dense layers ('norm.1',
# 'conv.2'), which torchvision renames as it loads them (torchvision.models.densenet)
DENSENET_LEGACY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                             r"((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _densenet_keys(key: str) -> str:
    """``key`` of a torchvision DenseNet file as current torchvision names it."""
    found = DENSENET_LEGACY.match(key)
    return found.group(1) + found.group(2) if found else key


def _vit_image_size(state: Mapping[str, Tensor]) -> int | None:
    """The input side a torchvision ViT state dict was trained at, from its position embedding
    ((side / patch)² + 1 tokens) and patch size; None where the keys are not there."""
    positions, patches = state.get("encoder.pos_embedding"), state.get("conv_proj.weight")
    if positions is None or patches is None or positions.ndim != 3 or patches.ndim != 4:
        return None
    per_side = math.isqrt(positions.shape[1] - 1)
    if per_side * per_side != positions.shape[1] - 1:
        return None
    return per_side * patches.shape[-1]


def torchvision_model(name: str, path: str | Path, *, trust: bool | None = None,
                      num_classes: int = 1000) -> NormalizedClassifier:
    """torchvision model ``name`` (e.g. ``"resnet50"``) with the state dict in ``path`` (as
    torchvision publishes it, e.g. ``resnet50-0676ba61.pth``), normalised with the mean/std of
    those weights' ``transforms()`` (ImageNet's; efficientnet_v2_l's 0.5) where the file name
    or model says which (:func:`advlens.zoo.paper.torchvision_weights`), else ImageNet's.
    Inception-v3 and GoogLeNet are built as torchvision builds them for its weights
    (``transform_input``); the old key names of its published DenseNet files are renamed as
    torchvision renames them."""
    import torchvision.models

    from advlens.zoo.paper import torchvision_weights

    state = _state(path, trust)
    if name.startswith("densenet"):
        state = rekeyed(state, _densenet_keys)
    kwargs: dict[str, Any] = {}
    if name in TRANSFORM_INPUT:
        kwargs = {"transform_input": True, "init_weights": False,
                  "aux_logits": any(k.startswith(TRANSFORM_INPUT[name]) for k in state)}
    if name.startswith("vit_") and (side := _vit_image_size(state)) is not None:
        kwargs["image_size"] = side  # as torchvision builds its SWAG weights: at 384 or 518
    try:
        network = torchvision.models.get_model(name, weights=None, num_classes=num_classes,
                                               **kwargs)
    except ValueError as err:
        raise ValueError(f"unknown torchvision model {name!r}: {err}") from None
    weights = torchvision_weights(name, path)
    t = weights.transforms() if weights is not None else None
    return NormalizedClassifier(load_weights(network, path, state=state),
                                IMAGENET_MEAN if t is None else t.mean,
                                IMAGENET_STD if t is None else t.std).eval()

