"""Zoo training: determinism, regimes (standard, L2-AT, harmonized hook), schedule, robust eval."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advlens.data import ImageSet
from advlens.zoo import ModelConfig, regimes
from advlens.zoo.datasets import dataset_for
from advlens.zoo.evaluation import RobustEval, robust_accuracy
from advlens.zoo.regimes import Batch, at_radii, training_inputs
from advlens.zoo.training import lr_factor, train

TINY = ModelConfig("cnn-xs", epochs=1, n_train=96, n_test=32, batch_size=32)


def _state(config: ModelConfig) -> dict[str, torch.Tensor]:
    return train(config, dataset_for(config, "train"), progress=False).model.state_dict()


def test_same_seed_identical_weights_other_seed_different() -> None:
    rng = torch.get_rng_state()
    a, b = _state(TINY), _state(TINY)
    c = _state(TINY.replace(seed=1))
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is untouched
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], c["head.weight"])


def test_training_reduces_loss_and_returns_eval_model() -> None:
    config = ModelConfig("mlp-s", epochs=4, n_train=300, batch_size=50, lr=1e-2)
    result = train(config, dataset_for(config, "train"), progress=False)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0]
    assert not any(m.training for m in result.model.modules())
    assert result.train_time_s > 0 and result.cpu_time_s > 0


def test_normalisation_stats_come_from_training_images() -> None:
    data = dataset_for(TINY, "train")
    model = train(TINY, data, progress=False).model
    assert float(model.normalize.mean) == pytest.approx(float(data.images.mean()), rel=1e-5)
    assert float(model.normalize.std) == pytest.approx(float(data.images.std()), rel=1e-5)


def test_l2_at_inputs_lie_in_the_ball_and_in_range() -> None:
    config = TINY.replace(regime="l2-at", eps=0.5, attack_steps=3)
    data = dataset_for(config, "train")
    model = train(TINY, data, progress=False).model.train()
    batch = Batch(data.images[:16], data.labels[:16])
    adv = training_inputs(model, batch, config, torch.Generator().manual_seed(0))
    norms = (adv - batch.x).flatten(1).norm(dim=1)
    assert float(norms.max()) <= 0.5 + 1e-5 and float(norms.min()) > 0.05
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert all(m.training for m in model.modules())  # the attack restored train mode
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients leaked


def test_l2_at_trains_deterministically_and_differs_from_standard() -> None:
    config = TINY.replace(regime="l2-at", eps=0.5, attack_steps=2)
    a, b, std = _state(config), _state(config), _state(TINY)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], std["head.weight"])


def test_harmonized_needs_a_registered_term() -> None:
    config = TINY.replace(regime="harmonized")
    with pytest.raises(NotImplementedError, match="register_loss_term"):
        train(config, dataset_for(config, "train"), progress=False)


def test_registered_loss_term_is_applied_each_step() -> None:
    # SGD: the update is proportional to the gradient, so the extra term's pull shows directly
    plain = TINY.replace(optimizer="sgd", lr=1e-3)
    config = plain.replace(regime="harmonized")
    seen: list[Batch] = []

    def term(model: nn.Module, batch: Batch, logits: torch.Tensor,
             cfg: ModelConfig) -> torch.Tensor:
        seen.append(batch)
        return 100.0 * model.head.weight.square().sum()  # strong pull of the head to 0

    regimes.register_loss_term("harmonized", term)
    try:
        harm = train(config, dataset_for(config, "train"), progress=False).model
    finally:
        regimes.remove_loss_term("harmonized", term)
    assert len(seen) == 3 and seen[0].masks is not None  # 96 images / 32 per batch
    std = train(plain, dataset_for(plain, "train"), progress=False).model
    assert harm.head.weight.norm() < 0.7 * std.head.weight.norm()
    assert regimes.loss_terms("harmonized") == ()


def test_lr_schedule_warms_up_then_decays_to_zero() -> None:
    total = 100
    values = [lr_factor(s, total, 0.1) for s in range(total)]
    assert values[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert all(a >= b for a, b in zip(values[9:], values[10:], strict=False))
    assert values[-1] < 1e-3 and values[10] == pytest.approx(1.0)
    assert lr_factor(55, total, 0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))


def test_at_radii_scale_with_sqrt_dimension() -> None:
    assert at_radii(256) == (0.25, 0.5, 1.0)
    assert at_radii(3 * 32 * 32) == pytest.approx([0.87, 1.7, 3.5])


def test_robust_accuracy_matches_closed_form_for_a_binary_linear_model() -> None:
    # Two classes, linear logits: the CE gradient points straight at the decision boundary, so
    # L2-PGD breaks an image iff its distance |margin| / ||w1 - w0|| is below eps (away from the
    # box, which stays inactive for images in [0.4, 0.6] and eps = 0.05).
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(16, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(2, 16, generator=g))
        linear.bias.copy_(-0.5 * linear.weight.sum(1))  # boundary through the centre 0.5
    model = nn.Sequential(nn.Flatten(), linear)
    x = 0.4 + 0.2 * torch.rand(400, 1, 4, 4, generator=g)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    w = linear.weight[1] - linear.weight[0]
    distance = (logits[:, 1] - logits[:, 0]).abs() / w.norm()
    eps = 0.05
    keep = (distance - eps).abs() > 0.02 * eps  # leave out ties at the boundary
    data = ImageSet(x[keep], y[keep], None, [str(i) for i in range(2)], "linear")
    expected = int((distance[keep] > eps).sum()) / int(keep.sum())
    assert 0.2 < expected < 0.8
    acc = robust_accuracy(model, data, RobustEval(eps=eps, n=len(data), steps=10))
    assert acc == pytest.approx(expected, abs=1e-9)
    assert robust_accuracy(model, data, RobustEval(eps=0.0, n=len(data))) == 1.0
