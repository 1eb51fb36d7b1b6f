"""Fast-path wrappers: identical results without autocast, close results under CPU-bf16, the
penultimate layer still found; batch size from measured per-image memory."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlens import accel, attacks
from advlens.features import final_linear, predict, representation


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5)).eval()


def test_cpu_defaults_change_nothing() -> None:
    model = _net()
    assert accel.prepare(model, device="cpu") is model
    with pytest.raises(ValueError, match="kind"):
        accel.prepare(model, kind="training", device="cpu")
    with pytest.raises(TypeError, match=r"autocast must be a torch dtype.*got 'bf16'"):
        accel.prepare(model, device="cpu", autocast="bf16")  # refused before any forward


def test_wrapper_is_exact_in_fp32_and_close_in_bf16() -> None:
    model, x = _net(), torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(accel.Autocast(model, None, channels_last=True)(x), ref)
        bf16 = accel.prepare(model, device="cpu", autocast=torch.bfloat16)(x)
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, ref, atol=0.05, rtol=0.05)  # bf16 keeps 8 bits
    assert not torch.equal(bf16, ref), "autocast did not run in bf16"
    wrapped = accel.Autocast(model, torch.bfloat16)
    assert final_linear(wrapped)[0] == "model.6"
    torch.testing.assert_close(representation(wrapped, x), representation(model, x),
                               atol=0.05, rtol=0.05)


class _TupleNet(nn.Module):
    """A user's model returning (logits, extra)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _net()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), x.mean()


def test_a_wrapped_model_returning_a_tuple_gets_the_callers_clear_error() -> None:
    """Under autocast the wrapper took ``.float()`` of any output: a tuple failed there
    ("'tuple' object has no attribute 'float'") instead of at predict's and the attacks'
    check, which names the way out."""
    model = accel.prepare(_TupleNet(), device="cpu", autocast=torch.bfloat16)
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(TypeError, match="returned a tuple.*model\\(x\\)\\[0\\]"):
        predict(model, x)
    with pytest.raises(TypeError, match="returned a tuple"):
        attacks.fgsm(model, x, torch.tensor([0, 1]), eps=0.1)


def test_batch_size_from_measured_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _net()
    small = accel.bytes_per_image(model, (3, 16, 16))
    large = accel.bytes_per_image(model, (3, 32, 32))
    assert 3.5 < large / small < 4.5, "activation memory must scale with the pixel count"
    monkeypatch.setattr(accel, "_free_bytes", lambda device: 1000 * large)
    assert accel.batch_size_for(model, (3, 32, 32), fraction=0.5) == 500
    assert accel.batch_size_for(model, (3, 32, 32), fraction=0.5, max_batch=64) == 64
    monkeypatch.setattr(accel, "_free_bytes", lambda device: 0)
    assert accel.batch_size_for(model, (3, 32, 32)) == 1
    assert accel.bytes_per_image(model, (3, 32, 32), backward=False) > 0


def test_bytes_per_image_counts_an_images_activations_only() -> None:
    """Hand count: per image, the flattened input (192 floats, saved by the first layer for its
    weight gradient) and the ReLU output (1000, saved by the ReLU and by the second layer:
    one block). The weights autograd saves belong to the batch, not to an image: halving a
    batch of 2's total counted 412768 bytes an image here, 87x too many."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1000), nn.ReLU(),
                          nn.Linear(1000, 10)).eval()
    assert accel.bytes_per_image(model, (3, 8, 8)) == (192 + 1000) * 4


def test_bytes_per_image_of_a_frozen_affine_model_is_its_largest_activation() -> None:
    """A frozen affine model saves nothing per image for the input gradient (the weight is
    all its backward needs): it measured 1 byte an image, and batch_size_for took the largest
    batch whatever the memory. Hand count: the flattened input, 192 floats."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval().requires_grad_(False)
    assert accel.bytes_per_image(model, (3, 8, 8)) == 192 * 4
    assert accel.bytes_per_image(model, (3, 8, 8), backward=False) == 192 * 4


def test_preparing_again_replaces_the_earlier_settings() -> None:
    """A model prepared for bf16 (features, attacks) and then for fp32 (inversion) runs in fp32:
    the wrappers were nested and the inner bf16 one still ran."""
    model, x = _net(), torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
        bf16 = accel.prepare(model, device="cpu", autocast=torch.bfloat16)
        again = accel.prepare(bf16, device="cpu", autocast=None, channels_last=True)
        assert isinstance(again, accel.Autocast) and again.model is model
        torch.testing.assert_close(again(x), ref)  # exact fp32, not bf16's 1e-3 error
        assert accel.prepare(bf16, device="cpu", autocast=None) is model


def test_device_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """$ADVLENS_DEVICE=cuda on a machine without CUDA (or a typo) names the variable and the
    fix; torch's own error spoke of an NVIDIA driver. Unset or empty: the defaults."""
    from advlens.zoo.training import training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("ADVLENS_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match=r"ADVLENS_DEVICE='cuda' asks for CUDA.*unset"):
        training_device()
    for value in ("", " "):
        monkeypatch.setenv("ADVLENS_DEVICE", value)
        assert accel.env_device() is None and training_device() == torch.device("cpu")
    monkeypatch.setenv("ADVLENS_DEVICE", "gpu")
    with pytest.raises(ValueError, match=r"ADVLENS_DEVICE='gpu' is not a torch device"):
        accel.env_device()
    monkeypatch.setenv("ADVLENS_DEVICE", "cpu")
    assert training_device() == torch.device("cpu")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_a_device_torch_cannot_use_is_named_with_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """$ADVLENS_DEVICE=mps without MPS passed the check and failed later, in training, as
    "PyTorch is not linked with support for mps devices"."""
    monkeypatch.setenv("ADVLENS_DEVICE", "mps")
    with pytest.raises(RuntimeError, match=r"ADVLENS_DEVICE='mps': torch cannot use that device"):
        accel.env_device()
    monkeypatch.setenv("ADVLENS_DEVICE", "meta")  # accepted, then every computation failed
    with pytest.raises(RuntimeError, match=r"ADVLENS_DEVICE='meta': the meta device holds no"):
        accel.env_device()


def test_memory_is_measured_with_autograd_under_no_grad(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Called under no_grad (or inference_mode), autograd saved nothing: 1 byte per image, and
    the batch was always max_batch."""
    model = _net()
    expected = accel.bytes_per_image(model, (3, 16, 16))
    monkeypatch.setattr(accel, "_free_bytes", lambda device: 1000 * expected)
    with torch.no_grad():
        assert accel.bytes_per_image(model, (3, 16, 16)) == expected
        assert accel.batch_size_for(model, (3, 16, 16), fraction=0.5) == 500
    with torch.inference_mode():
        assert accel.bytes_per_image(model, (3, 16, 16)) == expected


def test_measuring_memory_leaves_the_model_and_the_random_state_alone() -> None:
    """A train-mode model (picking a batch before training): BatchNorm's running statistics
    moved with the random images, and the global RNG advanced (seeded runs changed)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Dropout(0.5), nn.Linear(4 * 6 * 6, 2)).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    for backward in (True, False):
        assert accel.bytes_per_image(model, (3, 8, 8), backward=backward) > 1
    assert torch.equal(torch.rand(3), expected)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert model.training
