"""Inputs at the edges an independent review (thirty-eighth session) found handled wrongly: a
model that writes into its input, an L2 eps too large for float32, non-finite or unsigned maps,
non-symmetric or NumPy Gram matrices, and representation names that read the same."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from advlens import alignment, attacks, cka, features
from attack_toys import affine_model, centre_images


class _InPlaceNormalise(nn.Module):
    """(x - 0.5) / 0.25 written into x, as torchvision's Normalize(inplace=True) does."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sub_(0.5).div_(0.25)


def _in_place_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(_InPlaceNormalise(), nn.Flatten(), nn.Linear(12, 3)).eval()


@pytest.mark.parametrize("call", [
    lambda m, x, y: features.predict(m, x),
    lambda m, x, y: features.accuracy(m, x, y),
    lambda m, x, y: features.representation(m, x),
    lambda m, x, y: alignment.saliency(m, x, y),
    lambda m, x, y: attacks.pgd(m, x, y, eps=0.1),
    lambda m, x, y: attacks.fgsm(m, x, y, eps=0.1),
    lambda m, x, y: attacks.ifgsm_search(m, x, y, steps=2, tries=2),
    lambda m, x, y: attacks.minimal_l2(m, x, y, budget=30),
    lambda m, x, y: attacks.minimal_linf(m, x, y, budget=30),
], ids=["predict", "accuracy", "representation", "saliency", "pgd", "fgsm", "ifgsm_search",
        "minimal_l2", "minimal_linf"])
def test_a_model_writing_into_its_input_is_refused_and_the_callers_images_are_kept(call) -> None:
    """predict's batches were views of the caller's images (accuracy read 0.547, then 0.375
    on the same call, the images left in [-10, 6]); the gradient attacks failed with autograd's
    'leaf Variable ... in-place operation', naming neither the model nor a fix."""
    model = _in_place_model()
    x = torch.rand(16, 3, 2, 2)
    y = torch.zeros(16, dtype=torch.long)
    kept = x.clone()
    # (the input's own message where its version counter moved; autograd refuses a write to
    # an input that requires grad before it happens, and that message names both suspects)
    with pytest.raises(ValueError, match="changed its input tensor in place|wrote in place "
                                         "into a tensor that requires grad: its input"):
        call(model, x, y)
    assert torch.equal(x, kept)


class _ScalesItsWeightInPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(12, 3)

    def forward(self, x: Tensor) -> Tensor:
        with torch.enable_grad():
            self.lin.weight.mul_(1.0)
        return self.lin(x.flatten(1))


def test_an_in_place_write_to_a_parameter_is_not_blamed_on_the_input() -> None:
    """Autograd refuses any in-place write to a leaf that requires grad; where the model's
    parameters require grad (saliency-based training), the message names both possibilities,
    and a version-counted write to the input alone gets the input's message."""
    model = _ScalesItsWeightInPlace().eval()
    x = torch.rand(4, 3, 2, 2)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="wrote in place into a tensor that requires grad: "
                                         "its input .* or one of its parameters"):
        alignment.logits_and_saliency(model, x, y)


def test_the_same_model_out_of_place_runs() -> None:
    """The check refuses only the write: an out-of-place normalisation attacks as before, also
    under inference mode (whose tensors keep no version counter)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    x = torch.rand(16, 3, 2, 2)
    y = features.predict(model, x).argmax(1)
    assert attacks.minimal_l2(model, x, y, budget=30).success.all()
    with torch.inference_mode():
        assert features.predict(model, x).shape == (16, 3)


def test_an_l2_eps_whose_squared_norm_overflows_is_refused() -> None:
    """eps = 1e20 (a user's "no bound": inf is refused) made every L2 step's norm inf in float32,
    the projection zeroed every perturbation, and PGD reported 0 successes at norm 0."""
    model = affine_model(k=3, seed=0).float()
    x = centre_images(4, spread=0.3).float()
    with torch.no_grad():
        y = model(x).argmax(1)
    d = x[0].numel()
    for call in (lambda e: attacks.pgd(model, x, y, eps=e, steps=3),
                 lambda e: attacks.fgsm(model, x, y, eps=e, norm="l2")):
        with pytest.raises(ValueError, match=rf"eps = 1e\+20 is too large.*sqrt\(d\) = "
                                             rf"{d ** 0.5:.4g}"):
            call(1e20)
    assert attacks.pgd(model, x, y, eps=1e15, steps=3).success.all()
    with pytest.raises(ValueError, match="step_size = 1e\\+20 is too large"):
        attacks.pgd(model, x, y, eps=1.0, step_size=1e20, steps=3)
    # the searches that run the PGD loop directly: I-FGSM's doubling from a huge first eps
    # reported every image not found, the tolerance search lost what a step of 0.1 found
    with pytest.raises(ValueError, match="is too large for torch.float32"):
        attacks.ifgsm_search(model, x, y, norm="l2", start_eps=1e20, steps=2, tries=2)
    with pytest.raises(ValueError, match="is too large for torch.float32"):
        attacks.minimal_eps_pgd(model, x, y, step_size=1e20)
    # L∞ has no norm to overflow: a huge eps is the box itself; float64 overflows far later
    assert attacks.pgd(model, x, y, eps=1e20, norm="linf", steps=3).success.all()
    assert attacks.pgd(model.double(), x.double(), y, eps=1e20, steps=3).success.all()


def test_top_k_and_harmonization_refuse_non_finite_maps() -> None:
    """A NaN map's Dice and IoU read 0 and were averaged in, its ρ counted as 'undefined'
    (which the docstring keeps for constant maps)."""
    maps, heat = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    maps[1, 0, 0] = float("nan")
    for call in (lambda: alignment.top_k_dice(maps, heat), lambda: alignment.top_k_iou(heat, maps),
                 lambda: alignment.harmonization_score(maps, heat)):
        with pytest.raises(ValueError, match=r"hold NaN or inf in image\(s\) \[1\]"):
            call()
    heat[2, 3, 3] = float("inf")
    with pytest.raises(ValueError, match=r"heatmaps hold NaN or inf in image\(s\) \[2\]"):
        alignment.harmonization_score(torch.rand(3, 8, 8), heat)
    # each argument named as itself (mutation testing: a swapped name survived)
    clean = torch.rand(3, 8, 8)
    for first, second in ((maps, clean), (clean, maps)):
        with pytest.raises(ValueError) as caught:
            alignment.top_k_dice(first, second)
        assert str(caught.value).startswith(
            "heatmaps_a hold" if first is maps else "heatmaps_b hold"), str(caught.value)


def test_each_map_argument_is_named_in_its_shape_error() -> None:
    """(mutation testing: the first argument's shape error named the second)"""
    for first, second, name in ((torch.rand(8), torch.rand(3, 8, 8), "heatmaps_a"),
                                (torch.rand(3, 8, 8), torch.rand(8), "heatmaps_b")):
        with pytest.raises(ValueError, match=rf"^{name} must be \(N, H, W\)"):
            alignment.top_k_dice(first, second)


def test_spearman_of_one_value_per_row_is_undefined_not_refused() -> None:
    """Rows of one value (N,) or (N, 1) are constant rows: ρ NaN, as scipy gives; only an
    empty or 0-dim input is refused (mutation testing)."""
    assert alignment.spearman(torch.arange(3.0), torch.arange(3.0)).isnan().all()
    assert alignment.spearman(torch.tensor([[3.0]]), torch.tensor([[1.0]])).isnan().all()
    for empty in (torch.tensor(1.0), torch.zeros(0, 4)):
        with pytest.raises(ValueError, match="must hold at least one row of values"):
            alignment.spearman(empty, empty)


def test_spearman_alignment_refuses_an_unsigned_difference() -> None:
    """A uint8 difference of 8-bit images has wrapped around (3 - 5 reads 254): ρ -0.21 where
    the true difference gave -0.08. A signed integer difference is taken exactly."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=gen)
    b = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=gen)
    heat = torch.rand(2, 8, 8, generator=gen)
    with pytest.raises(ValueError, match="perturbation is torch.uint8.*signed type"):
        alignment.spearman_alignment(a - b, heat)
    signed = alignment.spearman_alignment(a.int() - b.int(), heat)
    floats = alignment.spearman_alignment(a.double() - b.double(), heat)
    assert torch.equal(signed, floats)
    # an (N, H, W) map is a magnitude already: |a - b| in uint8 (cv2.absdiff) is no wrap-around
    magnitude = torch.maximum(a, b) - torch.minimum(a, b)
    assert torch.equal(alignment.spearman_alignment(magnitude[:, 0], heat),
                       alignment.spearman_alignment((a.int() - b.int())[:, 0].abs(), heat))


def test_gram_linear_cka_takes_numpy_and_refuses_a_non_symmetric_gram() -> None:
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(8, 5)), rng.normal(size=(8, 3))
    grams = {"a": X @ X.T, "b": Y @ Y.T}
    for debiased in (False, True):
        got = cka.gram_linear_cka(grams, [("a", "b")], debiased=debiased)[0]
        assert got == pytest.approx(cka.linear_cka(X, Y, debiased=debiased), abs=1e-12)
    with pytest.raises(ValueError, match=r"grams\['a'\] is not symmetric"):
        cka.gram_linear_cka({"a": rng.normal(size=(8, 8)), "b": np.eye(8)}, [("a", "b")])
    with pytest.raises(KeyError, match="pairs name 'c'"):
        cka.gram_linear_cka(grams, [("a", "c")])
    # validate=False (a jackknife's sub-Grams of linear_gram's): the same numbers, no checks
    idx = torch.tensor([0, 2, 3, 5, 6, 7])
    sub = {k: torch.from_numpy(g)[idx][:, idx] for k, g in grams.items()}
    assert cka.gram_linear_cka(sub, [("a", "b")], validate=False) == \
        cka.gram_linear_cka(sub, [("a", "b")])


def test_representation_names_that_read_the_same_are_refused() -> None:
    """{1: X, "1": Y} gave a table with two rows labelled '1'."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(8, 5)), rng.normal(size=(8, 3))
    with pytest.raises(ValueError, match=r"keys that read the same as labels: \['1'\]"):
        cka.cka_matrix({1: X, "1": Y})
    with pytest.raises(ValueError, match=r"keys that read the same as labels: \['1'\]"):
        cka.gram_linear_cka({1: X @ X.T, "1": Y @ Y.T}, [(1, "1")])
    with pytest.raises(ValueError, match=r"keys that read the same as labels: \['1'\]"):
        cka.cka_cross({1: {1: X, "b": Y}, "1": {1: X, "b": Y}})
