"""Liang et al.'s α₁ / α₂ / combined (advlens.transfer) against float64 numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlens import attacks
from advlens.transfer import (
    Perturbations,
    alpha1,
    alpha1_from_changes,
    alpha2,
    alpha2_from_changes,
    alpha_combined,
    alpha_combined_from_changes,
    alpha_table,
    liang_fgsm,
    liang_pgd,
)
from attack_toys import affine_model, centre_images


def _numpy_logits(model: torch.nn.Sequential, x: torch.Tensor) -> np.ndarray:
    w = model[1].weight.detach().numpy().astype(np.float64)
    b = model[1].bias.detach().numpy().astype(np.float64)
    return x.detach().numpy().reshape(len(x), -1).astype(np.float64) @ w.T + b


def _unit(d: np.ndarray) -> np.ndarray:
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _attack() -> attacks.AttackResult:
    return liang_pgd(eps=0.1, steps=10, generator=torch.Generator().manual_seed(0))


def _fgsm_delta(model: torch.nn.Sequential, x: torch.Tensor, eps: float) -> np.ndarray:
    """FGSM of an affine model in closed form: eps·sign(Wᵀ(softmax(z) − onehot(argmax z))), the
    cross-entropy's input gradient at the model's own prediction (float64 numpy)."""
    z = _numpy_logits(model, x)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(z)), z.argmax(1)] -= 1
    return eps * np.sign(p @ model[1].weight.detach().numpy())


def test_alpha1_of_two_affine_models_matches_the_closed_form() -> None:
    """α₁(x) = ‖W_T δ_S(x)‖ / ‖W_T δ_T(x)‖ for affine models (the box is never reached), with
    each δ an FGSM step computed here from the formula; and α₁(S, S) = 1."""
    s, t = affine_model(k=6, seed=1), affine_model(k=4, seed=2)
    x = centre_images(30, spread=0.3)
    w_t = t[1].weight.detach().numpy()
    d_s, d_t = _fgsm_delta(s, x, 0.1), _fgsm_delta(t, x, 0.1)
    expected = np.linalg.norm(d_s @ w_t.T, axis=1) / np.linalg.norm(d_t @ w_t.T, axis=1)
    got = alpha1(s, t, x, attack=liang_fgsm(0.1), per_sample=True)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    assert alpha1(s, t, x, attack=liang_fgsm(0.1)) == pytest.approx(expected.mean(), rel=1e-10)
    assert not np.allclose(expected, 1.0)
    assert alpha1(s, s, x, attack=liang_fgsm(0.1)) == pytest.approx(1.0, abs=1e-12)


def test_alpha2_and_combined_of_two_models_match_the_closed_form() -> None:
    """alpha2 / alpha_combined on two affine models (K_S != K_T): S's FGSM step δ_S moves S's
    logits by W_S δ_S and T's by W_T δ_S (T's own step only enters α₁), in float64 numpy."""
    s, t = affine_model(k=6, seed=1), affine_model(k=4, seed=2)
    x = centre_images(30, spread=0.3)
    w_s, w_t = s[1].weight.detach().numpy(), t[1].weight.detach().numpy()
    d_s, d_t = _fgsm_delta(s, x, 0.1), _fgsm_delta(t, x, 0.1)
    u, v = _unit(d_s @ w_s.T), _unit(d_s @ w_t.T)
    expected = np.linalg.norm(u.T @ v / len(x), "fro")
    assert alpha2(s, t, x, attack=liang_fgsm(0.1)) == pytest.approx(expected, rel=1e-10)
    ratio = np.linalg.norm(d_s @ w_t.T, axis=1) / np.linalg.norm(d_t @ w_t.T, axis=1)
    combined = np.linalg.norm((u * ratio[:, None]).T @ v / len(x), "fro")
    assert alpha_combined(s, t, x, attack=liang_fgsm(0.1)) == pytest.approx(combined, rel=1e-10)
    assert alpha_combined(s, t, x, attack=liang_fgsm(0.1), squared=True) == pytest.approx(
        combined**2, rel=1e-10)


def test_alpha2_matches_a_float64_numpy_computation_and_lies_in_unit_interval() -> None:
    s, t = affine_model(k=6, seed=1), affine_model(k=4, seed=2)  # K_S != K_T on purpose
    x = centre_images(40, spread=0.3)
    p = Perturbations({"s": s, "t": t}, x, attack=_attack())
    adv_s, adv_t = p.adversarial("s").double(), p.adversarial("t").double()
    d_ss = _numpy_logits(s, adv_s) - _numpy_logits(s, x)
    d_st = _numpy_logits(t, adv_s) - _numpy_logits(t, x)
    d_tt = _numpy_logits(t, adv_t) - _numpy_logits(t, x)
    outer = np.einsum("ni,nj->ij", _unit(d_ss), _unit(d_st)) / len(x)
    expected = np.linalg.norm(outer, "fro")
    got = alpha2_from_changes(p.change("s", "s"), p.change("s", "t"))
    assert got == pytest.approx(expected, rel=1e-10)
    assert 0.0 <= got <= 1.0
    squared = alpha2_from_changes(p.change("s", "s"), p.change("s", "t"), squared=True)
    assert squared == pytest.approx(expected**2, rel=1e-10)
    # α₁ and the combined number against the same numpy logits
    ratio = np.linalg.norm(d_st, axis=1) / np.linalg.norm(d_tt, axis=1)
    table = alpha_table(p, [("s", "t")]).iloc[0]
    assert table["alpha1"] == pytest.approx(ratio.mean(), rel=1e-10)
    weighted = np.einsum("n,ni,nj->ij", ratio, _unit(d_ss), _unit(d_st)) / len(x)
    assert table["combined"] == pytest.approx(np.linalg.norm(weighted, "fro"), rel=1e-10)
    assert table["alpha2"] == pytest.approx(expected, rel=1e-10)
    # squared=True squares α₂ and the combined number alike (their image code), never α₁
    table2 = alpha_table(p, [("s", "t")], squared=True).iloc[0]
    assert table2["alpha1"] == table["alpha1"]
    assert table2["alpha2"] == pytest.approx(expected**2, rel=1e-10)
    assert table2["combined"] == pytest.approx(np.linalg.norm(weighted, "fro") ** 2, rel=1e-10)


def test_alpha2_of_a_model_with_itself_is_the_norm_of_its_mean_outer_product() -> None:
    s = affine_model(k=5, seed=4)
    x = centre_images(30, spread=0.3)
    p = Perturbations({"s": s}, x, attack=_attack())
    u = _unit(_numpy_logits(s, p.adversarial("s").double()) - _numpy_logits(s, x))
    expected = np.linalg.norm(u.T @ u / len(x), "fro")
    got = alpha2(s, s, x, attack=_attack())
    assert got == pytest.approx(expected, rel=1e-10)
    # with α₁(x) = 1 everywhere the combined number is α₂ itself
    assert alpha_combined(s, s, x, attack=_attack()) == pytest.approx(expected, rel=1e-10)


def test_alpha2_bounds_are_reached() -> None:
    # every image moves both models along one direction: α₂ = 1; opposite halves: α₂ = 0
    d = torch.zeros(10, 3, dtype=torch.float64)
    d[:, 0] = torch.linspace(1, 2, 10)
    assert alpha2_from_changes(d, 3 * d) == pytest.approx(1.0)
    sign = torch.tensor([1.0, -1.0] * 5, dtype=torch.float64)[:, None]
    assert alpha2_from_changes(d, d * sign) == pytest.approx(0.0, abs=1e-15)


def test_each_model_is_attacked_once_for_all_pairs() -> None:
    models = {"a": affine_model(k=4, seed=1), "b": affine_model(k=4, seed=2),
              "c": affine_model(k=4, seed=3)}
    x = centre_images(16, spread=0.3)
    calls: dict[int, int] = {}
    inner = _attack()

    def counting(model: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor,
                 **kw: object) -> attacks.AttackResult:
        calls[id(model)] = calls.get(id(model), 0) + 1
        return inner(model, xs, ys, **kw)

    p = Perturbations(models, x, attack=counting, batch_size=1000)
    pairs = [(s, t) for s in models for t in models]
    table = alpha_table(p, pairs)
    table2 = alpha_table(p, pairs)  # asking again attacks nothing
    assert len(table) == 9 and table.equals(table2)
    assert sorted(calls.values()) == [1, 1, 1] and set(calls) == {id(m) for m in models.values()}
    assert p.attacked == {"a": 1, "b": 1, "c": 1}
    diag = table[table.source == table.target]
    assert np.allclose(diag["alpha1"], 1.0)


def test_alpha_table_checks_its_arguments_before_attacking() -> None:
    """A misspelt model name or a non-bool ``squared`` is refused before any model is attacked
    (they were found after the source's attack, which on real models takes minutes)."""
    models = {"a": affine_model(k=4, seed=1), "b": affine_model(k=4, seed=2)}
    calls: list[int] = []

    def counting(model: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor,
                 **kw: object) -> attacks.AttackResult:
        calls.append(id(model))
        return liang_fgsm(0.1)(model, xs, ys, **kw)

    p = Perturbations(models, centre_images(8, spread=0.3), attack=counting)
    with pytest.raises(KeyError, match="no model named 'c'"):
        alpha_table(p, [("a", "b"), ("a", "c")])
    with pytest.raises(TypeError, match="squared must be True or False"):
        alpha_table(p, [("a", "b")], squared="no")
    with pytest.raises(ValueError, match="pairs must be"):
        alpha_table(p, [("a", "b", "a")])
    assert calls == [] and p.attacked == {"a": 0, "b": 0}
    assert len(alpha_table(p, [("a", "b")])) == 1 and p.attacked == {"a": 1, "b": 1}

def test_pairs_given_as_an_iterator_are_all_computed() -> None:
    """A zip of sources and a target (an iterator) gives a row per pair, each the float64 numpy
    α₁ of the pair — the argument check used to consume it and return an empty table."""
    models = {"a": affine_model(k=4, seed=1), "b": affine_model(k=4, seed=2),
              "ref": affine_model(k=4, seed=3)}
    x = centre_images(16, spread=0.3)
    p = Perturbations(models, x, attack=_attack())
    table = alpha_table(p, zip(["a", "b"], ["ref", "ref"], strict=True))
    assert list(table["source"]) == ["a", "b"] and list(table["target"]) == ["ref", "ref"]
    ref = models["ref"]
    d_tt = _numpy_logits(ref, p.adversarial("ref").double()) - _numpy_logits(ref, x)
    for row in table.itertuples():
        d_st = _numpy_logits(ref, p.adversarial(row.source).double()) - _numpy_logits(ref, x)
        expected = np.mean(np.linalg.norm(d_st, axis=1) / np.linalg.norm(d_tt, axis=1))
        assert row.alpha1 == pytest.approx(expected, rel=1e-10)


def test_pairs_average_over_images_the_target_classifies_correctly() -> None:
    s, t = affine_model(k=4, seed=1), affine_model(k=4, seed=1)
    with torch.no_grad():  # a related target: agrees with the source on some images only
        t[1].weight.add_(affine_model(k=4, seed=9)[1].weight)
    x = centre_images(40, spread=0.3)
    y = s(x).argmax(1)
    p = Perturbations({"s": s, "t": t}, x, attack=_attack())
    row = alpha_table(p, [("s", "t")], y=y).iloc[0]
    keep = t(x).argmax(1) == y
    assert 0 < row["n"] == int(keep.sum()) < len(x)
    expected = alpha1_from_changes(p.change("s", "t")[keep], p.change("t", "t")[keep])
    assert row["alpha1"] == pytest.approx(expected)


def test_a_pair_whose_target_gets_no_image_right_reads_nan_and_the_others_are_kept() -> None:
    """With labels, a target that classifies no image correctly has nothing to average: its
    pair reads n = 0 and NaN (as transfer_matrix's), without attacking it, and the table's
    other pairs are still computed (one such pair aborted the whole table, every attack run).
    The kept pair is checked against the FGSM closed form in float64 numpy."""
    s, t = affine_model(k=4, seed=1), affine_model(k=4, seed=1)
    with torch.no_grad():  # a related target: agrees with the source on some images only
        t[1].weight.add_(affine_model(k=4, seed=9)[1].weight * 0.5)
    x = centre_images(20, spread=0.3)
    y = s(x).argmax(1)
    blind = affine_model(k=4, seed=3)
    with torch.no_grad():  # predicts, for every image, a class no label has
        blind[1].weight.zero_()
        blind[1].bias.zero_()
        blind[1].bias[next(c for c in range(4) if not (y == c).any())] = 1.0
    p = Perturbations({"s": s, "t": t, "blind": blind}, x, attack=liang_fgsm(0.1))
    table = alpha_table(p, [("s", "blind"), ("s", "t")], y=y).set_index("target")
    assert table.loc["blind", "n"] == 0
    assert table.loc["blind", ["alpha1", "alpha2", "combined"]].isna().all()
    assert p.attacked["blind"] == 0
    keep = (t(x).argmax(1) == y).numpy()
    assert 0 < table.loc["t", "n"] == keep.sum() < len(x)
    w_t = t[1].weight.detach().numpy()
    d_s, d_t = _fgsm_delta(s, x, 0.1)[keep], _fgsm_delta(t, x, 0.1)[keep]
    ratio = np.linalg.norm(d_s @ w_t.T, axis=1) / np.linalg.norm(d_t @ w_t.T, axis=1)
    assert table.loc["t", "alpha1"] == pytest.approx(ratio.mean(), rel=1e-10)
    u, v = _unit(d_s @ s[1].weight.detach().numpy().T), _unit(d_s @ w_t.T)
    assert table.loc["t", "alpha2"] == pytest.approx(
        np.linalg.norm(u.T @ v / keep.sum(), "fro"), rel=1e-10)


def test_attacks_follow_the_protocol() -> None:
    s = affine_model(k=4, seed=1)
    x = centre_images(12, spread=0.3)
    own = s(x).argmax(1)
    r = liang_pgd(generator=torch.Generator().manual_seed(0))(s, x, own)
    assert float((r.adv - x).abs().max()) <= 0.1 + 1e-12
    r2 = liang_pgd(generator=torch.Generator().manual_seed(1))(s, x, own)
    assert not torch.equal(r.adv, r2.adv)  # random start
    f = liang_fgsm(eps=0.05)(s, x, own)
    assert torch.allclose((f.adv - x).abs().amax((1, 2, 3)), torch.full((12,), 0.05,
                                                                      dtype=torch.float64))


def test_their_one_step_attack_is_one_pgd_step_of_eps_from_a_random_start() -> None:
    """Their attack.py with itr=1 (the cmd.sh "fgsm"): a uniform start in the eps-ball, one
    signed step of eps from there, clipped to the ball and the box — written out here in numpy
    from the same uniform draw; liang_fgsm (the protocol's FGSM, from x) differs from it."""
    s, eps = affine_model(k=4, seed=1), 0.1
    x = centre_images(12, spread=0.3)
    own = s(x).argmax(1)
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x_np = x.numpy()
    start = np.clip(x_np + (2 * u.numpy() - 1) * eps, 0, 1)
    z = _numpy_logits(s, torch.from_numpy(start))  # the gradient at the start, label = own
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(z)), own.numpy()] -= 1
    step = eps * np.sign(p @ s[1].weight.detach().numpy()).reshape(x.shape)
    theirs = np.clip(x_np + np.clip(start + step - x_np, -eps, eps), 0, 1)
    got = liang_pgd(eps, steps=1, step_fraction=1.0,
                    generator=torch.Generator().manual_seed(3))(s, x, own).adv
    np.testing.assert_allclose(got.numpy(), theirs, atol=1e-12)
    assert not np.allclose(liang_fgsm(eps)(s, x, own).adv.numpy(), theirs)


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="attack .* or attack_for"):
        Perturbations({"a": affine_model()}, centre_images(2), attack=_attack(),
                      attack_for=lambda name: _attack())
    d = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="unchanged on 1 image"):
        alpha1_from_changes(d, torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="N = 0"):
        alpha2_from_changes(d[:0], d[:0])
    with pytest.raises(ValueError, match="one N"):
        alpha2_from_changes(d, d[:2])
    with pytest.raises(KeyError, match="no model named"):
        Perturbations({"a": affine_model()}, centre_images(2)).adversarial("b")


def test_alpha1_counts_exactly_the_images_whose_own_change_is_zero() -> None:
    """Two zero rows of Δ_{T→T}, and no row of norm exactly 1: both are named (the ratio would
    be inf there), and a change of norm 1 is an ordinary denominator (α₁ = ‖Δ_{S→T}‖)."""
    d_st = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="unchanged on 2 image"):
        alpha1_from_changes(d_st, torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    unit = torch.tensor([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    got = alpha1_from_changes(d_st, unit, per_sample=True)
    torch.testing.assert_close(got, torch.tensor([5.0, 1.0, 2.0], dtype=torch.float64))


def test_alpha2_refuses_images_where_the_sources_own_attack_moved_nothing() -> None:
    """Δ_{S→S}(x) = 0 has no direction: counted as a zero matrix it scaled α₂ (and the combined
    number) down by the share of such images, silently (18 of 40: 0.991 → 0.545), while α₁
    refuses its own zero denominators. A target left unmoved (Δ_{S→T} = 0) still counts as no
    alignment."""
    d = torch.zeros(4, 3, dtype=torch.float64)
    d[:, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    moved = d.clone()
    moved[1] = 0.0
    with pytest.raises(ValueError, match="source's own attack left its logits unchanged on 1"):
        alpha2_from_changes(moved, d)
    with pytest.raises(ValueError, match="unchanged on 1"):
        alpha_combined_from_changes(moved, d, d)
    assert alpha2_from_changes(d, moved) == pytest.approx(0.75)


def test_alpha_table_refuses_labels_outside_a_targets_classes() -> None:
    """Labels of another label space (the reference's, passed for target → source pairs)
    compared unrelated classes or gave n = 0 and NaN without a word; they are named, with the
    target and its classes, before any attack."""
    models = {"a": affine_model(k=4, seed=1), "b": affine_model(k=3, seed=2)}
    x = centre_images(8, spread=0.3)
    p = Perturbations(models, x, attack=_attack())
    with pytest.raises(ValueError, match=r"class 3, but target 'b' has 3 classes \(0\.\.2\)"):
        alpha_table(p, [("a", "b")], y=torch.full((8,), 3))
    assert p.attacked == {"a": 0, "b": 0}
    assert len(alpha_table(p, [("b", "a")], y=torch.full((8,), 3))) == 1
    # a negative label dropped its images from the average without a word (review)
    y = torch.tensor([0, 1, 2, -1, 0, 1, 2, -1])
    p = Perturbations(models, x, attack=_attack())
    with pytest.raises(ValueError, match="y holds class -1; labels are class indices 0..2"):
        alpha_table(p, [("a", "b")], y=y)
    assert p.attacked == {"a": 0, "b": 0}


def test_float32_changes_are_taken_in_float64() -> None:
    """Logit changes given in float32 give α₁, α₂ and the combined number of their exact values
    in float64 (computed in float32 they were 1e-7 off; α₂ of mixed float32 / float64 changes
    failed in the matrix product), against float64 numpy; the default is unsquared."""
    g = torch.Generator().manual_seed(7)
    d_ss, d_st, d_tt = (torch.randn(50, k, generator=g) * 3 for k in (6, 4, 4))
    ss, st, tt = (d.numpy().astype(np.float64) for d in (d_ss, d_st, d_tt))
    ratio = np.linalg.norm(st, axis=1) / np.linalg.norm(tt, axis=1)
    got = alpha1_from_changes(d_st, d_tt, per_sample=True)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ratio, rtol=1e-13)
    assert alpha1_from_changes(d_st, d_tt) == pytest.approx(ratio.mean(), rel=1e-13)
    outer = _unit(ss).T @ _unit(st) / len(ss)
    weighted = (_unit(ss) * ratio[:, None]).T @ _unit(st) / len(ss)
    for a, b in ((d_ss, d_st), (d_ss, d_st.double()), (d_ss.double(), d_st)):
        assert alpha2_from_changes(a, b) == pytest.approx(np.linalg.norm(outer, "fro"),
                                                          rel=1e-13)
    assert alpha_combined_from_changes(d_ss, d_st, d_tt) == pytest.approx(
        np.linalg.norm(weighted, "fro"), rel=1e-13)
    with pytest.raises(TypeError, match="squared must be True or False"):
        alpha_combined_from_changes(d_ss, d_st, d_tt, squared="no")


def test_perturbations_need_a_model() -> None:
    with pytest.raises(ValueError, match="Perturbations needs at least one model"):
        Perturbations({}, centre_images(4, spread=0.3))
