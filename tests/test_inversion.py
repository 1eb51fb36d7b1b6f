"""Tests of advlens.inversion: the Jones et al. update rule, bookkeeping, options and contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advlens.inversion import EarlyStop, draw_pairs, invert, relative_distance


def tiny_cnn(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 12), nn.ReLU(), nn.Linear(12, 3))
    return model.to(dtype).eval()


def images(n: int, seed: int = 1, size: int = 8,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g, dtype=dtype)


def independent_loss(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Relative distance at the penultimate layer, computed without advlens (float64)."""
    body = model[:-1]
    with torch.no_grad():
        a, b = body(x).double(), body(t).double()
    return (a - b).norm(dim=1) / b.norm(dim=1)


def test_loss_decreases_and_images_stay_in_unit_interval() -> None:
    model, x = tiny_cnn(), images(12)
    res = invert(model, x[:6], x[6:], iterations=60, history=True, progress=False)
    initial = independent_loss(model, x[:6], x[6:])
    assert torch.allclose(res.history[0].double(), initial, rtol=1e-5)
    assert (res.best_loss.double() < 0.5 * initial).all()
    assert res.iterations.tolist() == [60] * 6
    # a huge step forces clamping on most steps
    big = invert(model, x[:6], x[6:], iterations=20, step_size=3.0, use_best=False,
                 progress=False)
    for out in (res.images, big.images):
        assert out.min() >= 0 and out.max() <= 1
    assert ((big.images == 0) | (big.images == 1)).float().mean() > 0.1


def test_use_best_returns_each_samples_best_iterate() -> None:
    model, x = tiny_cnn(), images(12, seed=2)
    best = invert(model, x[:6], x[6:], iterations=40, step_size=0.5, history=True,
                  progress=False)
    hist = best.history
    assert hist.shape == (41, 6)
    assert torch.equal(best.best_loss, hist.min(0).values)
    assert torch.equal(best.loss, best.best_loss)
    assert torch.equal(best.final_loss, hist[-1])
    # a large step makes the last iterate worse than the best for some sample
    assert (best.final_loss > best.best_loss).any()
    recomputed = independent_loss(model, best.images, x[6:])
    assert torch.allclose(recomputed, best.loss.double(), rtol=1e-4, atol=1e-7)
    last = invert(model, x[:6], x[6:], iterations=40, step_size=0.5, use_best=False,
                  progress=False)
    assert torch.equal(last.loss, last.final_loss)
    assert torch.allclose(independent_loss(model, last.images, x[6:]), last.loss.double(),
                          rtol=1e-4, atol=1e-7)


def test_relative_distance_matches_definition() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    expected = np.linalg.norm(a.numpy() - b.numpy(), axis=1) / np.linalg.norm(b.numpy(), axis=1)
    np.testing.assert_allclose(relative_distance(a, b).numpy(), expected, rtol=1e-6)


def test_same_label_pair_is_refused() -> None:
    model, x = tiny_cnn(), images(4)
    with pytest.raises(ValueError, match="same label"):
        invert(model, x[:2], x[2:], seed_labels=torch.tensor([0, 1]),
               target_labels=torch.tensor([2, 1]), iterations=1, progress=False)
    with pytest.raises(ValueError, match="both seed_labels and target_labels"):
        invert(model, x[:2], x[2:], seed_labels=torch.tensor([0, 1]), iterations=1,
               progress=False)
    ok = invert(model, x[:2], x[2:], seed_labels=torch.tensor([0, 1]),
                target_labels=torch.tensor([1, 0]), iterations=1, progress=False)
    assert len(ok) == 2


def test_bad_inputs_raise_clear_errors() -> None:
    model, x = tiny_cnn(), images(4)
    with pytest.raises(ValueError, match="same shape"):
        invert(model, x[:2], x[1:], iterations=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        invert(model, x[:2] * 2, x[2:], iterations=1, progress=False)
    with pytest.raises(ValueError, match="momentum"):
        invert(model, x[:2], x[2:], momentum=1.0, iterations=1, progress=False)
    with pytest.raises(ValueError, match="patience"):
        EarlyStop(patience=0)
    # a fraction ran its checks at multiples of it (iterations 5, 10, ... at 2.5)
    with pytest.raises(ValueError, match="EarlyStop.patience must be an int >= 1; got 2.5"):
        EarlyStop(patience=2.5)
    assert EarlyStop(patience=np.int64(3)).patience == 3
    for flag in ("use_best", "freeze_at_bounds", "history", "channels_last"):
        # the string "False" is truthy: it silently froze the bound pixels
        with pytest.raises(TypeError, match=f"{flag} must be True or False"):
            invert(model, x[:2], x[2:], iterations=1, progress=False, **{flag: "False"})


def test_draw_pairs_never_pairs_one_class() -> None:
    labels = torch.tensor([0] * 30 + [1] * 5 + [2] * 15 + [3] * 2)
    s, t = draw_pairs(labels, 2000, seed=3)
    assert (labels[s] != labels[t]).all()
    # every other class is reachable from each class, roughly in proportion to its size
    for c in range(4):
        targets = labels[t[labels[s] == c]]
        others = [k for k in range(4) if k != c]
        assert set(targets.tolist()) == set(others)
    from_zero = labels[t[labels[s] == 0]]
    share = (from_zero == 2).float().mean().item()
    assert abs(share - 15 / 22) < 0.1
    s2, t2 = draw_pairs(labels, 2000, seed=3)
    assert torch.equal(s, s2) and torch.equal(t, t2)
    s3, _ = draw_pairs(labels, 20, generator=torch.Generator().manual_seed(5))
    assert s3.unique().numel() == 20  # without replacement when n <= N
    with pytest.raises(ValueError, match="two classes"):
        draw_pairs(torch.zeros(5, dtype=torch.long), 3)
    # n is a count: 2.0 failed in slicing, True in torch.rand, "3" in a comparison
    for bad in (2.0, True, "3", 0):
        with pytest.raises(ValueError, match=f"n must be an int >= 1; got {bad!r}"):
            draw_pairs(labels, bad)
    assert torch.equal(draw_pairs(labels, np.int64(20), seed=3)[0], draw_pairs(labels, 20,
                                                                               seed=3)[0])


def test_freeze_at_bounds_freezes_bound_pixels_and_default_does_not() -> None:
    model, x = tiny_cnn(), images(16, seed=4)
    x[:, :, :3] = 0.0  # like a digit's black background
    x[:, :, -2:] = 1.0
    seeds, targets = x[:8], x[8:].flip(-1)
    frozen_run = invert(model, seeds, targets, iterations=40, use_best=False,
                        freeze_at_bounds=True, progress=False)
    at_bound = (seeds == 0) | (seeds == 1)
    assert torch.equal(frozen_run.images[at_bound], seeds[at_bound])
    assert not torch.equal(frozen_run.images[~at_bound], seeds[~at_bound])
    free_run = invert(model, seeds, targets, iterations=40, use_best=False, progress=False)
    moved = (free_run.images != seeds) & at_bound
    assert moved.float().mean() > 0.1


def test_eval_mode_used_and_modes_and_flags_restored() -> None:
    seen: list[bool] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(self.training)
            return x

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), Probe(), nn.ReLU(),
                          nn.Flatten(), nn.Dropout(0.5), nn.Linear(144, 8), nn.Linear(8, 2))
    model.train()
    model[0].weight.requires_grad_(False)  # a user's own flag must survive too
    stats = model[1].running_mean.clone()
    x = images(4)
    a = invert(model, x[:2], x[2:], iterations=5, progress=False)
    b = invert(model, x[:2], x[2:], iterations=5, progress=False)
    assert seen and not any(seen)
    assert torch.equal(a.images, b.images)  # dropout off
    assert all(m.training for m in model.modules())
    assert torch.equal(model[1].running_mean, stats)
    assert [p.requires_grad for p in model.parameters()] == [False] + [True] * 7
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad])
def test_invert_inside_a_callers_inference_mode_gives_the_same_result(mode: type) -> None:
    """Inside the caller's ``inference_mode()`` (seeds and targets made there are inference
    tensors) or ``no_grad()``, the inversion still takes its gradients (it failed with "element
    0 of tensors does not require grad"): bitwise the result outside, as ordinary tensors."""
    model, x = tiny_cnn(), images(6, seed=3)
    for kw in ({}, {"history": True, "early_stop": EarlyStop(patience=3, rel_tol=0.5),
                    "batch_size": 2}):
        expected = invert(model, x[:3], x[3:], iterations=12, progress=False, **kw)
        with mode():
            inside = invert(model, x[:3].clone(), x[3:].clone(), iterations=12, progress=False,
                            **kw)
        for field in ("images", "loss", "final_loss", "best_loss", "iterations", "history"):
            a, b = getattr(inside, field), getattr(expected, field)
            assert (a is None and b is None) or torch.equal(a.nan_to_num(-1), b.nan_to_num(-1))
            assert a is None or not a.is_inference()
    assert inside.history is not None
    # and the loss it reports is the relative distance of the images it returns
    torch.testing.assert_close(inside.loss.double(), independent_loss(model, inside.images, x[3:]),
                               rtol=1e-5, atol=1e-7)


def test_deterministic_and_batch_size_invariant() -> None:
    model, x = tiny_cnn(dtype=torch.float64), images(16, seed=5, dtype=torch.float64)
    kw = {"iterations": 50, "history": True, "progress": False}
    a = invert(model, x[:8], x[8:], batch_size=8, **kw)
    b = invert(model, x[:8], x[8:], batch_size=8, **kw)
    assert torch.equal(a.images, b.images) and torch.equal(a.history, b.history)
    assert a.images.dtype == torch.float64
    c = invert(model, x[:8], x[8:], batch_size=4, **kw)
    # no sample interacts with another: only kernel rounding (~1e-16) can differ
    assert torch.allclose(a.images, c.images, rtol=0, atol=1e-9)
    assert torch.allclose(a.history, c.history, rtol=0, atol=1e-9)


def test_early_stop_is_per_sample_and_follows_its_rule() -> None:
    model, x = tiny_cnn(dtype=torch.float64), images(16, seed=6, dtype=torch.float64)
    rule = EarlyStop(patience=20, rel_tol=0.05)
    kw = {"iterations": 300, "history": True, "progress": False}
    early = invert(model, x[:8], x[8:], early_stop=rule, batch_size=8, **kw)
    full = invert(model, x[:8], x[8:], batch_size=8, **kw)
    steps = early.iterations
    assert (steps % rule.patience == 0).all() and (steps < 300).any()
    assert steps.unique().numel() > 1  # samples stop at their own time
    assert steps.sum() < 8 * 300  # the work saved
    hist = early.history
    for i, k in enumerate(steps.tolist()):
        assert torch.isnan(hist[k + 1:, i]).all() and not torch.isnan(hist[:k + 1, i]).any()
        # until it stopped, a sample followed exactly the path of the full run
        torch.testing.assert_close(hist[:k + 1, i], full.history[:k + 1, i], rtol=0, atol=1e-12)
        assert early.final_loss[i] == hist[k, i]
        if k == 300:
            continue

        def gain(at: int, i: int = i) -> float:
            before = hist[:at - rule.patience + 1, i].min()
            return float((before - hist[:at + 1, i].min()) / before)

        assert gain(k) < rule.rel_tol  # stopped because it stalled ...
        if k > 2 * rule.patience:  # ... and not at an earlier check
            assert gain(k - rule.patience) >= rule.rel_tol
    assert (full.best_loss <= early.best_loss + 1e-15).all()
    # per-sample stopping keeps the batch-size invariance (over a short horizon: the normalised
    # steps amplify kernel rounding, ~1e-16 at the start, by ~30x every 20 iterations)
    quick = EarlyStop(patience=10, rel_tol=0.3)
    kw = {"iterations": 60, "progress": False, "early_stop": quick}
    whole, split = (invert(model, x[:8], x[8:], batch_size=b, **kw) for b in (8, 3))
    assert (whole.iterations < 60).any() and whole.iterations.unique().numel() > 1
    assert torch.equal(split.iterations, whole.iterations)
    torch.testing.assert_close(split.images, whole.images, rtol=0, atol=1e-9)


def test_early_stop_can_fire_at_the_first_check() -> None:
    """Seeds equal to their targets start at loss 0 with a zero gradient, so they never move
    (closed form): no gain over the first `patience` iterations, stop at `patience`, not 2x.
    A sample that is still improving goes on, on the path of a run without early stopping."""
    model = tiny_cnn(dtype=torch.float64)
    x = images(6, seed=9, dtype=torch.float64)
    seeds, targets = x[:4].clone(), x[:4].clone()
    seeds[3] = x[5]  # the one sample with something to do
    rule = EarlyStop(patience=10, rel_tol=1e-3)
    kw = {"iterations": 40, "history": True, "progress": False}
    early = invert(model, seeds, targets, early_stop=rule, **kw)
    full = invert(model, seeds, targets, **kw)
    assert early.iterations[:3].tolist() == [rule.patience] * 3
    assert early.iterations[3] > rule.patience
    assert torch.equal(early.images[:3], targets[:3]) and (early.loss[:3] == 0).all()
    k = int(early.iterations[3])
    # batch-of-1 kernels round differently from batch-of-4 ones: equal up to ~1e-16
    torch.testing.assert_close(early.history[:k + 1, 3], full.history[:k + 1, 3], rtol=0,
                               atol=1e-12)


def test_known_optimum_orthogonal_linear_representation() -> None:
    """Rep(x) = Q x with Q orthogonal: loss = ||x - t|| / ||t||, every normalised gradient points
    along x - t, so the path is 1-D and follows a scalar recursion simulated here by hand."""
    d = 16
    g = torch.Generator().manual_seed(7)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    body = nn.Linear(d, d, bias=False).double()
    body.weight.data.copy_(q)
    model = nn.Sequential(nn.Flatten(), body, nn.Linear(d, 2).double()).eval()
    s = 0.35 + 0.3 * torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64)
    t = 0.35 + 0.3 * torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64)
    steps = 120
    res = invert(model, s, t, iterations=steps, history=True, use_best=False, progress=False)

    dist, velocity, expected, path = float((s - t).norm()), 0.0, [], []
    for _ in range(steps + 1):
        expected.append(abs(dist) / float(t.norm()))
        path.append(dist)
        velocity = 0.9 * velocity + 0.1 * np.sign(dist)
        dist -= velocity / 8
    # the simulated path stays inside [0, 1], so clamping never acts
    direction = (s - t) / (s - t).norm()
    lo = min(float((t + p * direction).min()) for p in path)
    hi = max(float((t + p * direction).max()) for p in path)
    assert 0 < lo and hi < 1
    np.testing.assert_allclose(res.history[:, 0].numpy(), expected, atol=1e-9)
    final = t + path[-1] * direction
    assert torch.allclose(res.images, final, atol=1e-9)
    assert res.best_loss.item() < 0.02 * expected[0]


def test_zero_gradient_is_guarded_and_zero_target_refused() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(4, 3)
    lin.weight.data.fill_(1.0)
    lin.bias.data.fill_(-2.0)  # rep = relu(sum(x) - 2): dead (zero gradient) when sum(x) < 2
    model = nn.Sequential(nn.Flatten(), lin, nn.ReLU(), nn.Linear(3, 2)).eval()
    dark, bright = torch.full((1, 1, 2, 2), 0.1), torch.full((1, 1, 2, 2), 0.9)
    res = invert(model, dark, bright, iterations=10, progress=False)
    assert torch.isfinite(res.images).all() and torch.equal(res.images, dark)
    assert torch.allclose(res.loss, torch.ones(1))
    with pytest.raises(ValueError, match="all-zero representation"):
        invert(model, bright, dark, iterations=1, progress=False)
    # the error names exactly the offending targets (a `make mutate` survivor otherwise)
    targets = torch.cat([bright, dark, bright, dark])
    with pytest.raises(ValueError, match=r"batch positions \[1, 3\] have an all-zero"):
        invert(model, targets.flip(0), targets, iterations=1, progress=False)


def test_layer_option_inverts_that_layer() -> None:
    model, x = tiny_cnn(), images(8, seed=8)
    res = invert(model, x[:4], x[4:], iterations=30, layer="3", history=True, progress=False)
    with torch.no_grad():
        a, b = model[:4](res.images).flatten(1).double(), model[:4](x[4:]).flatten(1).double()
    assert torch.allclose((a - b).norm(dim=1) / b.norm(dim=1), res.loss.double(), rtol=1e-4)
    assert (res.loss < res.history[0]).all()


def test_autocast_and_channels_last_run_and_keep_float32() -> None:
    model, x = tiny_cnn(), images(8, seed=9)
    plain = invert(model, x[:4], x[4:], iterations=30, progress=False)
    fast = invert(model, x[:4], x[4:], iterations=30, autocast=torch.bfloat16,
                  channels_last=True, progress=False)
    assert fast.images.dtype == torch.float32 and fast.loss.dtype == torch.float32
    assert fast.images.is_contiguous()
    assert fast.images.min() >= 0 and fast.images.max() <= 1
    # bfloat16 forward: same optimisation, coarser loss (within a few percent of the start)
    start = independent_loss(model, x[:4], x[4:])
    assert (fast.best_loss.double() < 0.5 * start).all()
    assert torch.allclose(plain.loss.double(), independent_loss(model, plain.images, x[4:]),
                          rtol=1e-4)
    # float16 (CPU autocast takes it too) runs the loss-scaled path: the same optimisation
    half = invert(model, x[:4], x[4:], iterations=30, autocast=torch.float16, progress=False)
    assert half.images.dtype == torch.float32
    assert (independent_loss(model, half.images, x[4:]) < 0.5 * start).all()


def test_best_iterate_equals_the_argmin_over_separate_runs() -> None:
    """Without history or the result's own losses: the iterate after t steps is the last
    iterate of a run of t steps (deterministic), so the best image of a K-step run must be,
    per sample, the one of the runs t = 1..K (or the seed) with the lowest loss recomputed
    independently -- and the best loss must be that loss."""
    model, x = tiny_cnn(seed=3), images(10, seed=4)
    seeds, targets, k = x[:5], x[5:], 12
    candidates = [seeds] + [invert(model, seeds, targets, iterations=t, step_size=0.6,
                                   use_best=False, progress=False).images
                            for t in range(1, k + 1)]
    losses = torch.stack([independent_loss(model, c, targets) for c in candidates])  # (K+1, N)
    pick = losses.argmin(0)
    expected = torch.stack([candidates[int(t)][i] for i, t in enumerate(pick)])
    assert (pick < k).any() and (pick > 0).all(), pick  # some best iterate is not the last
    best = invert(model, seeds, targets, iterations=k, step_size=0.6, progress=False)
    torch.testing.assert_close(best.images, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(best.best_loss.double(), losses.min(0).values, rtol=1e-4,
                               atol=1e-7)


def test_draw_pairs_at_its_edges() -> None:
    """n == N draws a permutation; n > N draws with replacement over every index (the first
    too); one pair and two classes are enough."""
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    s, t = draw_pairs(labels, 6, seed=1)
    assert sorted(s.tolist()) == list(range(6))  # without replacement at n == N
    s, t = draw_pairs(labels, 600, seed=1)
    assert set(s.tolist()) == set(range(6)) and (labels[s] != labels[t]).all()
    s, t = draw_pairs(labels, 1, seed=1)
    assert s.shape == t.shape == (1,) and labels[s] != labels[t]
    two = torch.tensor([3, 3, 3, 7])
    s, t = draw_pairs(two, 40, seed=2)
    assert (two[s] != two[t]).all()
    assert set(t[two[s] == 3].tolist()) == {3}  # the one image of the other class
    with pytest.raises(ValueError, match="n must be an int >= 1; got 0"):
        draw_pairs(labels, 0)


def test_draw_pairs_takes_labels_as_a_list_of_ints() -> None:
    """Labels as a Python list, as every other function taking labels accepts them (refused:
    "labels must be a torch.Tensor or numpy.ndarray, got list"): the draw of the tensor."""
    labels = [0, 0, 1, 1, 1, 2]
    s, t = draw_pairs(labels, 9, seed=4)
    expected = draw_pairs(torch.tensor(labels), 9, seed=4)
    assert torch.equal(s, expected[0]) and torch.equal(t, expected[1])
    assert all(labels[i] != labels[j] for i, j in zip(s.tolist(), t.tolist(), strict=True))
    with pytest.raises(ValueError, match="integer class indices"):
        draw_pairs([0.0, 1.0], 1)


def test_zero_iterations_return_the_seeds_and_bad_counts_are_named() -> None:
    model, x = tiny_cnn(), images(6, seed=3)
    res = invert(model, x[:3], x[3:], iterations=0, history=True, progress=False)
    assert torch.equal(res.images, x[:3]) and res.iterations.tolist() == [0] * 3
    torch.testing.assert_close(res.loss.double(), independent_loss(model, x[:3], x[3:]),
                               rtol=1e-5, atol=1e-7)
    assert res.history.shape == (1, 3)
    # 2e3 (a natural way to write 2000) failed inside the loop, naming neither argument;
    # True ran one iteration / batches of one
    for bad in ({"iterations": -1}, {"batch_size": 0}, {"iterations": 2e1},
                {"batch_size": 2.0}, {"iterations": True}, {"batch_size": True}):
        with pytest.raises(ValueError, match="need iterations >= 0 and batch_size >= 1"):
            invert(model, x[:3], x[3:], progress=False, **bad)
    counted = invert(model, x[:3], x[3:], iterations=np.int64(2), batch_size=np.int64(2),
                     progress=False)
    assert counted.iterations.tolist() == [2] * 3


def test_early_stop_with_patience_one_checks_every_iteration() -> None:
    """Seeds equal to their targets never move (closed form: loss 0, zero gradient), so with
    patience 1 they stop at the first check, iteration 1."""
    model = tiny_cnn(dtype=torch.float64)
    x = images(3, seed=9, dtype=torch.float64)
    seeds = x.clone()
    seeds[2] = 1 - x[2]  # the one sample with something to do
    res = invert(model, seeds, x, iterations=10, early_stop=EarlyStop(patience=1, rel_tol=1e-3),
                 progress=False)
    assert res.iterations[:2].tolist() == [1, 1] and res.iterations[2] > 1
    assert torch.equal(res.images[:2], x[:2])


def test_a_tie_keeps_the_earliest_best_iterate() -> None:
    """As the reference's replace_best (strict <): rep = relu(sum(x) - 2) dies after the first
    step (x = 0.9 - 10 * 0.1 * 0.5 = 0.4 per pixel, closed form), then momentum alone carries x
    to 0 at the same loss 1; the earliest iterate of that loss is kept, not the last."""
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(-2.0)
    model = nn.Sequential(nn.Flatten(), lin, nn.ReLU(), nn.Linear(3, 2)).eval()
    seed, target = torch.full((1, 1, 2, 2), 0.9), torch.full((1, 1, 2, 2), 0.6)
    res = invert(model, seed, target, iterations=5, step_size=10.0, history=True,
                 progress=False)
    assert res.history[1:].tolist() == [[1.0]] * 5  # every iterate after the seed ties
    assert float(res.history[0, 0]) == pytest.approx(3.0, rel=1e-5)  # (1.6 - 0.4) / 0.4
    torch.testing.assert_close(res.images, torch.full((1, 1, 2, 2), 0.4))
    assert torch.equal(res.final_loss, res.best_loss)


def test_draw_pairs_targets_are_uniform_over_every_other_image() -> None:
    """Each seed's target is uniform over the images of the other classes: for every seed
    class, every such image (the last of the sorted order too) is drawn about equally often.
    Checked with scipy's chi-square goodness-of-fit against the uniform counts."""
    from scipy.stats import chisquare

    labels = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0, 2, 2])  # unsorted, classes interleaved
    s, t = draw_pairs(labels, 30_000, seed=7)
    for c in range(3):
        drawn = t[labels[s] == c]
        others = (labels != c).nonzero().flatten()
        counts = torch.bincount(drawn, minlength=len(labels))[others].numpy()
        assert (counts > 0).all(), f"class {c}: some image of another class is never a target"
        assert chisquare(counts).pvalue > 1e-4, (c, counts)


def test_update_does_not_depend_on_the_representations_scale() -> None:
    """The relative loss, hence the reference update (its gradient normalised per sample), is
    the same for Rep and c·Rep; so must the inversion be, also at scales whose gradients are
    tiny (1e-8) or huge (1e12). Checked against the update written out by hand (float64)."""
    x = images(8, seed=14, dtype=torch.float64) * 0.8 + 0.1
    seeds, targets = x[:4], x[4:]

    def by_hand(model: nn.Module, iterations: int) -> torch.Tensor:
        body = model[:-1]
        t_rep = body(targets).detach()
        z, m = seeds.clone(), torch.zeros_like(seeds)
        best, best_loss = seeds.clone(), torch.full((4,), float("inf"), dtype=torch.float64)
        for _ in range(iterations + 1):  # the last pass only scores the last iterate
            z.requires_grad_(True)
            loss = (body(z) - t_rep).norm(dim=1) / t_rep.norm(dim=1)
            (g,) = torch.autograd.grad(loss.sum(), z)
            with torch.no_grad():
                better = loss < best_loss
                best[better], best_loss[better] = z[better], loss[better]
                m = 0.9 * m + 0.1 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                z = (z - m / 8).clamp(0, 1)
        return best

    expected = by_hand(tiny_cnn(dtype=torch.float64), 25)
    for scale in (1e-8, 1.0, 1e12):
        model = tiny_cnn(dtype=torch.float64)
        with torch.no_grad():  # ReLU is positively homogeneous: the representation is scaled
            model[6].weight.mul_(scale)
            model[6].bias.mul_(scale)
        res = invert(model, seeds, targets, iterations=25, batch_size=4, progress=False)
        assert torch.allclose(res.images, expected, atol=1e-9), scale
        assert torch.allclose(res.images, by_hand(model, 25), atol=1e-9), scale


def test_a_target_norm_that_overflows_is_refused_not_read_as_loss_zero() -> None:
    model = tiny_cnn()
    with torch.no_grad():
        model[6].weight.mul_(1e20)
        model[6].bias.mul_(1e20)
    x = images(4, seed=15)
    with pytest.raises(ValueError, match="too large for its L2 norm"):
        invert(model, x[:2], x[2:], iterations=2, progress=False)


def test_batches_of_one_image_are_allowed_and_change_nothing() -> None:
    """batch_size=1 (one pair at a time, e.g. on a small GPU) is valid (>= 1) and, samples never
    interacting, gives the batched run's results: checked against the update written out by hand
    for all pairs at once (float64; a `make mutate` survivor refused batch_size=1 unnoticed)."""
    model = tiny_cnn(dtype=torch.float64)
    x = images(6, seed=16, dtype=torch.float64)
    seeds, targets = x[:3], x[3:]
    body = model[:-1]
    t_rep = body(targets).detach()
    z, m = seeds.clone(), torch.zeros_like(seeds)
    for _ in range(12):  # the paper's update: normalised gradient, momentum 0.9, step 1/8, clamp
        z.requires_grad_(True)
        loss = (body(z) - t_rep).norm(dim=1) / t_rep.norm(dim=1)
        (g,) = torch.autograd.grad(loss.sum(), z)
        with torch.no_grad():
            m = 0.9 * m + 0.1 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            z = (z - m / 8).clamp(0, 1)
    one = invert(model, seeds, targets, iterations=12, batch_size=1, use_best=False,
                 progress=False)
    assert one.iterations.tolist() == [12] * 3
    torch.testing.assert_close(one.images, z.detach(), rtol=0, atol=1e-9)
    whole = invert(model, seeds, targets, iterations=12, batch_size=3, use_best=False,
                   progress=False)
    torch.testing.assert_close(one.images, whole.images, rtol=0, atol=1e-9)


def test_early_stop_with_zero_tolerance_stops_nothing() -> None:
    """EarlyStop's rule is "improved by *less than* rel_tol": at rel_tol 0 no gain is below it,
    so even seeds equal to their targets (closed form: loss 0, zero gradient, gain exactly 0 at
    every check) run every iteration. (The boundary `<` vs `<=` was an untested `make mutate`
    survivor: `<=` stopped them at the first check.)"""
    model = tiny_cnn(dtype=torch.float64)
    x = images(3, seed=9, dtype=torch.float64)
    res = invert(model, x.clone(), x, iterations=12,
                 early_stop=EarlyStop(patience=3, rel_tol=0.0), history=True, progress=False)
    assert res.iterations.tolist() == [12] * 3
    assert torch.equal(res.images, x) and (res.history == 0).all()
