"""Fast-path wrappers: identical results without autocast, close results under CPU-bf16, the
penultimate layer still found; batch size from measured per-image memory."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlens import accel
from advlens.features import final_linear, representation


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5)).eval()


def test_cpu_defaults_change_nothing() -> None:
    model = _net()
    assert accel.prepare(model, device="cpu") is model
    with pytest.raises(ValueError, match="kind"):
        accel.prepare(model, kind="training", device="cpu")


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
