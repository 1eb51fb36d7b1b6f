"""advlens.transfer.transfer_matrix on toy models with known transfer behaviour."""

from __future__ import annotations

import copy

import pytest
import torch

from advlens.transfer import ifgsm, transfer_heatmap, transfer_matrix
from attack_toys import affine_model, centre_images


class _Flip(torch.nn.Module):
    """Reverses the logits' class order of a base model (a model that disagrees everywhere)."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x).flip(1)


def _setup() -> tuple[dict[str, torch.nn.Module], torch.Tensor, torch.Tensor]:
    a = affine_model(k=8, seed=1)
    x = centre_images(30, spread=0.3)
    with torch.no_grad():
        y = a(x).argmax(1)
    b = copy.deepcopy(a)  # a related model: mostly agrees with a, not everywhere
    with torch.no_grad():
        b[1].weight.add_(affine_model(k=8, seed=9)[1].weight * 0.5)
    models = {"a": a, "a-copy": copy.deepcopy(a), "b": b}
    return models, x, y


def test_identical_models_transfer_fully_and_skip_rule_is_honoured() -> None:
    models, x, y = _setup()
    table = transfer_matrix(models, x, y, attack=ifgsm(eps=0.3, steps=10))
    t = table.set_index(["source", "target"])
    assert len(table) == 9  # every ordered pair, diagonal included
    assert t.loc[("a", "a"), "success"] == 1.0
    assert t.loc[("a", "a-copy"), "success"] == 1.0
    assert t.loc[("a-copy", "a"), "success"] == 1.0
    # skip rule: b is evaluated only on the images it classifies correctly
    with torch.no_grad():
        b_correct = int((models["b"](x).argmax(1) == y).sum())
    assert t.loc[("a", "b"), "n"] <= b_correct < len(x)
    assert t.loc[("b", "a"), "n"] <= len(x)
    # independent recomputation of one off-diagonal cell
    from advlens import attacks

    r = attacks.pgd(models["a"], x, y, eps=0.3, norm="linf", steps=10, step_size=0.03)
    with torch.no_grad():
        keep = (models["b"](x).argmax(1) == y) & r.success
        rate = float((models["b"](r.adv[keep]).argmax(1) != y[keep]).float().mean())
    assert t.loc[("a", "b"), "n"] == int(keep.sum())
    assert t.loc[("a", "b"), "success"] == pytest.approx(rate)
    m = transfer_heatmap(table, order=["b", "a", "a-copy"])
    assert list(m.index) == ["b", "a", "a-copy"] and m.loc["a", "a-copy"] == 1.0


def test_targeted_top1_and_top5() -> None:
    models, x, y = _setup()
    table = transfer_matrix(models, x, y, attack=ifgsm(eps=0.5, steps=20), targeted="random",
                            generator=torch.Generator().manual_seed(0))
    t = table.set_index(["source", "target"])
    assert t.loc[("a", "a-copy"), "success"] == 1.0
    assert (table["top5"] >= table["success"]).all()
    assert table["n"].gt(0).all()
    # independent top-5 recomputation for one pair
    from advlens import attacks

    targets = attacks.choose_targets(models["a"], x, y, "random",
                                     torch.Generator().manual_seed(0))
    r = attacks.pgd(models["b"], x, y, targets=targets, eps=0.5, norm="linf", steps=20,
                    step_size=0.025)
    with torch.no_grad():  # the source b attacks only the images it classifies correctly
        keep = (models["a"](x).argmax(1) == y) & (models["b"](x).argmax(1) == y) & r.success
        top5 = (models["a"](r.adv[keep]).topk(5, 1).indices == targets[keep, None]).any(1)
    assert t.loc[("b", "a"), "n"] == int(keep.sum())
    assert t.loc[("b", "a"), "top5"] == pytest.approx(float(top5.float().mean()))
    with pytest.raises(ValueError, match="targeted"):
        transfer_matrix(models, x, y, targeted="nearest")


def test_a_model_that_never_agrees_is_skipped_entirely() -> None:
    models, x, y = _setup()
    models = {"a": models["a"], "flip": _Flip(models["a"])}
    table = transfer_matrix(models, x, y, attack=ifgsm(eps=0.3, steps=5)).set_index(
        ["source", "target"])
    with torch.no_grad():
        flip_correct = int((models["flip"](x).argmax(1) == y).sum())
    assert table.loc[("a", "flip"), "n"] <= flip_correct


def test_a_source_attacks_only_the_images_it_classifies_correctly() -> None:
    """An image the source already gets wrong is not an adversarial example of it (untargeted
    I-FGSM "succeeds" there without moving): Su et al. attack correctly classified images only."""
    models, x, y = _setup()
    with torch.no_grad():
        b_correct = models["b"](x).argmax(1) == y
    assert 0 < int(b_correct.sum()) < len(x)
    seen: list[int] = []

    def counting(model: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor, **kw: object):
        seen.append(len(xs))
        return ifgsm(eps=0.0001, steps=1)(model, xs, ys, **kw)

    table = transfer_matrix({"b": models["b"], "a": models["a"]}, x, y,
                            attack=counting).set_index(["source", "target"])
    assert seen == [int(b_correct.sum()), len(x)]  # b attacks its correct images only
    # a step of 1e-4 fools b on none of them: the images it got wrong no longer count as fooled
    assert table.loc[("b", "b"), "n"] == 0 and table.loc[("b", "a"), "n"] == 0
    never = transfer_matrix({"a": models["a"], "flip": _Flip(models["a"])}, x, y,
                            attack=ifgsm(eps=0.3, steps=5)).set_index(["source", "target"])
    assert (never.loc["flip", "n"] == 0).all() and never.loc["flip", "success"].isna().all()


@pytest.mark.parametrize("mode", ["top-2", "least-likely", "random"])
def test_a_source_with_no_correct_image_in_every_targeted_mode(mode: str) -> None:
    """Its rows are NaN with n = 0 (top-2 / least-likely chose targets on its empty image set
    first and failed on the empty batch)."""
    models, x, y = _setup()
    table = transfer_matrix({"a": models["a"], "flip": _Flip(models["a"])}, x, y,
                            attack=ifgsm(eps=0.3, steps=5), targeted=mode,
                            generator=torch.Generator().manual_seed(0)).set_index("source")
    assert (table.loc["flip", "n"] == 0).all()
    assert table.loc["flip", ["success", "top5"]].isna().all().all()
    assert table.loc["a", "n"].iloc[0] > 0
