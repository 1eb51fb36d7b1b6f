"""Parity of advlens.inversion.invert with the reference code path (the robustness library's
attacker, run through advlens.compat). robustness hard-codes ``.cuda()``; on a CPU these tests
patch ``torch.Tensor.cuda`` to the identity (only here, never in the library)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlens import compat
from advlens.inversion import invert


def digit_like(n: int, seed: int) -> torch.Tensor:
    """Blobs on a black background: many pixels exactly 0, some exactly 1 (like digits)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 10, 10, generator=g)
    x = torch.where(x > 0.55, x, torch.zeros(()))
    x[:, :, 4:6, 4:6] = 1.0
    return x


def small_cnn() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(), nn.Flatten(), nn.Linear(200, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def loss_of(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        a, b = model[:-1](x).double(), model[:-1](t).double()
    return (a - b).norm(dim=1) / b.norm(dim=1)


@pytest.fixture
def cuda_is_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.cuda.is_available():
        monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)


def test_reference_loop_matches_ours_with_freeze_at_bounds(cuda_is_identity: None) -> None:
    """On the installed torch: the reference equals invert with the freeze_at_bounds that
    compat.reference_freezes_at_bounds reports (True with torch 2.14's clamp)."""
    model, x = small_cnn(), digit_like(16, seed=0)
    seeds, targets = x[:8], x[8:]
    iterations = 40
    theirs = compat.robustness_invert(model, seeds, targets, iterations=iterations,
                                      batch_size=8, progress=False)
    ours = invert(model, seeds, targets, iterations=iterations, batch_size=8,
                  freeze_at_bounds=compat.reference_freezes_at_bounds(), progress=False)
    theirs_loss = loss_of(model, theirs, targets)
    torch.testing.assert_close(ours.loss.double(), theirs_loss, rtol=1e-3, atol=1e-5)
    assert (ours.images - theirs).abs().max() < 1e-3
    # the default (no freeze) reaches an equal or lower loss on these zero-background seeds
    fixed = invert(model, seeds, targets, iterations=iterations, batch_size=8, progress=False)
    assert fixed.mean_loss <= theirs_loss.mean().item() * 1.001
    assert model.training is False and all(p.requires_grad for p in model.parameters())


def _clamp_with_bound_gradient(one: bool):  # noqa: ANN202
    """robustness's InputNormalize.forward with torch.clamp's gradient at exactly 0 and 1 set to
    1 (PyTorch 1.x to 2026: pytorch#7049) or to 0 (after pytorch#184574), whatever torch runs."""
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        inside = (x >= 0) & (x <= 1) if one else (x > 0) & (x < 1)
        x = torch.where(inside, x, x.detach().clamp(0, 1))
        return (x - self.new_mean) / self.new_std
    return forward


@pytest.mark.parametrize("one", [True, False], ids=["torch-1.x-clamp", "torch-2.14-clamp"])
def test_reference_freezes_at_bounds_only_where_clamp_kills_the_bound_gradient(
        cuda_is_identity: None, monkeypatch: pytest.MonkeyPatch, one: bool) -> None:
    """Jones et al. (2022) ran the robustness attacker on PyTorch 1.x, whose torch.clamp had
    subgradient 1 at its bounds: their inversions froze no pixel, i.e. equal invert's default
    (freeze_at_bounds=False), not freeze_at_bounds=True as the docs and notebook 01 said (the
    freeze is the same code on torch 2.14, whose clamp has zero gradient there)."""
    from robustness.tools import helpers

    monkeypatch.setattr(helpers.InputNormalize, "forward", _clamp_with_bound_gradient(one))
    assert compat.reference_freezes_at_bounds() is (not one)
    model, x = small_cnn(), digit_like(16, seed=0)
    seeds, targets = x[:8], x[8:]
    kw = {"iterations": 40, "batch_size": 8, "progress": False}
    theirs = compat.robustness_invert(model, seeds, targets, **kw)
    same = invert(model, seeds, targets, freeze_at_bounds=not one, **kw).images
    other = invert(model, seeds, targets, freeze_at_bounds=one, **kw).images
    assert (same - theirs).abs().max() < 1e-3
    assert (other - theirs).abs().max() > 0.1  # the two settings differ on these seeds


def test_reference_path_freezes_pixels_that_start_at_a_bound(cuda_is_identity: None) -> None:
    if not compat.reference_freezes_at_bounds():
        pytest.skip("this torch's clamp passes gradient at its bounds: nothing freezes")
    model, x = small_cnn(), digit_like(8, seed=1)
    seeds, targets = x[:4], x[4:]
    theirs = compat.robustness_invert(model, seeds, targets, iterations=20, use_best=False,
                                      progress=False)
    at_bound = (seeds == 0) | (seeds == 1)
    assert torch.equal(theirs[at_bound], seeds[at_bound])


def test_latent_model_and_attacker_model_wrap_an_advlens_model() -> None:
    model, x = small_cnn(), digit_like(4, seed=2)
    latent = compat.LatentModel(model)
    logits, rep = latent(x, with_latent=True)
    torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(rep, model[:-1](x))
    torch.testing.assert_close(latent(x), model(x))
    wrapped = compat.attacker_model(model)
    out, image = wrapped(x)
    torch.testing.assert_close(out, model(x))
    assert image is x
    # robustness's normaliser clamps inside the forward pass: no gradient at exactly 0 or 1
    probe = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(wrapped(probe, with_image=False).sum(), probe)
    assert (grad[(x == 0) | (x == 1)] == 0).all() and (grad[(x > 0) & (x < 1)] != 0).any()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error message")
def test_reference_path_without_cuda_says_why() -> None:
    model, x = small_cnn(), digit_like(4, seed=3)
    model.train()
    with pytest.raises(RuntimeError, match="hard-codes .cuda"):
        compat.robustness_invert(model, x[:2], x[2:], iterations=2, progress=False)
    assert all(m.training for m in model.modules()), "the model's train mode must be restored"


def test_reference_path_restores_train_mode(cuda_is_identity: None) -> None:
    model, x = small_cnn(), digit_like(4, seed=3)
    model.train()
    compat.robustness_invert(model, x[:2], x[2:], iterations=2, progress=False)
    assert all(m.training for m in model.modules())


def test_torchvision_shim_lets_robustness_modules_import() -> None:
    import robustness.datasets  # noqa: F401
    import robustness.model_utils  # noqa: F401
    import torchvision.models.utils as shim

    assert shim.load_state_dict_from_url is torch.hub.load_state_dict_from_url


def test_load_robustness_checkpoint_reads_the_library_format(tmp_path) -> None:  # noqa: ANN001
    """A checkpoint written the way robustness writes one (AttackerModel state dict under
    'model', DataParallel 'module.' prefix, the attacker's copy and normaliser buffers)."""
    from robustness import imagenet_models
    from robustness.attacker import AttackerModel

    torch.manual_seed(0)
    net = imagenet_models.resnet18(num_classes=7)
    stub = compat.DatasetStub(compat.IMAGENET_MEAN, compat.IMAGENET_STD)
    state = {f"module.{k}": v for k, v in AttackerModel(net, stub).state_dict().items()}
    torch.save({"model": state, "epoch": 3}, tmp_path / "resnet18_l2_eps3.ckpt")
    model = compat.load_robustness_checkpoint("resnet18", tmp_path / "resnet18_l2_eps3.ckpt",
                                              num_classes=7)
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(compat.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(compat.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net.eval()((x - mean) / std))
    assert not model.training
    from advlens.features import final_linear, representation

    assert final_linear(model)[1] is model.model.fc
    assert representation(model, x).shape == (2, 512)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        compat.load_robustness_checkpoint("resnet18", tmp_path / "missing.ckpt")
    torch.save({"model": {"foo.weight": torch.zeros(1)}}, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="model"):
        compat.load_robustness_checkpoint("resnet18", tmp_path / "bad.ckpt")


def test_robustness_architecture_falls_back_to_torchvision() -> None:
    import torchvision

    assert isinstance(compat.robustness_architecture("mobilenet_v2", 5),
                      torchvision.models.MobileNetV2)
    assert type(compat.robustness_architecture("resnet18", 5)).__module__.startswith("robustness")
    with pytest.raises(ValueError, match="unknown ImageNet architecture"):
        compat.robustness_architecture("no_such_net")
