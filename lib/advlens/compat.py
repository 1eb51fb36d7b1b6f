"""The one place that imports the ``robustness`` library (Engstrom et al.), with its shims.

``robustness`` 1.2.1 imports ``torchvision.models.utils``, which current torchvision no longer
has; :func:`install_torchvision_shim` aliases it (``load_state_dict_from_url`` from
``torch.hub``) before ``robustness`` is imported. The library also hard-codes ``.cuda()`` (its
attacker moves the original input there), so :func:`robustness_invert` needs a CUDA device;
tests that run it on a CPU patch ``torch.Tensor.cuda`` themselves -- this module never does.

What is here: wrapping an advlens model as a ``robustness`` ``AttackerModel``
(:func:`attacker_model`), the Jones et al. reference inversion through the library's attacker
(:func:`robustness_invert`), used for parity tests and benchmarks of
:func:`advlens.inversion.invert`, and loading a Salman et al. (2020) robust ImageNet checkpoint
as an advlens-style model (:func:`load_robustness_checkpoint`). Note that ``robustness``
normalises inputs with a layer that clamps them to [0, 1] inside the forward pass. Whether that
freezes pixels at exactly 0 or 1 depends on the torch version (``torch.clamp``'s gradient at its
bounds: 1 from 2018 to 2026, as on the paper's PyTorch 1.x, 0 after): see
:func:`reference_freezes_at_bounds` and :mod:`advlens.inversion`, ``freeze_at_bounds``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.checkpoints import load_checkpoint, rekeyed, state_dict_of
from advlens.checks import as_tensor, check_images, frozen, model_device
from advlens.features import forward_and_capture, resolve_layer
from advlens.zoo.published import IMAGENET_MEAN, IMAGENET_STD, NormalizedClassifier


def install_torchvision_shim() -> None:
    """Make ``import torchvision.models.utils`` work again (robustness needs it)."""
    try:
        import torchvision.models.utils  # noqa: F401
    except ModuleNotFoundError:
        import torchvision.models

        shim = types.ModuleType("torchvision.models.utils")
        shim.load_state_dict_from_url = torch.hub.load_state_dict_from_url  # type: ignore[attr-defined]
        sys.modules["torchvision.models.utils"] = shim
        torchvision.models.utils = shim  # type: ignore[attr-defined]


install_torchvision_shim()

from robustness import attack_steps  # noqa: E402
from robustness.attacker import AttackerModel  # noqa: E402


def reference_freezes_at_bounds() -> bool:
    """Whether the reference inversion (:func:`robustness_invert`) freezes pixels at exactly 0
    or 1 on the installed torch, i.e. which ``freeze_at_bounds`` of
    :func:`advlens.inversion.invert` it equals. Measured on robustness's own normaliser, which
    clamps inputs to [0, 1] in the forward pass: ``torch.clamp`` had subgradient 1 at its bounds
    from 2018 (pytorch#7049) until a 2026 change (pytorch#184574), so False on the PyTorch 1.x
    of Jones et al. (2022), whose inversions froze nothing; True where the gradient there is 0."""
    from robustness.tools.helpers import InputNormalize

    normalise = InputNormalize(torch.zeros(1), torch.ones(1))
    x = torch.tensor([[[[0.0, 1.0]]]], requires_grad=True)
    (grad,) = torch.autograd.grad(normalise(x).sum(), x)
    return bool((grad == 0).all())


class DatasetStub:
    """The two attributes ``AttackerModel`` reads from a robustness dataset: mean and std."""

    def __init__(self, mean: Sequence[float] | Tensor = (0.0,),
                 std: Sequence[float] | Tensor = (1.0,)) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        self.std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if (self.std <= 0).any():
            raise ValueError(f"std must be positive; got {self.std.tolist()}.")


class LatentModel(nn.Module):
    """An advlens model with the robustness forward signature.

    ``forward(x, with_latent=False, fake_relu=False, no_relu=False)`` returns the logits, or
    ``(logits, rep)`` with ``rep`` the representation at ``layer`` (default: input of the final
    linear) flattened to (N, D). ``fake_relu``/``no_relu`` are not supported.
    """

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        super().__init__()
        self.model = model
        self._module, self._take_input = resolve_layer(model, layer)

    def forward(self, x: Tensor, with_latent: bool = False, fake_relu: bool = False,
                no_relu: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        if fake_relu or no_relu:
            raise ValueError("LatentModel does not support fake_relu or no_relu.")
        if not with_latent:
            return self.model(x)
        return forward_and_capture(self.model, x, self._module, self._take_input)


def attacker_model(model: nn.Module, *, mean: Sequence[float] | Tensor = (0.0,),
                   std: Sequence[float] | Tensor = (1.0,), layer: str | None = None
                   ) -> AttackerModel:
    """Wrap ``model`` as a robustness ``AttackerModel`` on the model's device.

    advlens models normalise inside, so the default mean 0 / std 1 makes robustness's own
    normaliser an identity -- except that it clamps inputs to [0, 1] inside the forward pass.
    """
    wrapped = AttackerModel(LatentModel(model, layer), DatasetStub(mean, std))
    return wrapped.to(model_device(model)).eval()


class MomentumL2Step(attack_steps.AttackerStep):
    """The reference inversion step: per-sample L2-normalised gradient, averaged momentum
    ``m <- gamma m + (1 - gamma) g``, step ``x + step_size m`` (robustness negates the gradient
    for targeted attacks, so this descends), projection onto an L2 ball of radius ``eps`` around
    the seed followed by a clamp to [0, 1]. As in the reference, a zero gradient is not guarded."""

    def __init__(self, orig_input: Tensor, eps: float, step_size: float, use_grad: bool = True,
                 momentum: float = 0.9) -> None:
        super().__init__(orig_input, eps, step_size, use_grad=use_grad)
        self.gamma = momentum
        self.velocity = torch.zeros_like(orig_input)

    def project(self, x: Tensor) -> Tensor:
        diff = (x - self.orig_input).renorm(p=2, dim=0, maxnorm=self.eps)
        return torch.clamp(self.orig_input + diff, 0, 1)

    def step(self, x: Tensor, g: Tensor) -> Tensor:
        g = g / g.flatten(1).norm(p=2, dim=1).view((-1,) + (1,) * (g.ndim - 1))
        self.velocity = self.velocity * self.gamma + g * (1.0 - self.gamma)
        return x + self.velocity * self.step_size


def _relative_rep_loss(model: nn.Module, inp: Tensor, target_rep: Tensor) -> tuple[Tensor, None]:
    """robustness custom loss: per-sample ||Rep(x) - Rep(t)||_2 / ||Rep(t)||_2."""
    _, rep = model(inp, with_latent=True, fake_relu=False)
    return (rep - target_rep).norm(dim=1) / target_rep.norm(dim=1), None


def robustness_invert(model: nn.Module, seeds: Tensor, targets: Tensor, *,
                      iterations: int = 2000, step_size: float = 1 / 8, batch_size: int = 32,
                      use_best: bool = True, momentum: float = 0.9,
                      mean: Sequence[float] | Tensor = (0.0,),
                      std: Sequence[float] | Tensor = (1.0,), layer: str | None = None,
                      progress: bool = True) -> Tensor:
    """Jones et al.'s inversion run through the robustness library's attacker (the reference).

    ``AttackerModel(..., make_adv=True, targeted=True, eps=1000, use_best=True,
    custom_loss=relative distance)`` with :class:`MomentumL2Step`, batch by batch. Returns the
    inverted images on the CPU. Needs CUDA: robustness calls ``.cuda()`` on the seeds.
    """
    seeds = check_images(as_tensor(seeds, "seeds"), "seeds")
    targets = check_images(as_tensor(targets, "targets"), "targets")
    if seeds.shape != targets.shape:
        raise ValueError(f"seeds and targets must have the same shape; got {tuple(seeds.shape)} "
                         f"and {tuple(targets.shape)}.")
    device = model_device(model)

    def constraint(orig_input: Tensor, eps: float, step_size: float) -> MomentumL2Step:
        return MomentumL2Step(orig_input, eps, step_size, momentum=momentum)

    kwargs = {"constraint": constraint, "step_size": step_size, "iterations": iterations,
              "eps": 1000, "custom_loss": _relative_rep_loss, "targeted": True,
              "use_best": use_best, "do_tqdm": False}
    inverted = []
    with frozen(model):  # before wrapping: attacker_model's .eval() must not outlive the call
        attacker = attacker_model(model, mean=mean, std=std, layer=layer)
        for start in tqdm(range(0, seeds.shape[0], batch_size), desc="Inverting (robustness)",
                          disable=not progress, leave=False):
            s = seeds[start:start + batch_size].to(device, torch.float32)
            t = targets[start:start + batch_size].to(device, torch.float32)
            with torch.no_grad():
                (_, target_rep), _ = attacker(t, with_latent=True)
            try:
                _, inv = attacker(s, target_rep, make_adv=True, with_latent=True, **kwargs)
            except (AssertionError, RuntimeError) as err:
                if torch.cuda.is_available() and device.type == "cuda":
                    raise
                # (a CPU model where CUDA is available met the seeds robustness moved there:
                # torch's device-mismatch error named neither the model nor the way out)
                raise RuntimeError(
                    "the robustness library hard-codes .cuda(), so robustness_invert needs a "
                    f"CUDA device and the model on it (it is on {device}): move it there with "
                    "model.cuda(), or use advlens.inversion.invert(..., freeze_at_bounds=True) "
                    "for the same procedure on any device.") from err
            inverted.append(inv.detach().float().cpu())
    return torch.cat(inverted)


def robustness_architecture(arch: str, num_classes: int = 1000, *,
                            torchvision_first: bool = False) -> nn.Module:
    """An ImageNet architecture as the robustness library defines it, else torchvision's
    (Salman et al. trained MobileNetV2 and ShuffleNetV2 as torchvision defines them);
    ``torchvision_first``: torchvision's where both define it (a network robust-models-transfer
    wrapped in robustness's DummyModel is torchvision's: its alexnet, not robustness's)."""
    import inspect

    import torchvision.models
    from robustness import imagenet_models

    from advlens.zoo.paper import SALMAN_RELEASE_NAMES

    sources = (imagenet_models, torchvision.models)
    for source in sources[::-1] if torchvision_first else sources:  # builders, not modules
        if inspect.isfunction(build := getattr(source, arch, None)):
            kwargs = {} if source is imagenet_models else {"weights": None}
            return build(num_classes=num_classes, **kwargs)
    named = {release: name for name, release in SALMAN_RELEASE_NAMES.items()}
    hint = (f"; the release's file name {arch!r} is torchvision's {named[arch]!r}, pass that"
            if arch in named else "")
    raise ValueError(f"unknown ImageNet architecture {arch!r} (neither robustness.imagenet_models "
                     f"nor torchvision.models has a function of that name{hint}).")


def _differences(expected: dict[str, Tensor], found: dict[str, Tensor]) -> str:
    """What keeps ``found`` from loading strictly where ``expected`` is the model's state dict:
    the first shape mismatch and the missing and unexpected keys, counted ("" if none)."""
    shapes = [f"{k} is {tuple(found[k].shape)} in the file, {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in found and found[k].shape != v.shape]
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    parts = [f"{len(shapes)} shape mismatch(es), first: {shapes[0]}"] if shapes else []
    parts += [f"{len(keys)} {what} key(s), e.g. {', '.join(keys[:3])}"
              for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    return "; ".join(parts)


def load_robustness_checkpoint(arch: str, path: str | Path, *, num_classes: int = 1000,
                               mean: Sequence[float] | None = None,
                               std: Sequence[float] | None = None,
                               trust: bool | None = None) -> NormalizedClassifier:
    """A checkpoint saved by the robustness library (e.g. the Salman et al. robust ImageNet zoo,
    ``resnet50_l2_eps3.ckpt``) as a model on [0, 1] images, in eval mode, on the CPU.

    The weights are those of the wrapped classifier (keys ``[module.]model.*``); the attacker's
    copy is skipped. ``mean``/``std`` default to the normaliser's buffers in the file
    (``normalizer.new_mean``/``new_std``), else ImageNet's. The file is read with
    ``weights_only=True`` (see :func:`advlens.checkpoints.load_checkpoint`); ``trust=True``
    allows full unpickling (with ``dill``, as robustness saved it) for files you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; download it (e.g. from the Salman et "
                                "al. robust ImageNet release) and pass its path.")
    state = state_dict_of(load_checkpoint(path, trust=trust), path)

    def under(prefix: str) -> Callable[[str], str | None]:  # [module.]<prefix>KEY -> KEY
        def rename(key: str) -> str | None:
            key = key.removeprefix("module.")
            return key.removeprefix(prefix) if key.startswith(prefix) else None
        return rename

    # rekeyed keeps the modules' versions, which some torchvision modules read when loading
    weights, buffers = rekeyed(state, under("model.")), rekeyed(state, under("normalizer."))
    if not weights:
        raise ValueError(f"{path} has no 'model.*' weights; is it a robustness checkpoint? "
                         f"First keys: {list(state)[:5]}.")
    wrapped = all(key.startswith("model.") for key in weights)
    if wrapped:
        # a torchvision network trained through robustness's DummyModel (robust-models-transfer's
        # add_custom_forward=True: the released densenet, mobilenet, resnext50_32x4d, shufflenet
        # and vgg16_bn files) keeps one more wrapper: model.model.*
        weights = rekeyed(weights, under("model."))
    network = robustness_architecture(arch, num_classes, torchvision_first=wrapped)
    try:
        network.load_state_dict(weights)
    except RuntimeError as err:
        differences = _differences(network.state_dict(), weights) or str(err).splitlines()[-1]
        raise ValueError(f"{path} does not fit the {arch} architecture with {num_classes} "
                         f"classes ({differences.strip()}); pass the architecture and number of "
                         "classes the checkpoint was trained with (architectures are built from "
                         "robustness.imagenet_models or torchvision.models: a checkpoint of "
                         "robustness.cifar_models, 3×3 stem, is not loaded here).") from None
    mean = mean if mean is not None else buffers.get("new_mean", torch.tensor(IMAGENET_MEAN))
    std = std if std is not None else buffers.get("new_std", torch.tensor(IMAGENET_STD))
    return NormalizedClassifier(network, torch.as_tensor(mean).flatten().tolist(),
                                torch.as_tensor(std).flatten().tolist()).eval()
