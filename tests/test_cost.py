"""The cost model: FLOPs per pass against closed forms, pass counts against a hand count."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from advlens import cost
from advlens.data import ImageSet
from advlens.zoo import ModelConfig


def test_pass_flops_match_the_closed_form() -> None:
    # conv 3->4 (3x3, pad 1) on 8x8: 2*3*4*9*64 FLOPs; linear 256->5: 2*256*5
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(),
                          nn.Linear(256, 5, bias=False))
    forward, backward = cost.pass_flops(model, 8)
    assert forward == 2 * 3 * 4 * 9 * 64 + 2 * 256 * 5
    # input gradient only (parameters frozen): one transposed conv and one matmul, same sizes
    assert backward == forward



def test_pass_flops_count_a_vits_fused_attention() -> None:
    """timm's ViTs call F.scaled_dot_product_attention, whose CPU flash kernel FlopCounterMode
    does not know: QKᵀ and AV counted 0 FLOPs (ViT-S/16 at 224: 8.48 GFLOPs, not 9.2)."""
    from timm.models.vision_transformer import VisionTransformer

    t, d, depth, classes = 5, 64, 2, 10  # 2x2 patches of 16 + a class token
    model = VisionTransformer(img_size=32, patch_size=16, embed_dim=d, depth=depth,
                              num_heads=2, num_classes=classes)
    assert all(block.attn.fused_attn for block in model.blocks)
    forward, backward = cost.pass_flops(model, 32)
    attention = 2 * 2 * t * t * d  # QKᵀ and AV over all heads
    linear = 2 * t * (3 * d * d + d * d + 4 * d * d + 4 * d * d)  # qkv, proj, fc1, fc2
    hand = 2 * 3 * 16 * 16 * d * 4 + depth * (linear + attention) + 2 * d * classes
    assert forward == hand
    # the input gradient: each weight product once, each attention product (both operands
    # carry the gradient) twice
    assert backward == hand + depth * attention

def test_passes_and_hours_for_a_hand_counted_zoo() -> None:
    zoo = [ModelConfig("resnet18", source="robustness", dataset="imagenet", epochs=0,
                       checkpoint="a"),
           ModelConfig("resnet18", source="robustness", dataset="imagenet", epochs=0,
                       regime="l2-at", eps=3.0, checkpoint="b")]
    knobs = {"00": {"robust_eval_n": 10},
             "01": {"heatmap_archs": ["resnet18"], "heatmap_eps": 0.0, "n_data": 5,
                    "n_pairs": 4, "iterations": 3, "robust_archs": ["resnet18"],
                    "robust_eps": [0.0, 3.0], "robust_pairs": 2, "twin_zoo": "laptop",
                    "twin_design": "latent", "twin_n": 10, "twin_pairs": 2,
                    "twin_iterations": 3},
             "02": {"target_modes": ["random"], "n_images": 2, "search_tries": 3,
                    "ifgsm_steps": 4, "cw_binary_steps": 2, "cw_steps": 5,
                    "ead_binary_steps": 1, "ead_steps": 6, "transfer_steps": 7,
                    "transfer_target_mode": "random"}}
    passes = cost.notebook_passes(knobs, zoo, val_images=7)
    passes = passes[passes["arch"] == "resnet18"].groupby("notebook")[["fwd", "fwd_bwd"]].sum()
    # 00: per model, 10 images: clean accuracy, then clean + PGD's confirming + adversarial
    # forwards, and 10 PGD steps; and its top-1 accuracy on the 7 validation images
    assert passes.loc["00"].tolist() == [4 * 20 + 2 * 7, 10 * 20]
    # heatmap: 2 x 5 test + 4 targets + 4 last iterates + 4 inverted sets of 1 model; 4 pairs
    # x 3 iterations. Levels: one architecture at each radius, which (b) skips
    assert passes.loc["01"].tolist() == [22, 12]
    # attacks: 2 modes x 2 images x (3 * (1 + 4) + 2 * 5 + 1 * 6); forward 2 images x (2 modes
    # (correct mask, random targets) + 2 modes x (2 searches x (3 tries + 2) + 2 confirming));
    # transfer: 2 x 2 images x (clean, confirming, 1 target) + the random targets' forward,
    # 2 * 2 * 7 forward+backward
    assert passes.loc["02"].tolist() == [2 * (2 + 2 * 12) + 2 * 2 * 3 + 2, 2 * 2 * 31 + 28]
    flops = pd.DataFrame([{"arch": "resnet18", "forward_gflops": 1.0, "backward_gflops": 2.0}])
    knobs = {nb: knobs[nb] for nb in ("00", "02")}  # 01's twin-cue models: measured below
    hours = cost.gpu_hours(cost.notebook_passes(knobs, zoo, val_images=7), flops,
                           gpus=(cost.Gpu("X", 1e9, 0.5),)).set_index("notebook")
    expected = (94 * 1e9 + 200 * 3e9) / 0.5e9 / 3600
    assert hours.loc["00", "X_hours"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="no FLOPs measured"):
        cost.gpu_hours(cost.notebook_passes(knobs, zoo), flops.assign(arch="other"))
    assert "| **all** |" in cost.markdown(hours.reset_index(), gpus=(cost.Gpu("X", 1e9, 0.5),))


def test_gpu_hours_assume_the_precision_the_paper_preset_runs_in(monkeypatch) -> None:
    """The zoo serves every published model for inversion (zoo.builder.published_model:
    ``accel.prepare(..., kind="inversion")``, "fp32 -- one model serves inversion too, which
    bf16 changes beyond tolerance") and accel.BF16_DEFAULT keeps bf16 off for attacks too, so
    the paper preset's passes run in fp32, convolutions on TF32 tensor cores (cuDNN's default):
    the hours divide by the TF32 dense peak, half the bf16 one (NVIDIA datasheets, dense: H100
    SXM bf16 989 / TF32 494.7 TFLOP/s; A100 SXM 312 / 156). The bf16 peak halved the hours."""
    from advlens import accel

    assert not accel.BF16_DEFAULT["inversion"] and not accel.BF16_DEFAULT["attacks"]
    gpus = {g.name: g for g in cost.GPUS}
    assert {n: (g.peak, g.precision) for n, g in gpus.items()} == {
        "H100": (494.7e12, "TF32"), "A100": (156e12, "TF32")}
    # by hand: 5.8e19 FLOPs (one forward+backward pass of 2.9e10 + 2.9e10 GFLOPs) at 40 % of
    # each GPU's TF32 peak
    passes = pd.DataFrame([{"notebook": "02", "arch": "m", "fwd": 0, "fwd_bwd": 1, "train": 0}])
    flops = pd.DataFrame([{"arch": "m", "forward_gflops": 2.9e10, "backward_gflops": 2.9e10}])
    hours = cost.gpu_hours(passes, flops)
    assert hours.loc[0, "H100_hours"] == pytest.approx(5.8e19 / (0.4 * 494.7e12) / 3600)
    assert hours.loc[0, "A100_hours"] == pytest.approx(5.8e19 / (0.4 * 156e12) / 3600)
    assert "H100 495 TFLOP/s TF32 dense × 40% sustained" in cost.markdown(hours)
    # computed from accel, not typed: bf16 autocast for inversion and attacks -> bf16 peaks
    monkeypatch.setitem(accel.BF16_DEFAULT, "inversion", True)
    monkeypatch.setitem(accel.BF16_DEFAULT, "attacks", True)
    assert cost.compute_precision() == "bf16"


# ------------------------------------------------------- pass counts against counted forwards
class _Counter:
    """Images entering one model's forward calls (a pre-hook: forwards stopped at a layer, as
    for features, count too), split as the cost model splits passes: training (module in train
    mode), forward+backward (a graph is recorded: grad mode on and the input or a parameter
    requires grad), forward."""

    def __init__(self) -> None:
        self.fwd = self.fwd_bwd = self.train = 0

    def add(self, module: nn.Module, args: tuple) -> None:
        n = int(args[0].shape[0])
        graph = torch.is_grad_enabled() and (
            args[0].requires_grad or any(p.requires_grad for p in module.parameters()))
        if module.training:
            self.train += n
        elif graph:
            self.fwd_bwd += n
        else:
            self.fwd += n

    def counts(self) -> tuple[int, int]:
        return self.fwd, self.fwd_bwd


def _counted(model: nn.Module, counter: _Counter | None = None) -> _Counter:
    counter = counter or _Counter()
    # a plain function: deep copies of the model (probes) share it, so their passes count too
    model.register_forward_pre_hook(lambda module, args: counter.add(module, args))
    return counter


def _tiny(classes: int, seed: int, width: int = 3 * 8 * 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(width, 16), nn.ReLU(),
                         nn.Linear(16, classes)).eval()


def _images(model: nn.Module, n: int, seed: int, classes: int = 10) -> ImageSet:
    """Random images labelled with ``model``'s own predictions: it gets every one right (the
    cost model's upper bound)."""
    x = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x).argmax(1)
    return ImageSet(x, y, None, [str(c) for c in range(classes)], "random")


def test_notebook03_passes_equal_the_forwards_of_its_code_path() -> None:
    from advlens import attacks
    from advlens.papers import linsley2023

    model = _tiny(10, 0)
    pool = _images(model, 40, 1)
    # images the search breaks at eps_max: then every round runs for every image (the bound)
    broken = attacks.minimal_eps_pgd(model, pool.images, pool.labels).success
    data = pool.subset(broken.nonzero().flatten()[:12])
    maps = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    k = {"attacks": ["pgd", "ddn"], "ddn_steps": 3, "n_show": 4}
    counter = _counted(model)
    config = ModelConfig("cnn-s")  # its family and regime: a model that takes the images as given
    out = linsley2023.study({"m": model}, {"m": config}, data, maps, attacks_=k["attacks"],
                            ddn_steps=k["ddn_steps"], batch_size=5, n_boot=10)
    searched = out["per_image"][out["per_image"]["attack"] == "pgd"]
    assert len(searched) == 12 and searched["broken"].all()
    linsley2023.saliency_alignment({"m": model}, data, maps, human_maps=False, batch_size=5)
    right = linsley2023.correct(model, data.images, data.labels)  # the qualitative panel
    pick = right.nonzero().flatten()[:k["n_show"]]
    linsley2023.qualitative(model, data.images[pick], data.labels[pick], maps[pick])
    assert counter.counts() == cost.alignment_passes(k, 12, shown=True, accuracy=True)
    counter.fwd = counter.fwd_bwd = 0
    linsley2023.saliency_alignment({"m": model}, data, maps, human_maps=False)
    assert counter.counts() == (0, 12)  # one saliency pass per image
    # the paper preset: the x axis is the zoo's ImageNet top-1 (top1=), no pass over the images
    # (the cost model counted one: 1,000 forwards per ImageNet model)
    counter.fwd = counter.fwd_bwd = 0
    linsley2023.study({"m": model}, {"m": config}, data, maps, attacks_=k["attacks"],
                      ddn_steps=k["ddn_steps"], batch_size=5, n_boot=10, top1={"m": 0.5})
    linsley2023.saliency_alignment({"m": model}, data, maps, human_maps=False, batch_size=5)
    linsley2023.correct(model, data.images, data.labels)
    linsley2023.qualitative(model, data.images[pick], data.labels[pick], maps[pick])
    assert counter.counts() == cost.alignment_passes(k, 12, shown=True)


def test_notebook04_passes_equal_the_forwards_of_its_code_path() -> None:
    from advlens.papers import liang2021

    k = {"alpha_attack": "pgd", "steps": 3, "n_images": 7, "probe": "linear",
         "probe_epochs": 2, "probe_lr": 0.01, "val_fraction": 0.25, "batch_size": 4}
    # a config only for the split sizes the cost model reads (twin-cue: sizes as given)
    ref_config = ModelConfig("cnn-s", dataset="twin-cue", variant="both", n_train=16,
                             n_test=10, epochs=1)
    reference = _tiny(4, 0)
    images = _images(reference, 16, 1, classes=4)  # (the probe needs two classes or more)
    train = ImageSet(images.images, torch.arange(16) % 4, None, images.classes, "random")
    test = _images(reference, 10, 2, classes=4)
    sources = {"a": _tiny(10, 3), "b": _tiny(6, 4)}
    counters = {"reference": _counted(reference),
                **{name: _counted(m) for name, m in sources.items()}}
    settings = liang2021.Settings(attack="pgd", eps=0.1, steps=k["steps"],
                                  n_images=k["n_images"], probe_epochs=k["probe_epochs"],
                                  val_fraction=k["val_fraction"], batch_size=k["batch_size"])
    rows = liang2021.evaluate_sources(reference, sources, train, test, settings, seed=0)
    with torch.no_grad():  # run_experiment's reference accuracy, outside evaluate_sources
        reference(test.images)
    assert rows["n_alpha"].tolist() == [7, 7]
    expected = cost.liang_passes(k, ref_config, [ref_config, ref_config])
    assert counters["reference"].counts() == expected["reference"]
    assert counters["a"].counts() == expected[0]
    assert counters["b"].counts() == expected[1]


def _name01(config: ModelConfig) -> str:
    """A published model by its checkpoint, a twin-cue model by its notebook-01 label."""
    return config.checkpoint if config.source != "trained" else \
        f"{config.variant}/s{config.seed}"


def test_notebook01_passes_equal_the_forwards_of_its_code_path() -> None:
    """Notebook 01's cells (a), (b) with its unequal-radius grid, and (c) on tiny models: the
    cost model counted each test set once, no inversion's last scoring pass, none of the
    unequal-radius grid (31 of every 35 forwards of (b) at the paper knobs) and no part of (c);
    nor (b)'s freeze_at_bounds rerun of its end radii (``compare_freeze``, on at every preset)."""
    from advlens import features
    from advlens.inversion import draw_pairs
    from advlens.papers import jones2022
    from advlens.zoo import spec

    k = {"heatmap_archs": ["resnet18", "resnet50"], "heatmap_eps": 0.0, "n_data": 12,
         "n_pairs": 6, "iterations": 2, "robust_archs": ["resnet18", "resnet50"],
         "robust_eps": [0.0, 1.0, 3.0], "robust_pairs": 5, "twin_zoo": "laptop",
         "twin_design": "latent", "twin_n": 14, "twin_pairs": 4, "twin_iterations": 3,
         "compare_freeze": True}
    # radius 1 has one architecture: (b) skips it, yet its model judges the others' inversions
    zoo = [ModelConfig(arch, source="robustness", dataset="imagenet", epochs=0, eps=eps,
                       regime="l2-at" if eps else "standard", checkpoint=f"{arch}-{eps}")
           for arch, eps in [("resnet18", 0.0), ("resnet18", 1.0), ("resnet18", 3.0),
                             ("resnet50", 0.0), ("resnet50", 3.0)]]
    passes = cost.notebook_passes({"01": k}, zoo)
    passes = passes[~passes["what"].str.contains("train")]  # zoo training: tested below
    name = passes["config"].map(_name01)
    expected = passes.groupby(name)[["fwd", "fwd_bwd"]].sum()
    twin_configs = [c for c in spec(k["twin_zoo"]) if c.dataset == "twin-cue"  # as cell (c)
                    and c.arch == "cnn-s" and c.regime == "standard"]
    configs = [*zoo, *twin_configs]
    models = {_name01(c): _tiny(10, i) for i, c in enumerate(configs)}
    counters = {name: _counted(m) for name, m in models.items()}
    by_config = {c.checkpoint: models[_name01(c)] for c in zoo}
    images = torch.rand(30, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(30) % 10
    s_idx, t_idx = draw_pairs(labels, k["n_pairs"], seed=0)
    invert_kw = {"seed_labels": labels[s_idx], "target_labels": labels[t_idx],
                 "iterations": k["iterations"], "progress": False}
    test = images[:k["n_data"]]
    heat = {arch: by_config[f"{arch}-0.0"] for arch in k["heatmap_archs"]}  # (a)
    jones2022.representations(heat, test)
    jones2022.data_cka_matrix(heat, test)
    jones2022.inverted_cka_matrix(heat, images[s_idx], images[t_idx], **invert_kw)
    levels = {eps: {jones2022.model_label(c): by_config[c.checkpoint] for c in zoo
                    if c.eps == eps} for eps in k["robust_eps"]}  # (b)
    rs, rt = s_idx[:k["robust_pairs"]], t_idx[:k["robust_pairs"]]
    by_level = jones2022.similarity_by_level(
        levels, images[rs], images[rt], test, groups=2, pair_filter=jones2022.different_kinds,
        **{**invert_kw, "seed_labels": labels[rs], "target_labels": labels[rt]})
    jones2022.cross_level_similarity(levels, by_level.inverted,
                                     pair_filter=jones2022.different_kinds)
    ends = sorted(by_level.summary.level)  # compare_freeze: the end radii again, frozen
    jones2022.similarity_by_level(
        {lv: levels[lv] for lv in sorted({ends[0], ends[-1]})}, images[rs], images[rt], test,
        groups=2, pair_filter=jones2022.different_kinds, freeze_at_bounds=True,
        **{**invert_kw, "seed_labels": labels[rs], "target_labels": labels[rt]})
    twin = {name: m for name, m in models.items() if "/" in name}
    both = images[:k["twin_n"]]  # (c)
    ts, tt = draw_pairs(labels[:k["twin_n"]], k["twin_pairs"], seed=0)
    for m in twin.values():
        features.accuracy(m, both, labels[:k["twin_n"]])
    jones2022.data_cka_matrix(twin, both)
    inv = jones2022.inverted_cka_matrix(
        twin, both[ts], both[tt], **{**invert_kw, "seed_labels": labels[ts],
                                     "target_labels": labels[tt],
                                     "iterations": k["twin_iterations"]})
    jones2022.prediction_table(twin, inv.inverted, labels[ts], labels[tt])
    jones2022.representations(twin, both)
    for name, m in twin.items():  # each cue model on its own variant's test images
        if jones2022.label_kind(name) in ("a-only", "b-only"):
            features.accuracy(m, images[:k["twin_n"]], labels[:k["twin_n"]])
    assert len(twin) == 5  # a-only and b-only at two seeds, both at one
    counted = pd.DataFrame({name: c.counts() for name, c in counters.items()},
                           index=["fwd", "fwd_bwd"]).T
    pd.testing.assert_frame_equal(counted.sort_index(), expected.sort_index(),
                                  check_dtype=False, check_names=False)


@pytest.mark.parametrize("transfer_mode", ["random", "least-likely"])
def test_notebook02_passes_equal_the_forwards_of_its_code_path(transfer_mode: str) -> None:
    """The attack suite (every mode) and both transfer matrices on two models that get every
    image right: forward-only passes exactly (they were a third of them), forward+backward at
    most the bound (C&W and EAD stop early)."""
    import copy

    from advlens import transfer
    from advlens.papers import su2018

    k = {"target_modes": ["least-likely", "random"], "n_images": 10, "search_tries": 3,
         "ifgsm_steps": 4, "cw_binary_steps": 2, "cw_steps": 5, "ead_binary_steps": 2,
         "ead_steps": 6, "transfer_steps": 7, "transfer_target_mode": transfer_mode}
    model = _tiny(10, 0)
    data = _images(model, k["n_images"], 1)
    models = {"a": model, "b": copy.deepcopy(model)}
    counters = {name: _counted(m) for name, m in models.items()}
    su2018.attack_suite(models, data.images, data.labels,
                        settings=su2018.SuiteSettings.from_knobs(k),
                        target_modes=k["target_modes"], generator=torch.Generator().manual_seed(0),
                        n_boot=10, progress=False)
    attack = transfer.ifgsm(eps=0.1, steps=k["transfer_steps"])
    transfer.transfer_matrix(models, data.images, data.labels, attack=attack)
    transfer.transfer_matrix(models, data.images, data.labels, attack=attack,
                             targeted=transfer_mode, generator=torch.Generator().manual_seed(0))
    config = ModelConfig("resnet18", source="robustness", dataset="imagenet", epochs=0,
                         checkpoint="a")
    passes = cost.notebook_passes({"02": k}, [config, config.replace(checkpoint="b")])
    for i, name in enumerate(models):
        fwd, fwd_bwd = passes[passes["config"].map(lambda c, i=i: c.checkpoint == "ab"[i])][
            ["fwd", "fwd_bwd"]].sum()
        assert counters[name].fwd == fwd, name
        assert counters[name].fwd_bwd <= fwd_bwd, name


def test_notebook00_passes_equal_the_forwards_of_the_zoo_evaluation(tmp_path, monkeypatch) -> None:
    """A published model's evaluation as the zoo runs it (clean accuracy, then the robust
    check) on images it classifies right and the attack cannot break (the upper bound), and
    its top-1 accuracy on every image of the validation folder (read in batches)."""
    from advlens.zoo import paper
    from advlens.zoo.evaluation import RobustEval, clean_accuracy, robust_accuracy
    from paper_fixtures import write_imagefolder

    model = _tiny(10, 0)
    data = _images(model, 9, 1)
    counter = _counted(model)
    with torch.no_grad():
        clean_accuracy(model, data)
    robust_accuracy(model, data, RobustEval(eps=1e-6, n=9), batch_size=4)
    monkeypatch.setitem(paper.PAPER_ARCHS, "resnet18",
                        paper.PaperArch("resnet", "robustness", input_size=8))
    monkeypatch.setenv("ADVLENS_IMAGENET", str(write_imagefolder(tmp_path, 3, 5, side=12)))
    assert paper.eval_accuracy(model, "resnet18", batch_size=4)[1] == 15
    config = ModelConfig("resnet18", source="robustness", dataset="imagenet", epochs=0,
                         checkpoint="a")
    passes = cost.notebook_passes({"00": {"robust_eval_n": 9}}, [config], val_images=15)
    assert counter.counts() == (int(passes["fwd"].sum()), int(passes["fwd_bwd"].sum()))
    # the paper preset: the 50,000 ILSVRC2012 validation images per published model
    default = cost.notebook_passes({"00": {"robust_eval_n": 9}}, [config])
    assert int(default["fwd"].sum()) == 4 * 9 + 50_000


@pytest.mark.parametrize("regime", ["standard", "harmonized"])
def test_training_passes_equal_the_forwards_of_zoo_training(regime: str, tmp_path,
                                                           monkeypatch) -> None:
    from advlens import zoo
    from advlens.zoo import training
    from advlens.zoo.architectures import build_model

    counter = _Counter()

    def counted_model(*args, **kwargs):
        model = build_model(*args, **kwargs)
        _counted(model, counter)
        return model

    monkeypatch.setattr(training, "build_model", counted_model)
    harmonized = {"harmonizer_weight": 1.0, "importance_map": "shape"}
    config = ModelConfig("mlp-s", dataset="twin-cue", variant="both", n_train=12, n_test=6,
                         epochs=2, batch_size=4, regime=regime,
                         **(harmonized if regime == "harmonized" else {}))
    zoo.load(config, tmp_path, progress=False)
    assert (counter.fwd, counter.fwd_bwd, counter.train) == cost.trained_passes(config)


def test_training_step_flops_are_measured_not_assumed() -> None:
    from advlens.zoo.architectures import build_model

    config = ModelConfig("mlp-s", dataset="twin-cue", variant="both")
    forward, backward = cost.pass_flops(build_model("mlp-s", "twin-cue"), 32)
    plain = cost.train_step_flops(config)
    # backward into the weights of every layer and into the inputs of all but the first
    assert forward + backward < plain < 3 * forward
    harmonized = cost.train_step_flops(config.replace(regime="harmonized", harmonizer_weight=1.0,
                                                      importance_map="shape"))
    assert harmonized > plain + backward  # the saliency pass, and the backward through it


def test_pass_flops_leave_the_model_and_the_random_state_alone() -> None:
    """It left a caller's train-mode model in eval mode with every parameter frozen, and the
    global RNG advanced by its random image."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(),
                          nn.Dropout(0.5), nn.Linear(256, 5)).train()
    model[1].eval()
    model[4].bias.requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    assert cost.pass_flops(model, 8)[0] == 2 * 3 * 4 * 9 * 64 + 2 * 256 * 5
    assert torch.equal(torch.rand(3), expected)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
