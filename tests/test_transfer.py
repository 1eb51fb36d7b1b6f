"""advlens.transfer.transfer_matrix on toy models with known transfer behaviour."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from advlens.attacks.result import AttackResult
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


def test_every_example_is_evaluated_without_the_source_filter() -> None:
    """``only_successful=False`` (Su et al.'s transfer code: it evaluates every saved example,
    fooled the source or not) keeps every image both models classify correctly."""
    models, x, y = _setup()
    models = {"a": models["a"], "b": models["b"]}
    eps = 0.02  # weak enough that some of a's examples fail on a
    table = transfer_matrix(models, x, y, attack=ifgsm(eps=eps, steps=5),
                            only_successful=False).set_index(["source", "target"])
    from advlens import attacks

    with torch.no_grad():
        a_ok, b_ok = (models["a"](x).argmax(1) == y), (models["b"](x).argmax(1) == y)
    r = attacks.pgd(models["a"], x[a_ok], y[a_ok], eps=eps, norm="linf", steps=5,
                    step_size=eps / 5)
    assert not bool(r.success.all())  # else the filter would not matter here
    keep = b_ok[a_ok]
    with torch.no_grad():
        rate = float((models["b"](r.adv[keep]).argmax(1) != y[a_ok][keep]).double().mean())
    assert table.loc[("a", "b"), "n"] == int(keep.sum())
    assert table.loc[("a", "b"), "success"] == pytest.approx(rate)
    filtered = transfer_matrix(models, x, y, attack=ifgsm(eps=eps, steps=5),
                               only_successful=True).set_index(["source", "target"])
    assert filtered.loc[("a", "b"), "n"] < table.loc[("a", "b"), "n"]
    # the protocol's rule (only images the target gets wrong clean are skipped) is the default
    default = transfer_matrix(models, x, y, attack=ifgsm(eps=eps, steps=5)).set_index(
        ["source", "target"])
    pd.testing.assert_frame_equal(default, table)


def test_the_diagonal_is_the_white_box_rate() -> None:
    """Source = target reads the white-box success rate over the source's correctly classified
    images; the only_successful filter (the off-diagonal rule) made it 1 by construction."""
    models, x, y = _setup()
    models = {"a": models["a"], "b": models["b"]}
    eps = 0.02  # weak enough that some images survive
    table = transfer_matrix(models, x, y, attack=ifgsm(eps=eps, steps=5),
                            only_successful=True).set_index(["source", "target"])
    from advlens import attacks

    for name, model in models.items():
        with torch.no_grad():
            ok = model(x).argmax(1) == y
        r = attacks.pgd(model, x[ok], y[ok], eps=eps, norm="linf", steps=5, step_size=eps / 5)
        with torch.no_grad():
            fooled = (model(r.adv).argmax(1) != y[ok]).double()
        assert 0.0 < float(fooled.mean()) < 1.0  # the check needs a rate strictly inside (0, 1)
        assert table.loc[(name, name), "n"] == int(ok.sum())
        assert table.loc[(name, name), "success"] == pytest.approx(float(fooled.mean()))


def test_ifgsm_takes_a_step_count_and_names_a_bad_one() -> None:
    """steps=0 failed as a bare "float division by zero" when the attack was made; the step is
    eps/steps by definition (Su et al.'s I-FGSM)."""
    for bad in (0, 2.5, "5"):
        with pytest.raises(ValueError, match=f"steps must be an int >= 1; got {bad!r}"):
            ifgsm(eps=0.1, steps=bad)
    attack = ifgsm(eps=0.3, steps=np.int64(4))
    assert attack.keywords["steps"] == 4 and attack.keywords["step_size"] == pytest.approx(0.075)


def test_heatmap_order_must_name_each_model_once() -> None:
    """A model listed twice (in two family groups) would give the matrix a duplicated row and
    column without a word; it is refused like a missing one."""
    models, x, y = _setup()
    table = transfer_matrix(models, x, y, attack=ifgsm(eps=0.3, steps=2))
    with pytest.raises(ValueError, match=r"each model once; repeated: \['a'\]"):
        transfer_heatmap(table, order=["a", "b", "a", "a-copy"])
    with pytest.raises(ValueError, match=r"mismatch: \['a-copy'\]"):
        transfer_heatmap(table, order=["a", "b"])
    assert transfer_heatmap(table, order=["a-copy", "b", "a"]).shape == (3, 3)

def test_heatmap_rows_are_sources_and_columns_targets() -> None:
    """An asymmetric table written by hand: cell (row a, column b) is a's examples on b."""
    table = pd.DataFrame({"source": ["a", "a", "b", "b"], "target": ["a", "b", "a", "b"],
                          "success": [1.0, 0.25, 0.75, 0.5], "n": [4, 3, 2, 1]})
    m = transfer_heatmap(table)
    assert m.index.name == "source" and m.columns.name == "target"
    assert (m.loc["a", "b"], m.loc["b", "a"]) == (0.25, 0.75)
    n = transfer_heatmap(table, "n", order=["b", "a"])
    assert n.to_numpy().tolist() == [[1, 2], [3, 4]]


def test_targeted_top1_and_top5() -> None:
    models, x, y = _setup()
    table = transfer_matrix(models, x, y, attack=ifgsm(eps=0.5, steps=20), targeted="random",
                            generator=torch.Generator().manual_seed(0))
    t = table.set_index(["source", "target"])
    # every example of a reaches its copy (fooled a or not): the copy reads a's white-box rate
    assert t.loc[("a", "a-copy"), "success"] == t.loc[("a", "a"), "success"]
    assert (table["top5"] >= table["success"]).all()
    assert table["n"].gt(0).all()
    # independent top-5 recomputation for one pair
    from advlens import attacks

    targets = attacks.choose_targets(models["a"], x, y, "random",
                                     torch.Generator().manual_seed(0))
    r = attacks.pgd(models["b"], x, y, targets=targets, eps=0.5, norm="linf", steps=20,
                    step_size=0.025)
    with torch.no_grad():  # the source b attacks only the images it classifies correctly
        keep = (models["a"](x).argmax(1) == y) & (models["b"](x).argmax(1) == y)
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

    table = transfer_matrix({"b": models["b"], "a": models["a"]}, x, y, attack=counting,
                            only_successful=True).set_index(["source", "target"])
    assert seen == [int(b_correct.sum()), len(x)]  # b attacks its correct images only
    # a step of 1e-4 fools b on none of them: the images it got wrong no longer count as fooled
    assert table.loc[("b", "b"), "n"] == int(b_correct.sum())
    assert table.loc[("b", "b"), "success"] == 0.0 and table.loc[("b", "a"), "n"] == 0
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


def _unmoved(model: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor,
             targets: torch.Tensor | None = None, **kw: object) -> AttackResult:
    """An 'attack' that returns the images as they are and calls every one a success, so each
    target model is read on clean images at known logits."""
    n = xs.shape[0]
    return AttackResult(xs.clone(), torch.zeros(n, dtype=xs.dtype), torch.ones(n, dtype=torch.bool),
                        passes=0, norm="linf", targets=targets)


def _random_targets_unmoved(n: int | None = None) -> tuple:
    """Models a and b of :func:`_setup` on its first ``n`` images (all: None), the transfer
    table of unmoved "examples" with random targets, those targets and each model's logits."""
    from advlens import attacks

    models, x, y = _setup()
    models = {"a": models["a"], "b": models["b"]}
    x, y = x[:n], y[:n]
    table = transfer_matrix(models, x, y, attack=_unmoved, targeted="random",
                            generator=torch.Generator().manual_seed(0)).set_index(
                                ["source", "target"])
    targets = attacks.choose_targets(models["a"], x, y, "random",
                                     torch.Generator().manual_seed(0)).numpy()
    with torch.no_grad():
        logits = {name: m(x).numpy() for name, m in models.items()}
    return models, x, y, table, targets, logits


def test_targeted_top5_is_the_share_of_targets_among_the_five_largest_logits() -> None:
    """With 8 classes the target is among the top 5 of some images only; the rate equals a numpy
    argsort count on the target model's logits (a top-k over every class read 1.0)."""
    models, x, y, table, targets, logits = _random_targets_unmoved()
    correct = {name: z.argmax(1) == y.numpy() for name, z in logits.items()}
    for source in models:
        for target in models:
            keep = correct[source] & correct[target]
            top5 = np.argsort(-logits[target][keep], axis=1)[:, :5]
            expected = (top5 == targets[keep, None]).any(1).mean()
            assert table.loc[(source, target), "n"] == int(keep.sum())
            assert table.loc[(source, target), "top5"] == pytest.approx(expected, rel=1e-15)
            assert table.loc[(source, target), "success"] == 0.0  # argmax = y, not the target
            assert 0.0 < expected < 1.0


def test_a_pair_evaluated_on_one_image_has_a_rate_not_nan() -> None:
    """One image the attack fools: the white-box rate is 1.0 with n = 1 (an empty-set check on
    the wrong count would make it NaN), untargeted and targeted alike."""
    models, x, y = _setup()
    one = {"a": models["a"]}
    for targeted in (False, "top-2"):
        table = transfer_matrix(one, x[:1], y[:1], attack=ifgsm(eps=0.5, steps=20),
                                targeted=targeted)
        assert table["n"].tolist() == [1] and table["success"].tolist() == [1.0]


def test_targeted_true_is_the_random_mode() -> None:
    """``targeted=True`` means random targets (drawn with ``generator``), the same table as
    ``targeted="random"`` with the same seed."""
    models, x, y = _setup()
    tables = [transfer_matrix(models, x, y, attack=_unmoved, targeted=mode,
                              generator=torch.Generator().manual_seed(3))
              for mode in (True, "random")]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert "top5" in tables[0]


def test_models_of_other_input_sides_see_images_and_examples_resampled() -> None:
    """With ``sides``, each model classifies the images, and crafts and receives examples, at
    its own side (advlens.resample): the pair's rate equals evaluating the resampled examples
    by hand."""
    from advlens.resample import images_to_side
    from attack_toys import SideOnly

    small = SideOnly(4, seed=3)
    big = SideOnly.seen_through(small, 6)
    x = centre_images(20, spread=0.3)
    with torch.no_grad():
        y = small(x).argmax(1)
    attack = ifgsm(eps=0.2, steps=5)
    table = transfer_matrix({"small": small, "big": big}, x, y, attack=attack,
                            sides={"big": 6}, only_successful=True).set_index(
                                ["source", "target"])
    with torch.no_grad():
        big_right = big(images_to_side(x, 6)).argmax(1) == y
        adv = attack(small, x, y).adv  # small is right on every image
        fooled_small = small(adv).argmax(1) != y
        keep = big_right & fooled_small
        rate = (big(images_to_side(adv, 6)).argmax(1)[keep] != y[keep]).double().mean()
    assert table.loc[("small", "big"), "n"] == int(keep.sum()) > 0
    assert table.loc[("small", "big"), "success"] == pytest.approx(float(rate))
    assert table.loc[("big", "big"), "n"] == int(big_right.sum())
    with pytest.raises(AssertionError, match="fed"):
        transfer_matrix({"small": small, "big": big}, x, y, attack=attack)


def test_top5_of_fewer_images_than_five_ranks_each_targets_among_all_classes() -> None:
    """On 2 images the target's rank is still among the target model's 8 classes: the top-5
    rate of the pair equals a numpy argsort count (a top-k capped by the number of images, not
    of classes, passed every test with 5 or more images)."""
    models, x, y, table, targets, logits = _random_targets_unmoved(3)
    keep = (logits["a"].argmax(1) == y.numpy()) & (logits["b"].argmax(1) == y.numpy())
    rank = (logits["b"][keep] > logits["b"][keep][np.arange(keep.sum()), targets[keep],
                                                  None]).sum(1)
    assert keep.sum() < 5 and (rank >= keep.sum()).any() and (rank < 5).any()  # the case
    top5 = np.argsort(-logits["b"][keep], axis=1)[:, :5]
    assert table.loc[("a", "b"), "n"] == int(keep.sum())
    assert table.loc[("a", "b"), "top5"] == pytest.approx((top5 == targets[keep, None]).any(1)
                                                          .mean(), rel=1e-15)


def test_labels_are_checked_and_taken_as_a_list_too() -> None:
    """y as a list of ints gives the table of y as a tensor; a y of the wrong length and an
    empty set of models are named (not an empty table, or a comparison error)."""
    models, x, y = _setup()
    models = {"a": models["a"], "b": models["b"]}
    attack = ifgsm(eps=0.3, steps=2)
    pd.testing.assert_frame_equal(transfer_matrix(models, x, y.tolist(), attack=attack),
                                  transfer_matrix(models, x, y, attack=attack))
    with pytest.raises(ValueError, match=r"y must have shape \(30,\); got \(29,\)"):
        transfer_matrix(models, x, y[:-1], attack=attack)
    with pytest.raises(ValueError, match="transfer_matrix needs at least one model"):
        transfer_matrix({}, x, y, attack=attack)
