"""Zoo training: determinism, regimes (standard, L2-AT, harmonized), schedule, robust eval."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advlens import alignment
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


def test_harmonized_loss_and_weight_are_config_fields_in_the_hash() -> None:
    harm = TINY.replace(regime="harmonized", harmonizer_weight=1.0, importance_map="stroke")
    assert harm.hash != harm.replace(harmonizer_weight=0.5).hash
    assert TINY.hash == ModelConfig.from_dict(TINY.to_dict()).hash
    assert ModelConfig.from_dict(harm.to_dict()) == harm
    with pytest.raises(ValueError, match="harmonizer_weight > 0"):
        TINY.replace(regime="harmonized", importance_map="stroke")
    with pytest.raises(ValueError, match="importance_map in"):
        TINY.replace(regime="harmonized", harmonizer_weight=1.0, importance_map="shape")
    with pytest.raises(ValueError, match="are for regime 'harmonized'"):
        TINY.replace(harmonizer_weight=1.0)


def test_harmonized_training_lowers_the_loss_and_raises_alignment_on_held_out() -> None:
    plain = ModelConfig("mlp-s", epochs=4, n_train=400, n_test=200, batch_size=32)
    harm = plain.replace(regime="harmonized", harmonizer_weight=1.0, importance_map="stroke")
    test = dataset_for(plain, "test")
    maps = regimes.importance_maps(harm, test)
    assert maps is not None and maps.shape == (200, 1, 16, 16)
    scores = {}
    for config in (plain, harm):
        model = train(config, dataset_for(config, "train"), progress=False).model
        sal = alignment.saliency(model, test.images, test.labels)
        scores[config.regime] = (float(alignment.harmonizer_loss(sal, maps)),
                                 float(alignment.spearman_alignment(sal, maps).nanmean()))
    assert scores["harmonized"][0] < 0.9 * scores["standard"][0]
    assert scores["harmonized"][1] > scores["standard"][1] + 0.05


def test_harmonized_vit_trains_and_its_double_backprop_matches_finite_differences() -> None:
    """A harmonizer step differentiates the saliency in the parameters: on a ViT, timm's fused
    attention (a flash kernel without a double backward) made it fail with a RuntimeError."""
    config = TINY.replace(arch="vit-xs", regime="harmonized", harmonizer_weight=0.1,
                          importance_map="stroke")
    data = dataset_for(config, "train")
    model = train(config, data, progress=False).model
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    # the parameter gradient of a saliency functional against float64 central differences
    model = model.double().train()
    x, y = data.images[:4].double(), data.labels[:4]
    weights = torch.randn(4, 16, 16, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))

    def functional() -> torch.Tensor:
        return (alignment.logits_and_saliency(model, x, y)[1] * weights).sum()

    params = list(model.parameters())
    grads = [torch.zeros_like(p) if g is None else g  # (the head's bias: no saliency)
             for p, g in zip(params, torch.autograd.grad(functional(), params,
                                                         allow_unused=True), strict=True)]
    gen = torch.Generator().manual_seed(1)
    direction = [torch.randn(p.shape, dtype=p.dtype, generator=gen) for p in params]
    h = 1e-6
    values = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.add_(sign * h * d)
        values.append(float(functional().detach()))  # (the saliency needs autograd)
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.sub_(sign * h * d)
    numeric = (values[0] - values[1]) / (2 * h)
    analytic = float(sum((g * d).sum() for g, d in zip(grads, direction, strict=True)).detach())
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9)


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


def test_l2_at_batchnorm_statistics_come_from_the_adversarial_batch() -> None:
    # one step from a fresh model: the first BN's running mean is 0.1 x the batch mean of the
    # first conv's output on the adversarial batch (the attack itself runs in eval mode)
    from advlens.zoo.architectures import build_model
    config = ModelConfig("vgg-xs", regime="l2-at", eps=1.0, attack_steps=3, epochs=1,
                         n_train=32, n_test=8, batch_size=32)
    data = dataset_for(config, "train")
    trained = train(config, data, progress=False).model
    model = build_model(config.arch, config.dataset, seed=config.seed)
    model.normalize.set_stats(data.images)
    generator = torch.Generator().manual_seed(config.seed)
    idx = torch.randperm(32, generator=generator)
    batch = Batch(data.images[idx], data.labels[idx])
    adv = training_inputs(model.train(), batch, config, generator)
    with torch.no_grad():
        adv_mean, clean_mean = (0.1 * model.body[0](model.normalize(x)).mean(dim=(0, 2, 3))
                                for x in (adv, batch.x))
    running = trained.body[1].running_mean
    torch.testing.assert_close(running, adv_mean, atol=1e-6, rtol=0)
    assert float((running - clean_mean).abs().max()) > 1e-3


@pytest.mark.parametrize(("change", "field"), [
    ({"regime": "l2-at", "eps": 0.5, "attack_steps": 0}, "attack_steps"),
    ({"batch_size": 0}, "batch_size")])
def test_untrainable_counts_are_refused_before_the_zoo_trains_anything(
        tmp_path, change: dict, field: str) -> None:
    from advlens.zoo.builder import build
    bad = TINY.replace(tag="bad", **change)
    with pytest.raises(ValueError, match=f"{field} .*must be an int >= 1; got 0"):
        build([TINY, bad], root=tmp_path, progress=False, robust_eval_n=8)
    assert not list(tmp_path.glob("*.pt"))  # refused up front: TINY was not trained first


@pytest.mark.parametrize(("change", "message"), [
    ({"optimizer": "SGD"}, "optimizer must be one of"),
    ({"optimizer": "AdamW"}, "optimizer must be one of"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"lr": -0.1}, "lr must be a finite number > 0"),
    ({"weight_decay": -1e-4}, "weight_decay must be a finite number >= 0"),
    ({"warmup_frac": 5.0}, "warmup_frac .* in \\[0, 1\\]"),
    ({"warmup_frac": -0.1}, "warmup_frac .* in \\[0, 1\\]"),
    ({"warmup_frac": float("nan")}, "warmup_frac .* in \\[0, 1\\]"),
    ({"regime": "l2-at", "eps": 0.5, "attack_step_factor": 0.0}, "attack_step_factor > 0"),
    ({"regime": "l2-at", "eps": 0.5, "attack_step_factor": -1.0}, "attack_step_factor > 0")])
def test_bad_optimisation_fields_are_refused_when_the_config_is_made(
        change: dict, message: str) -> None:
    """They were accepted: a misspelt optimizer, a negative lr or attack_step_factor failed at
    the model's turn in zoo.build, after the models before it had trained; lr=0 trained
    nothing, warmup_frac=5 never let the learning rate above a fifth of ``lr`` and
    attack_step_factor=0 trained on random noise as 'l2-at', all silently."""
    assert max(lr_factor(s, 100, 5.0) for s in range(100)) == pytest.approx(0.2)  # the old harm
    with pytest.raises(ValueError, match=message):
        TINY.replace(**change)
    TINY.replace(optimizer="sgd", lr=0.1, weight_decay=0.0, warmup_frac=0.0)  # edges accepted
    TINY.replace(warmup_frac=1.0)


def test_robust_eval_keys_tell_radii_apart_and_keep_earlier_keys() -> None:
    """Radii equal to 6 significant digits shared one key, so one's record served the other."""
    assert RobustEval(eps=1 / 3).key != RobustEval(eps=0.333333).key
    assert float(RobustEval(eps=1 / 3).key.split("-eps")[1].split("-n")[0]) == 1 / 3
    # the keys that cached zoos hold (every radius of the presets has at most 6 digits)
    assert RobustEval(eps=0.5, n=500, steps=10).key == "l2-eps0.5-n500-k10"
    assert RobustEval(eps=1.0).key == RobustEval(eps=1).key == "l2-eps1-n500-k10"
