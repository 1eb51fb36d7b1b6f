"""The GPU code paths on an emulated CUDA device (:mod:`fake_cuda`): models on the GPU, data on
the CPU, as the ``paper`` preset runs them (the paper zoo's models are prepared on CUDA when
there is one, :func:`advlens.zoo.builder.published_model`; the images load on the CPU)."""

from __future__ import annotations

import nbformat
import numpy as np
import pytest
import torch

import advlens.inversion
from advlens import accel, alignment, attacks, compat, features, presets, resample, runner
from advlens.attacks.core import attack_mode
from advlens.attacks.minimal import linearised_distance
from advlens.data import ImageSet
from advlens.papers import jones2022
from advlens.zoo.architectures import build_model
from fake_cuda import fake_cuda, on_gpu


def test_the_emulated_gpu_refuses_what_cuda_refuses() -> None:
    with fake_cuda():
        x = torch.rand(4, 3).to("cuda")
        assert x.device == torch.device("cuda", 0) and on_gpu(x * 2)
        assert on_gpu(x + torch.tensor(1.0))  # a CPU 0-dim tensor mixes legally
        assert on_gpu(x[torch.tensor([0, 2])])  # so do CPU indices
        with pytest.raises(RuntimeError, match="same device"):
            x + torch.rand(4, 3)
        with pytest.raises(RuntimeError, match="same device"):
            torch.nn.Linear(3, 2)(x)
        with pytest.raises(TypeError, match="numpy"):
            np.asarray(x)
        with pytest.raises(RuntimeError, match="generator"):
            torch.rand(3, device=x.device, generator=torch.Generator().manual_seed(0))
        assert not on_gpu(x.cpu()) and on_gpu(x)
        assert on_gpu(torch.nn.Linear(3, 2).to(device=x.device)(x))


def test_the_emulated_gpu_copies_and_autocasts_as_cuda_does() -> None:
    cpu = torch.rand(4)
    with fake_cuda():
        # as_tensor of a CPU tensor onto the GPU is a copy there (it returned the CPU input)
        moved = torch.as_tensor(cpu, dtype=cpu.dtype, device="cuda")
        assert on_gpu(moved) and not on_gpu(cpu)
        x = torch.rand(2, 3).to("cuda")
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            out = torch.nn.Linear(3, 2).to("cuda")(x)
        assert on_gpu(out) and out.dtype == torch.bfloat16


def _cell(number: str, marker: str) -> str:
    (path,) = runner.discover([number])
    (cell,) = [c for c in nbformat.read(path, as_version=4).cells
               if c.cell_type == "code" and marker in c.source]
    return cell.source


def _paper_model(kind: str = "inversion") -> torch.nn.Module:
    """A stand-in for a paper-zoo model: prepared as published_model prepares them (on CUDA
    when available, fp32, channels-last); ``kind="features"`` as features run (bf16)."""
    return accel.prepare(build_model("cnn-xs", "twin-cue", seed=0), kind=kind)


def test_notebook_02_fgsm_by_hand_runs_with_a_gpu_model() -> None:
    x, y = torch.rand(16, 3, 32, 32), torch.arange(16) % 10
    with fake_cuda():
        models = {"m": _paper_model()}
        assert next(models["m"].parameters()).device.type == "cuda"
        exec(_cell("02", "x_fgsm"), {"MODELS": models, "SIDES": {"m": None}, "x": x, "y": y,
                                     "torch": torch, "attacks": attacks,
                                     "resample": resample, "P": presets.resolve("02", "smoke")})


def test_notebook_01_inversion_by_hand_runs_with_a_gpu_model() -> None:
    data = ImageSet(torch.rand(16, 3, 32, 32), torch.arange(16) % 10, None,
                    [str(k) for k in range(10)], "random")
    with fake_cuda():
        exec(_cell("01", "representation_graph"),
             {"features": features, "data": data, "s_idx": torch.arange(8),
              "t_idx": torch.arange(8, 16), "model_r": _paper_model(), "torch": torch,
              "advlens": advlens})


def test_class_means_and_nc1_take_gpu_representations() -> None:
    rep = torch.randn(30, 5, dtype=torch.float64)
    labels = torch.arange(30) % 3
    means = torch.stack([rep[labels == k].mean(0) for k in range(3)])[labels]
    expected = jones2022.nc1(rep, labels)
    with fake_cuda():
        on = rep.to("cuda")
        got = jones2022.class_means(on, labels)
        assert on_gpu(got)
        torch.testing.assert_close(got.cpu(), means)
        assert jones2022.nc1(on, labels.to("cuda")) == pytest.approx(expected, rel=1e-12)


def test_mean_cka_ci_takes_gpu_representations() -> None:
    rep = torch.randn(30, 5)
    reps = {"a": {"a": rep, "b": rep[:, :3] ** 2}}
    expected = jones2022.mean_cka_ci(reps, [("a", "b")], groups=5)
    with fake_cuda():
        gpu_reps = {"a": {k: v.to("cuda") for k, v in reps["a"].items()}}
        assert jones2022.mean_cka_ci(gpu_reps, [("a", "b")], groups=5) == expected


@pytest.mark.parametrize("call", [
    lambda m, x, y: attacks.minimal_l2(m, x, y, budget=40, progress=False),
    lambda m, x, y: attacks.minimal_linf(m, x, y, budget=40, progress=False),
    lambda m, x, y: attacks.minimal_l2(m, x, y, method="fab", budget=12, progress=False),
    lambda m, x, y: attacks.minimal_l2(m, x, y, method="cw", budget=12, progress=False),
    lambda m, x, y: attacks.ead(m, x, y, steps=4, binary_steps=2, progress=False),
    lambda m, x, y: attacks.pgd(m, x, y, eps=0.5, steps=3, random_start=True,
                                generator=torch.Generator().manual_seed(0)),
    lambda m, x, y: attacks.pgd(m, x, y, eps=torch.full((6,), 0.5), steps=3),
    lambda m, x, y: attacks.run_batched(attacks.ddn, m, x, y, batch_size=4, steps=3,
                                        init_eps=torch.full((6,), 0.5), progress=False),
    lambda m, x, y: attacks.choose_targets(m, x, y, "random",
                                           generator=torch.Generator().manual_seed(0)),
    lambda m, x, y: advlens.inversion.invert(m, x[:3], x[3:], iterations=2, history=True,
                                             progress=False),
    lambda m, x, y: features.representation(m, x),
], ids=["minimal_l2", "minimal_linf", "fab_l2", "cw", "ead", "pgd", "pgd_eps_per_image",
        "ddn_init_eps_batched", "targets", "invert", "representation"])
def test_library_paths_run_with_a_gpu_model_and_cpu_data(call) -> None:
    x, y = torch.rand(6, 3, 32, 32), torch.arange(6) % 10
    expected = call(build_model("cnn-xs", "twin-cue", seed=0).eval(), x, y)
    with fake_cuda():
        got = call(_paper_model().eval(), x, y)
    if not isinstance(got, torch.Tensor):
        expected, got = ((expected.adv, got.adv) if hasattr(got, "adv")
                         else (expected.images, got.images))
    assert not on_gpu(got)  # returned where the data came from
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind, autocast", [("features", torch.bfloat16), ("attacks", None),
                                            ("inversion", None)])
def test_gpu_autocast_default_per_computation(kind: str, autocast: torch.dtype | None) -> None:
    """On a GPU, "auto" autocasts only where CPU-bf16 moved results by less than
    BF16_TOLERANCE (benchmarks/bench_bf16.py): features (CKA within 1.3e-3), not attacks (the
    rebuilt zoo's minimal-L2 norms moved 2.6 % per image on resnet8-xs, 1.8 % on vit-xs) nor
    inversion."""
    with fake_cuda():
        prepared = accel.prepare(build_model("cnn-xs", "twin-cue", seed=0), kind=kind)
        assert getattr(prepared, "dtype", None) == autocast


def test_bf16_features_on_a_gpu_match_cpu_bf16() -> None:
    """The features default on a GPU (bf16 autocast) computes as CPU-bf16 does."""
    x = torch.rand(6, 3, 32, 32)
    cpu = accel.prepare(build_model("cnn-xs", "twin-cue", seed=0), device="cpu",
                        autocast=torch.bfloat16, channels_last=True)
    expected = features.representation(cpu, x)
    with fake_cuda():
        got = features.representation(_paper_model("features"), x)
    torch.testing.assert_close(got, expected)


def _affine() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """An affine classifier of 3x2x2 images and images it classifies (labels = its argmax)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    x = torch.rand(5, 3, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        y = model(x.float()).argmax(1)
    return model, x, y


def test_linearised_distance_attacks_the_validated_images() -> None:
    """margin / ||grad margin|| in closed form for an affine model: (z_y - z_j) / ||W_y - W_j||
    with j the runner-up; float64 images and CPU images beside a GPU model crashed (the raw
    images were differentiated, not the validated ones)."""
    model, x, y = _affine()
    w = model[1].weight.detach().double()
    z = x.flatten(1) @ w.T + model[1].bias.detach().double()
    rows = torch.arange(5)
    j = z.masked_fill(torch.nn.functional.one_hot(y, 3).bool(), -torch.inf).argmax(1)
    expected = (z[rows, y] - z[rows, j]) / (w[y] - w[j]).norm(dim=1)
    assert (expected > 0).all()
    with attack_mode(model):
        got = linearised_distance(model, x, y)  # float64 images, float32 model
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    with fake_cuda():
        gpu = model.to("cuda")
        with attack_mode(gpu):
            got = linearised_distance(gpu, x.float(), y)
        assert on_gpu(got)
    torch.testing.assert_close(got.cpu().double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call", [
    lambda m, x, y: alignment.saliency(m, x, y, create_graph=True),
    lambda m, x, y: alignment.logits_and_saliency(m, x, y)[1],
], ids=["saliency_create_graph", "logits_and_saliency"])
def test_differentiable_saliency_takes_cpu_images_beside_a_gpu_model(call) -> None:
    """The channel mean of d z_y / dx is the mean over channels of W_y for an affine model."""
    model, x, y = _affine()
    x = x.float()
    expected = model[1].weight.detach()[y].view(5, 3, 2, 2).mean(1)
    with fake_cuda():
        got = call(model.to("cuda"), x, y)
    torch.testing.assert_close(got.detach().cpu(), expected)


def test_mask_concentration_takes_gpu_seeds_beside_the_cpu_inversions() -> None:
    """invert returns its images on the CPU; seeds and masks may be on the GPU. Closed form:
    all the change on the top-left 2x2 of a 4x4 image; the top half holds all of it on half
    the area (2), the bottom half none (0)."""
    seeds = torch.zeros(1, 1, 4, 4)
    inverted = seeds.clone()
    inverted[..., :2, :2] = 1.0
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masks[:, 0, :2], masks[:, 1, 2:] = True, True
    with fake_cuda():
        got = jones2022.mask_concentration(seeds.to("cuda"), inverted, masks.to("cuda"))
        assert on_gpu(got)
    torch.testing.assert_close(got.cpu(), torch.tensor([[2.0, 0.0]], dtype=torch.float64))


def test_robustness_invert_names_a_cpu_model_where_cuda_is_available() -> None:
    """robustness moves the seeds to CUDA; a CPU model then met them with torch's
    device-mismatch error, which named neither the model nor the way out."""
    pytest.importorskip("robustness")
    model, x, _ = _affine()
    images = x.float().view(5, 3, 2, 2)
    with fake_cuda(), pytest.raises(RuntimeError, match=r"model on it \(it is on cpu\)"):
        compat.robustness_invert(model, images[:2], images[2:4], iterations=2, progress=False)
