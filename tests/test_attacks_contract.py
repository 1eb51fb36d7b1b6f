"""Every attack honours the common contract: truthful results, [0, 1], modes, bad inputs."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from advlens import attacks
from advlens.attacks import AttackResult
from advlens.attacks.norms import lp_norms
from attack_toys import DIM, affine_model, centre_images, random_images, tiny_cnn

Attack = Callable[..., AttackResult]
MINIMAL: dict[str, Attack] = {
    "ddn": lambda m, x, y, **k: attacks.ddn(m, x, y, steps=15, **k),
    "fmn-l2": lambda m, x, y, **k: attacks.fmn(m, x, y, steps=15, **k),
    "alma": lambda m, x, y, **k: attacks.alma(m, x, y, steps=15, **k),
    "fmn-linf": lambda m, x, y, **k: attacks.fmn(m, x, y, norm="linf", steps=15, **k),
    "fab": lambda m, x, y, **k: attacks.fab(m, x, y, steps=15, **k),
    "cw-l2": lambda m, x, y, **k: attacks.cw_l2(m, x, y, steps=8, binary_steps=2, lr=0.05, **k),
    "ead": lambda m, x, y, **k: attacks.ead(m, x, y, steps=8, binary_steps=2, **k),
    "ifgsm-search": lambda m, x, y, **k: attacks.ifgsm_search(m, x, y, steps=4, tries=3, **k),
    "fgsm-search": lambda m, x, y, **k: attacks.fgsm_search(m, x, y, tries=3, **k),
    "minimal-l2": lambda m, x, y, **k: attacks.minimal_l2(m, x, y, budget=16, **k),
    "minimal-linf": lambda m, x, y, **k: attacks.minimal_linf(m, x, y, budget=16, **k),
    "minimal-eps-pgd": lambda m, x, y, **k: attacks.minimal_eps_pgd(m, x, y, **k),
}
FIXED: dict[str, Attack] = {
    "pgd-l2": lambda m, x, y, **k: attacks.pgd(m, x, y, eps=0.5, steps=3, **k),
    "pgd-linf": lambda m, x, y, **k: attacks.pgd(m, x, y, eps=0.05, norm="linf", steps=3, **k),
    "fgsm": lambda m, x, y, **k: attacks.fgsm(m, x, y, eps=0.05, **k),
}
ALL = {**MINIMAL, **FIXED}
UNTARGETED_ONLY = {"minimal-eps-pgd"}


def _setup(n: int = 12, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    model, x = tiny_cnn(seed=seed), random_images(n, seed=seed)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    y[0] = (y[0] + 1) % 3  # one image misclassified before any perturbation
    return model, x, y


@pytest.mark.parametrize("name", sorted(ALL))
def test_results_are_truthful(name: str) -> None:
    model, x, y = _setup()
    model.train()
    r = ALL[name](model, x, y)
    assert model.training and all(m.training for m in model.modules())
    assert r.adv.shape == x.shape and r.norms.shape == r.success.shape == (len(x),)
    assert float(r.adv.min()) >= 0.0 and float(r.adv.max()) <= 1.0
    with torch.no_grad():
        fooled = model.eval()(r.adv).argmax(1) != y
    assert bool(fooled[r.success].all()), "an example reported successful is not adversarial"
    real = lp_norms(r.adv - x, r.norm)
    torch.testing.assert_close(r.norms[r.success], real[r.success])
    if name in MINIMAL:
        assert bool(torch.isinf(r.norms[~r.success]).all())
        assert torch.equal(r.adv[~r.success], x[~r.success])
        # the image misclassified clean needs no perturbation
        assert bool(r.success[0]) and float(r.norms[0]) == 0.0
    else:
        assert torch.equal(r.success, fooled)
        torch.testing.assert_close(r.norms, real)
    assert r.passes >= 1 and r.forwards >= 1


class _Tied(torch.nn.Module):
    """``shared`` registered under two parents (``a`` and ``b``), run once, then ``rest``."""

    def __init__(self, shared: torch.nn.Module, rest: torch.nn.Module) -> None:
        super().__init__()
        self.a, self.b, self.rest = torch.nn.Sequential(shared), torch.nn.Sequential(shared), rest

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.a(x))


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_shared_eval_block_inside_a_train_model_stays_in_eval(name: str) -> None:
    """A block two parents share (re-used, tied), put in eval mode by the user inside a model in
    train mode, is in eval mode after the attack: restoring each parent with ``train(True)``
    recursed into it, and the later parent set it to train (its BatchNorm statistics would then
    move in the user's next training step)."""
    model, x, y = _setup(4)
    shared = torch.nn.Sequential(model[0], model[1])  # conv, BatchNorm
    tied = _Tied(shared, torch.nn.Sequential(*model[2:])).train()
    shared.eval()
    before = {n: m.training for n, m in tied.named_modules(remove_duplicate=False)}
    ALL[name](tied, x, y)
    after = {n: m.training for n, m in tied.named_modules(remove_duplicate=False)}
    assert after == before
    assert not shared.training and not model[1].training and tied.training


@pytest.mark.parametrize("name", sorted(ALL))
def test_inputs_refused_with_clear_errors(name: str) -> None:
    model, x, y = _setup(4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ALL[name](model, x + 1.0, y)
    with pytest.raises(ValueError, match="shape"):
        ALL[name](model, x, y[:2])
    if name not in UNTARGETED_ONLY and name not in FIXED:
        with pytest.raises(ValueError, match="equal the true label"):
            ALL[name](model, x, y, targets=y)


@pytest.mark.parametrize("name", sorted(ALL))
def test_an_empty_batch_is_refused_by_name(name: str) -> None:
    model, x, y = _setup(2)
    with pytest.raises(ValueError, match=r"x is an empty batch \(shape \(0, "):
        ALL[name](model, x[:0], y[:0])


@pytest.mark.parametrize("name", sorted(set(ALL) - UNTARGETED_ONLY))
def test_float64_inputs_and_models_work(name: str) -> None:
    model, x, y = _setup(6)
    model, x = model.double(), x.double()
    r = ALL[name](model, x, y)
    assert r.adv.dtype == torch.float64 and r.norms.dtype == torch.float64


class _Float64Logits(torch.nn.Module):
    """A float32 net whose wrapper returns its logits in float64."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).double()


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("name", sorted(ALL))
def test_float64_logits_of_float32_images_are_attacked(name: str, targeted: bool) -> None:
    """Logits in another precision than the images are taken in the images' (ALMA and FAB
    crashed on the mixed dtypes)."""
    if targeted and name in UNTARGETED_ONLY:
        pytest.skip("untargeted only")
    model, x, y = _setup(6)
    wrapped = _Float64Logits(model)
    kw = {"targets": (y + 1) % 3} if targeted else {}
    r = ALL[name](wrapped, x, y, **kw)
    assert r.adv.dtype == torch.float32
    torch.testing.assert_close(r.adv, ALL[name](model, x, y, **kw).adv)


class _SumFirst(torch.nn.Module):
    """Sums each channel over the pixels first: its gradient with respect to the input is an
    expanded tensor (one value per channel, broadcast), whose elements share memory."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Linear(1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.sum(dim=(2, 3)) / 100.0)


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_model_that_reduces_its_input_first_is_attacked(name: str) -> None:
    """Every attack updates its gradients in place; an expanded input gradient must not break
    that (it raised in DDN, FMN-L∞, ALMA, C&W, EAD and both `minimal_*` portfolios)."""
    model, x = _SumFirst(), random_images(6, seed=1)
    with torch.no_grad():
        y = model(x).argmax(1)
    r = ALL[name](model, x, y)
    assert r.adv.shape == x.shape and float(r.adv.min()) >= 0.0 and float(r.adv.max()) <= 1.0
    with torch.no_grad():
        fooled = model(r.adv).argmax(1) != y
    assert bool(fooled[r.success].all())


def test_run_batched_matches_one_batch() -> None:
    model, x, y = _setup(10)
    whole = attacks.ddn(model, x, y, steps=10)
    parts = attacks.run_batched(attacks.ddn, model, x, y, batch_size=4, steps=10)
    torch.testing.assert_close(parts.adv, whole.adv)
    assert torch.equal(parts.success, whole.success)
    assert parts.passes == 3 * whole.passes  # three chunks


def test_attack_result_concat_refuses_mixed_norms() -> None:
    model, x, y = _setup(4)
    a = attacks.pgd(model, x, y, eps=0.1, steps=1)
    b = attacks.pgd(model, x, y, eps=0.1, norm="linf", steps=1)
    with pytest.raises(ValueError, match="different norms"):
        AttackResult.concat([a, b])


@pytest.mark.parametrize("norm,method",
                         [("l2", m) for m in ("auto", "ddn", "fmn", "alma", "fab", "cw")]
                         + [("linf", m) for m in ("auto", "fmn", "fab", "ifgsm")])
def test_minimal_entry_points_stay_within_budget(norm: str, method: str) -> None:
    model, x, y = _setup(6)
    entry = attacks.minimal_l2 if norm == "l2" else attacks.minimal_linf
    r = entry(model, x, y, method=method, budget=40)
    assert r.cost <= 40 and r.norm == norm
    with pytest.raises(ValueError, match="method"):
        entry(model, x, y, method="deepfool")
    for wrong in ("40", 40.0, True):  # e.g. a notebook knob read as text
        with pytest.raises(TypeError, match=f"budget must be an int.*{type(wrong).__name__}"):
            entry(model, x, y, method=method, budget=wrong)


class _BatchSizeDependent(torch.nn.Module):
    """Stands in for kernels whose verdict depends on the batch composition: at batch size 7
    the logits shift towards class 0, so the final whole-batch check rejects what the search kept
    on sub-batches."""

    def __init__(self) -> None:
        super().__init__()
        from attack_toys import affine_model

        self.base = affine_model(k=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shift = torch.tensor([3.0, 0.0], dtype=x.dtype) * (x.shape[0] == 7)
        return self.base(x) + shift


@pytest.mark.parametrize("search", ["ifgsm_search", "minimal_eps_pgd"])
def test_eps_is_inf_where_the_final_check_rejects(search: str) -> None:
    from attack_toys import centre_images

    model = _BatchSizeDependent()
    x = centre_images(7)
    y = model(x).argmax(1)
    y[0] = 1 - y[0]  # misclassified clean: later search rounds run on 6 images
    result = getattr(attacks, search)(model, x, y)
    assert result.eps is not None
    rejected = ~result.success
    assert rejected.any()
    assert torch.isinf(result.eps[rejected]).all() and torch.isinf(result.norms[rejected]).all()


def test_run_batched_refuses_misaligned_labels_and_targets() -> None:
    from attack_toys import affine_model, centre_images

    model, x = affine_model(k=3), centre_images(8)
    y = model(x).argmax(1)
    with pytest.raises(ValueError, match=r"y must have shape \(8,\)"):
        attacks.run_batched(attacks.fgsm, model, x, torch.cat([y, y[:3]]), eps=0.1)
    with pytest.raises(ValueError, match=r"targets must have shape \(8,\)"):
        attacks.run_batched(attacks.fgsm, model, x, y, targets=(y + 1)[:5] % 3, eps=0.1)
    # no chunk to run: "concat needs at least one AttackResult" named neither x nor the cause
    with pytest.raises(ValueError, match=r"x is an empty batch \(shape \(0, 1, 4, 4\)\)"):
        attacks.run_batched(attacks.ddn, model, x[:0], y[:0], steps=3)


def test_choose_targets_refuses_negative_labels() -> None:
    from attack_toys import affine_model, centre_images

    model, x = affine_model(k=3), centre_images(3)
    with pytest.raises(ValueError, match="y holds the label -1; class indices are >= 0"):
        attacks.choose_targets(model, x, torch.tensor([0, -1, 2]), "random",
                               torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="y holds the label 3, outside the model's 3 classes"):
        attacks.choose_targets(model, x, torch.tensor([0, 3, 2]), "random")


@pytest.mark.parametrize("name", sorted(ALL))
def test_labels_outside_the_models_classes_are_refused(name: str) -> None:
    """tiny_cnn has 3 classes: a label 3 must be named as outside them, for y and targets."""
    model, x, y = _setup(4)
    bad = torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"y holds the label 3, outside the model's 3 classes"):
        ALL[name](model, x, bad)
    with pytest.raises(ValueError, match="y holds the label -1; class indices are >= 0"):
        ALL[name](model, x, torch.tensor([0, 1, -1, 2]))
    if name not in UNTARGETED_ONLY:
        targets = (y + 1) % 3
        targets[2] = 5 if int(y[2]) != 5 else 4
        with pytest.raises(ValueError, match="targets holds the label 5, outside the model's 3"):
            ALL[name](model, x, y, targets=targets)


def test_minimal_l2_names_the_label_outside_a_ten_class_model() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10))
    x = random_images(4)
    with pytest.raises(ValueError, match=r"label 10, outside the model's 10 classes \(labels "
                                         r"0 to 9\)"):
        attacks.minimal_l2(model, x, torch.tensor([0, 1, 2, 10]))


@pytest.mark.parametrize("name", sorted(ALL))
def test_results_are_ordinary_tensors(name: str) -> None:
    """The loops keep their own arithmetic in inference mode (bookkeeping); what they return
    must still take in-place updates and gradients, as any tensor a caller made."""
    model, x, y = _setup()
    runs = [ALL[name](model, x, y)]
    if name not in UNTARGETED_ONLY:
        runs.append(ALL[name](model, x, y, targets=(y + 1) % 3))
    for r in runs:
        for field in (r.adv, r.norms, r.success, r.eps, r.targets):
            assert field is None or not field.is_inference()
        r.adv.add_(0.0)
        model(r.adv.detach().requires_grad_(True)).sum().backward()


@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad])
@pytest.mark.parametrize("name", sorted(ALL))
def test_an_attack_inside_inference_mode_gives_the_same_result(name: str, mode: type) -> None:
    """Called inside the caller's ``torch.inference_mode()`` (images made there are inference
    tensors, which cannot enter a graph) or ``no_grad()``, an attack still takes its gradients,
    bitwise as outside."""
    model, x, y = _setup()
    # targeted too: targeted FAB (one candidate) builds its graph through the criterion's
    # label index, which must then be an ordinary tensor
    for targets in (None, None if name in UNTARGETED_ONLY else (y + 1) % 3):
        kw = {} if targets is None else {"targets": targets}
        expected = ALL[name](model, x, y, **kw)
        with mode():
            kw = {} if targets is None else {"targets": targets.clone()}
            inside = ALL[name](model, x.clone(), y.clone(), **kw)
        assert inside.passes == expected.passes and inside.forwards == expected.forwards
        assert torch.equal(inside.adv, expected.adv)
        assert torch.equal(inside.norms, expected.norms)
        assert torch.equal(inside.success, expected.success)


def test_fab_on_two_classes_inside_inference_mode() -> None:
    """On 2 classes FAB linearises the criterion's margin through autograd (no candidates to
    sweep), so the label index it gathers must be an ordinary tensor there too."""
    model, x = tiny_cnn(seed=3, k=2), random_images(6, seed=3)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    expected = attacks.fab(model, x, y, steps=12)
    with torch.inference_mode():
        inside = attacks.fab(model, x.clone(), y.clone(), steps=12)
    assert torch.equal(inside.adv, expected.adv) and inside.passes == expected.passes


class _Returns(torch.nn.Module):
    """tiny_cnn whose forward returns ``wrap(logits)`` (a tuple, a dict, half precision...)."""

    def __init__(self, wrap: Callable[[torch.Tensor], object]) -> None:
        super().__init__()
        self.inner, self.wrap = tiny_cnn(seed=0), wrap

    def forward(self, x: torch.Tensor) -> object:
        return self.wrap(self.inner(x))


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_model_that_does_not_return_one_logits_tensor_is_refused(name: str) -> None:
    """A tuple, a dict or 1-D outputs used to fail deep inside with an AttributeError; half
    precision logits gave silently poor results (64 ulps of bfloat16 logits is half a logit)."""
    _, x, y = _setup(4)
    for wrap, shown in ((lambda z: (z, 0), "a tuple"), (lambda z: {"logits": z}, "a dict"),
                        (lambda z: z[:, 0], r"a torch.float32 tensor of shape \(4,\)"),
                        (lambda z: z.bfloat16(), "a torch.bfloat16 tensor")):
        with pytest.raises(TypeError, match=f"must return one float32 or float64 tensor of "
                                            f"logits, shape \\(4, classes\\); it returned {shown}"):
            ALL[name](_Returns(wrap), x, y)


class _NoGradForward(torch.nn.Module):
    """tiny_cnn behind a forward decorated for inference (``torch.no_grad()`` or
    ``torch.inference_mode()``): its logits carry no gradient."""

    def __init__(self, mode: Callable[[], object]) -> None:
        super().__init__()
        self.inner = tiny_cnn(seed=0)
        self.forward = mode()(self._forward)  # type: ignore[method-assign]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize("name", sorted(ALL))
def test_a_model_without_input_gradients_is_named(name: str, mode: Callable[[], object]) -> None:
    """A forward decorated for inference failed every gradient attack with autograd's bare
    "element 0 of tensors does not require grad", naming neither the model nor the way out."""
    _, x, y = _setup(4)
    with pytest.raises(TypeError, match=r"logits carry no gradient.*torch\.no_grad\(\) or "
                                        r"torch\.inference_mode\(\)"):
        ALL[name](_NoGradForward(mode), x, y)


@pytest.mark.parametrize("attack", [
    lambda m, x, y, s: attacks.fmn(m, x, y, steps=3, start=s),
    lambda m, x, y, s: attacks.fmn(m, x, y, norm="linf", steps=3, start=s),
    lambda m, x, y, s: attacks.ddn(m, x, y, steps=3, start=s),
    lambda m, x, y, s: attacks.alma(m, x, y, steps=3, start=s),
    lambda m, x, y, s: attacks.fab(m, x, y, steps=8, start=s),
], ids=["fmn-l2", "fmn-linf", "ddn", "alma", "fab"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_start_holding_nan_or_inf_is_refused(attack: Attack, bad: float) -> None:
    """A NaN in a warm start survived the clamp into [0, 1]: the image came back as not fooled
    (norm inf) although x itself is refused for NaN."""
    model, x, y = _setup(4)
    start = x.clone()
    start[2, 0, 1, 1] = bad
    with pytest.raises(ValueError, match=r"start contains NaN or inf values \(1 of 4 images, "
                                         r"the first at index 2\)"):
        attack(model, x, y, start)


@pytest.mark.parametrize("name", sorted(ALL))
def test_half_precision_images_are_refused_with_the_way_out(name: str) -> None:
    model, x, y = _setup(4)
    for dtype in (torch.bfloat16, torch.float16):
        with pytest.raises(ValueError, match=f"x is {dtype}: attacks take float32 or float64 "
                                             r"images.*advlens\.accel\.prepare\(model"):
            ALL[name](model.to(dtype), x.to(dtype), y)


def test_the_way_out_for_half_precision_runs() -> None:
    """What the error advises: float32 images, the model under bf16 autocast returning float32
    logits; the result is truthful for that wrapped model."""
    from advlens import accel

    model, x, y = _setup(6)
    wrapped = accel.prepare(model, kind="attacks", device="cpu", autocast=torch.bfloat16)
    r = attacks.minimal_l2(wrapped, x, y, budget=20)
    with torch.no_grad():
        fooled = wrapped(r.adv).argmax(1) != y
    assert r.adv.dtype == torch.float32 and bool(r.success.any())
    assert bool(fooled[r.success].all())


@pytest.mark.parametrize("name", sorted(ALL))
def test_an_untargeted_attack_on_a_one_class_model_is_refused(name: str) -> None:
    """minimal_l2 returned inf for every image, FAB-based ones raised their own message."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(DIM, 1))
    x = random_images(4)
    with pytest.raises(ValueError, match="untargeted attack needs a model of at least 2 classes; "
                                         "this one has 1"):
        ALL[name](model, x, torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("name", sorted(ALL))
def test_float64_images_are_attacked_in_a_float32_models_precision(name: str) -> None:
    """A float64 NumPy array (NumPy's default) raised torch's dtype error deep inside; now the
    images are cast to the model's dtype, and the result is that of float32 images."""
    model, x, y = _setup(6)
    wide = ALL[name](model, x.double().numpy(), y)
    same = ALL[name](model, x, y)
    assert wide.adv.dtype == torch.float32
    assert torch.equal(wide.adv, same.adv) and torch.equal(wide.success, same.success)


class _FarLogits(torch.nn.Module):
    """A two-class linear model whose logits sit near 1000: 64 ulps of them (the acceptance
    margin) is 0.0076, far above the margins a coarse search lands on."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(16, generator=torch.Generator().manual_seed(0))
                                    * 0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w - 0.5 * self.w.sum()
        return torch.stack([1000 + 0 * z, 1000 + z + 0.01], 1)


def test_eps_searches_keep_only_confidently_adversarial_examples() -> None:
    """The I-FGSM and Linsley searches kept examples one ulp past the boundary (margin −6e-5 at
    logits of 1000), which another batch composition can flip back."""
    model = _FarLogits()
    direction = torch.sign(model.w.detach()).view(1, 1, 4, 4)
    x = 0.5 - 0.1 * direction * torch.linspace(0.3, 1, 6).view(6, 1, 1, 1)
    with torch.no_grad():
        y = model(x).argmax(1)
    crit = attacks.Criterion(y)
    for result in (attacks.ifgsm_search(model, x, y), attacks.minimal_eps_pgd(model, x, y)):
        assert result.success.all()
        with torch.no_grad():
            assert crit.confidently_adversarial(model(result.adv)).all()


def test_linsley_bisection_ends_below_float_spacing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A width below the float spacing of eps looped forever (the midpoint rounds to an end)."""
    from advlens.attacks import search

    calls = []
    try_eps = search.EpsSearch.try_eps

    def counted(self, eps, active):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) > 200:
            raise RuntimeError("the bisection does not end")
        return try_eps(self, eps, active)

    monkeypatch.setattr(search.EpsSearch, "try_eps", counted)
    model, x = tiny_cnn(seed=1).eval(), random_images(2, seed=2)
    with torch.no_grad():
        y = model(x).argmax(1)
    result = attacks.minimal_eps_pgd(model, x, y, width_low=1e-9, width_high=1e-9)
    assert result.success.all() and len(calls) < 60


def test_targets_are_never_the_true_label_even_at_infinite_logits() -> None:
    """log-softmax outputs underflow to −inf: a masked argmax then returned y itself."""

    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            row = torch.tensor([0.0, -float("inf"), -float("inf")])
            return row.expand(x.shape[0], 3) + 0 * x.flatten(1).sum(1, keepdim=True)

    x, y = random_images(2), torch.tensor([0, 0])
    for mode in ("top-2", "least-likely"):
        t = attacks.choose_targets(Fixed(), x, y, mode)
        assert (t != y).all() and t.tolist() == [1, 1]


def test_run_batched_cuts_per_image_arguments_and_takes_label_lists() -> None:
    model, x = tiny_cnn(seed=3).eval(), random_images(8, seed=4)
    with torch.no_grad():
        y = model(x).argmax(1)
    eps = torch.linspace(0.05, 0.4, 8)
    whole = attacks.pgd(model, x, y, eps=eps, norm="linf", steps=5)
    chunked = attacks.run_batched(attacks.pgd, model, x, y.tolist(), batch_size=3, eps=eps,
                                  norm="linf", steps=5)
    torch.testing.assert_close(chunked.adv, whole.adv)
    assert torch.equal(chunked.success, whole.success)
    listed = attacks.pgd(model, x, y.tolist(), eps=0.1, steps=2)
    assert torch.equal(listed.adv, attacks.pgd(model, x, y, eps=0.1, steps=2).adv)
    with pytest.raises(ValueError, match="integer class indices"):
        attacks.pgd(model, x, [0.5] * 8, eps=0.1)


def test_minimal_linf_refuses_zero_tries_clearly() -> None:
    model, x = tiny_cnn().eval(), random_images(2)
    with pytest.raises(ValueError, match="tries must be an int >= 1"):
        attacks.minimal_linf(model, x, torch.tensor([0, 1]), method="ifgsm", budget=50, tries=0)


@pytest.mark.parametrize("entry", [attacks.minimal_l2, attacks.minimal_linf])
def test_minimal_entry_points_take_target_lists(entry: Attack) -> None:
    """Targets as a list of ints, as every attack takes them (the portfolio re-read the raw
    targets as a tensor and refused a list)."""
    model, x = tiny_cnn(seed=3).eval(), random_images(4, seed=4)
    with torch.no_grad():
        y = model(x).argmax(1)
    t = (y + 1) % 3
    listed = entry(model, x, y.tolist(), targets=t.tolist(), budget=30)
    tensor = entry(model, x, y, targets=t, budget=30)
    assert torch.equal(listed.adv, tensor.adv) and torch.equal(listed.targets, t)


def test_minimal_linf_takes_numpy_integer_tries() -> None:
    """``tries`` from a NumPy grid, as ``budget`` (it was refused: "got np.int64(3)")."""
    model, x = tiny_cnn().eval(), random_images(2)
    y = torch.tensor([0, 1])
    r = attacks.minimal_linf(model, x, y, method="ifgsm", budget=np.int64(50), tries=np.int64(3))
    assert torch.equal(r.eps, attacks.minimal_linf(model, x, y, method="ifgsm", budget=50,
                                                   tries=3).eps)


def test_run_batched_cuts_numpy_per_image_arguments() -> None:
    """A NumPy per-image eps, which pgd takes, is cut like a tensor (it went to every chunk
    whole, and was refused there)."""
    model, x = tiny_cnn(seed=3).eval(), random_images(8, seed=4)
    with torch.no_grad():
        y = model(x).argmax(1)
    eps = np.linspace(0.05, 0.4, 8)
    chunked = attacks.run_batched(attacks.pgd, model, x, y, batch_size=3, eps=eps,
                                  norm="linf", steps=5)
    whole = attacks.pgd(model, x, y, eps=torch.as_tensor(eps), norm="linf", steps=5)
    torch.testing.assert_close(chunked.adv, whole.adv)


def test_a_step_or_gamma_that_is_not_a_number_is_named() -> None:
    """FMN has no constant-γ switch: gamma_end=None (DDN's) failed with torch's 'Could not infer
    dtype of NoneType', naming neither the argument nor the value."""
    model, x = affine_model(k=2, seed=4), centre_images(2, seed=7)
    y = torch.tensor([0, 1])
    with pytest.raises(TypeError, match="gamma_end must be a number; got None"):
        attacks.fmn(model, x, y, steps=2, gamma_end=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_step must be a number.*got '1'"):
        attacks.ddn(model, x, y, steps=2, max_step="1")  # type: ignore[arg-type]


@pytest.mark.parametrize("switch", [1.5, -0.1, float("nan"), "0.5"])
def test_ddn_switch_must_be_a_fraction(switch) -> None:  # noqa: ANN001
    model = tiny_cnn()
    x = random_images(2)
    with pytest.raises(ValueError, match="switch must be a fraction"):
        attacks.ddn(model, x, torch.zeros(2, dtype=torch.long), steps=2, switch=switch)


def test_ddn_switch_takes_a_zero_dim_tensor() -> None:
    """A 0-dim tensor was refused as "not a fraction of the steps" (not a numbers.Real)."""
    model, x = affine_model(k=3, seed=4), centre_images(2, seed=7)
    y = model(x).argmax(1)
    for same in (torch.tensor(0.5), np.float64(0.5)):
        assert torch.equal(attacks.ddn(model, x, y, steps=4, switch=same).adv,
                           attacks.ddn(model, x, y, steps=4, switch=0.5).adv)


@pytest.mark.parametrize("name", ["cw-l2", "ead"])
def test_constant_searches_without_early_abort_do_not_depend_on_the_batch(name: str) -> None:
    """The early abort tests the batch's summed objective (documented: results then depend on
    the batch); without it each image is attacked on its own, chunks changing only rounding."""
    model, x, y = _setup(5)
    fn = {"cw-l2": attacks.cw_l2, "ead": attacks.ead}[name]

    def attack(m: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor) -> AttackResult:
        return fn(m, xs, ys, steps=20, binary_steps=3, abort_early=False)

    whole = attack(model, x, y)
    ones = attacks.run_batched(attack, model, x, y, batch_size=1)
    assert torch.equal(whole.success, ones.success)
    torch.testing.assert_close(ones.norms, whole.norms, rtol=1e-5, atol=1e-6)
    assert "batched with it" in " ".join((fn.__doc__ or "").split())


@pytest.mark.parametrize(("name", "setting"), [("ead", "beta"), ("ead", "lr"),
                                             ("cw-l2", "lr"), ("cw-l2", "kappa"),
                                             ("cw-l2", "initial_const")])
def test_constant_search_settings_are_one_number_for_the_batch(name: str, setting: str) -> None:
    """An (N,) tensor passed the positivity check: EAD's beta and lr then broadcast against the
    images' last axis (N = W = 4 here), so no image got its own value, silently; C&W failed
    inside torch ("Boolean value of Tensor ... ambiguous", "full(): argument 'fill_value'")."""
    model, x = affine_model(k=3, seed=4), centre_images(4, seed=7, spread=0.15)
    y = model(x).argmax(1)
    fn = {"cw-l2": attacks.cw_l2, "ead": attacks.ead}[name]
    per_image = torch.tensor([0.01, 0.05, 0.2, 0.5], dtype=torch.float64)
    with pytest.raises(ValueError, match=f"{setting} must be one number for the whole batch; "
                                         "got 4 values"):
        fn(model, x, y, steps=5, binary_steps=2, **{setting: per_image})
    one = fn(model, x, y, steps=5, binary_steps=2, **{setting: 0.05})
    for same in (torch.tensor(0.05, dtype=torch.float64), np.array([0.05]), np.float64(0.05)):
        again = fn(model, x, y, steps=5, binary_steps=2, **{setting: same})
        assert torch.equal(again.adv, one.adv)


ONE_NUMBER_ATTACKS: dict[str, Attack] = {
    "fab": lambda m, x, y, **k: attacks.fab(m, x, y, steps=12, **k),
    "alma": lambda m, x, y, **k: attacks.alma(m, x, y, steps=8, **k),
    "ddn": lambda m, x, y, **k: attacks.ddn(m, x, y, steps=8, **k),
    "fmn": lambda m, x, y, **k: attacks.fmn(m, x, y, steps=8, **k),
    "ifgsm-search": lambda m, x, y, **k: attacks.ifgsm_search(m, x, y, steps=3, tries=3, **k),
    "minimal-eps-pgd": lambda m, x, y, **k: attacks.minimal_eps_pgd(m, x, y, steps=2, **k),
}
# (attack, setting, a valid value): settings documented as one number for the batch
ONE_NUMBER_SETTINGS = [
    ("fab", "alpha_max", 0.2), ("fab", "eta", 1.2), ("fab", "beta", 0.7),
    ("alma", "lr", 0.2), ("alma", "lr_reduction", 0.1), ("alma", "mu", 2.0), ("alma", "rho", 2.0),
    ("alma", "tau", 0.9), ("alma", "rho_growth", 1.5), ("alma", "alpha", 0.8),
    ("alma", "tolerance", 1e-3),
    ("ddn", "gamma", 0.1), ("ddn", "gamma_end", 0.01), ("ddn", "max_step", 0.5),
    ("ddn", "min_step", 0.05), ("fmn", "gamma", 0.1), ("fmn", "gamma_end", 0.01),
    ("ifgsm-search", "start_eps", 0.05),
    ("minimal-eps-pgd", "step_size", 0.3), ("minimal-eps-pgd", "eps_min", 2e-3),
    ("minimal-eps-pgd", "eps_mid", 1.5), ("minimal-eps-pgd", "eps_max", 6.0),
    ("minimal-eps-pgd", "width_low", 0.02), ("minimal-eps-pgd", "width_high", 0.2),
]


@pytest.mark.parametrize(("name", "setting", "value"), ONE_NUMBER_SETTINGS)
def test_one_number_settings_refuse_a_value_per_image(name: str, setting: str,
                                                      value: float) -> None:
    """An (N,) tensor of a setting documented as one number passed the positivity check: FAB's
    eta and DDN's max_step / min_step then broadcast against the images' last axis (N = H = W
    = 4 here: no image got its own value, silently), ALMA's mu / rho / alpha, FAB's alpha_max
    / beta and minimal_eps_pgd's budgets failed inside torch; a 0-dim float32 gamma ran DDN's and
    FMN's schedule in float32. One value in any form (0-dim tensor, NumPy scalar or 1-element
    array) gives bitwise the result of that value as a float."""
    model, x = affine_model(k=4, seed=4), centre_images(4, seed=7, spread=0.15)
    y = model(x).argmax(1)
    fn = ONE_NUMBER_ATTACKS[name]
    per_image = torch.tensor([0.8, 0.9, 1.0, 0.95], dtype=torch.float64) * value
    with pytest.raises(ValueError, match=f"{setting} must be one number for the whole batch; "
                                         "got 4 values"):
        fn(model, x, y, **{setting: per_image})
    one = fn(model, x, y, **{setting: value}).adv
    for same in (torch.tensor(value, dtype=torch.float64), np.float64(value), np.array([value])):
        assert torch.equal(fn(model, x, y, **{setting: same}).adv, one)
    single = torch.tensor(value, dtype=torch.float32)  # read as the float it holds
    assert torch.equal(fn(model, x, y, **{setting: single}).adv,
                       fn(model, x, y, **{setting: float(single)}).adv)


@pytest.mark.parametrize(("name", "setting", "value"),
                         [("ddn", "gamma_end", math.nan), ("ddn", "gamma_end", math.inf),
                          ("ddn", "gamma_end", -0.05), ("ddn", "gamma", 1.0),
                          ("ddn", "gamma", 1.5), ("fmn", "gamma", 1.5),
                          ("fmn", "gamma_end", 1.5), ("alma", "alpha", 1.0),
                          ("alma", "alpha", 1.5)])
def test_rates_outside_their_range_are_refused(name: str, setting: str, value: float) -> None:
    """Each ran without a word (30 steps, closed-form distances 0.02 to 0.09): DDN's gamma_end
    NaN or inf found no adversarial, -0.05 ended at L2 0.66 (γ < 0 grows an adversarial's
    eps); gamma >= 1 makes (1 − γ)·eps a zero or negative radius (DDN at 1.5: 0.36 against
    0.075, FMN 2.5× the minimum); ALMA's alpha > 1 drives RMSProp's average negative (no image
    fooled), alpha = 1 never decays the momentum (L2 1.55 against 0.02)."""
    model, x = affine_model(k=4, seed=4), centre_images(4, seed=7, spread=0.15)
    y = model(x).argmax(1)
    with pytest.raises(ValueError, match=setting):
        ONE_NUMBER_ATTACKS[name](model, x, y, **{setting: value})
    assert ONE_NUMBER_ATTACKS[name](model, x, y, **{setting: 0.5}).success.all()


PER_IMAGE: dict[str, tuple[Attack, str, list[float]]] = {
    "pgd-eps": (lambda m, x, y, **k: attacks.pgd(m, x, y, steps=3, **k), "eps",
                [0.1, 0.3, 0.5, 0.9]),
    "pgd-step": (lambda m, x, y, **k: attacks.pgd(m, x, y, eps=0.5, steps=3, **k), "step_size",
                 [0.05, 0.1, 0.2, 0.4]),
    "fgsm-eps": (lambda m, x, y, **k: attacks.fgsm(m, x, y, **k), "eps", [0.01, 0.05, 0.1, 0.2]),
    "ddn-init-eps": (lambda m, x, y, **k: attacks.ddn(m, x, y, steps=12, **k), "init_eps",
                     [0.5, 1.0, 2.0, 0.3]),
    "fmn-max-step": (lambda m, x, y, **k: attacks.fmn(m, x, y, steps=12, **k), "max_step",
                     [0.1, 0.5, 1.0, 2.0]),
    "fmn-linf-min-step": (lambda m, x, y, **k: attacks.fmn(m, x, y, norm="linf", steps=12,
                                                           max_step=0.2, **k),
                          "min_step", [0.001, 0.01, 0.05, 0.1]),
}


@pytest.mark.parametrize("name", sorted(PER_IMAGE))
def test_per_image_settings_act_on_their_own_image(name: str) -> None:
    """A setting documented per image, given as an (N,) tensor, does to each image what one call
    on that image alone with its value does (N = H = W = 4: broadcasting along an image axis
    would not be caught by a shape check)."""
    fn, setting, values = PER_IMAGE[name]
    model, x = affine_model(k=4, seed=4), centre_images(4, seed=7, spread=0.15)
    y = model(x).argmax(1)
    batched = fn(model, x, y, **{setting: torch.tensor(values, dtype=torch.float64)}).adv
    alone = torch.cat([fn(model, x[i:i + 1], y[i:i + 1], **{setting: v}).adv
                       for i, v in enumerate(values)])
    torch.testing.assert_close(batched, alone, rtol=0, atol=1e-12)


COUNTED: dict[str, Callable[..., AttackResult]] = {
    "pgd": lambda m, x, y, **k: attacks.pgd(m, x, y, eps=0.5, **{"steps": 3, **k}),
    "ddn": lambda m, x, y, **k: attacks.ddn(m, x, y, **{"steps": 3, **k}),
    "fmn": lambda m, x, y, **k: attacks.fmn(m, x, y, **{"steps": 3, **k}),
    "alma": lambda m, x, y, **k: attacks.alma(m, x, y, **{"steps": 3, **k}),
    "fab": lambda m, x, y, **k: attacks.fab(m, x, y, **{"steps": 3, **k}),
    "cw-l2": lambda m, x, y, **k: attacks.cw_l2(m, x, y, **{"steps": 3, "binary_steps": 1, **k}),
    "ead": lambda m, x, y, **k: attacks.ead(m, x, y, **{"steps": 3, "binary_steps": 1, **k}),
    "ifgsm-search": lambda m, x, y, **k: attacks.ifgsm_search(m, x, y,
                                                              **{"steps": 2, "tries": 2, **k}),
    "minimal-eps-pgd": lambda m, x, y, **k: attacks.minimal_eps_pgd(m, x, y, **{"steps": 2, **k}),
}


@pytest.mark.parametrize("name", sorted(COUNTED))
@pytest.mark.parametrize("steps", [3.0, "3", True])
def test_a_step_count_that_is_not_an_int_is_named(name: str, steps: object) -> None:
    """steps=3.0 or "3" (a value read from a config file) failed inside the loop with Python's
    "'float' object cannot be interpreted as an integer" or "'<' not supported between
    instances of 'str' and 'int'", naming neither the argument nor the value; True ran 1 step."""
    model, x = tiny_cnn().eval(), random_images(2)
    with pytest.raises(ValueError, match=f"steps must be an int >= [12]; got {steps!r}"):
        COUNTED[name](model, x, torch.tensor([0, 1]), steps=steps)


@pytest.mark.parametrize("name", ["pgd", "ddn", "cw-l2", "ifgsm-search"])
def test_numpy_step_counts_are_taken(name: str) -> None:
    model, x, y = tiny_cnn().eval(), random_images(2), torch.tensor([0, 1])
    a = COUNTED[name](model, x, y, steps=2)
    b = COUNTED[name](model, x, y, steps=np.int64(2))
    assert torch.equal(a.adv, b.adv) and a.passes == b.passes


def test_pgd_names_an_eps_given_as_a_string() -> None:
    """pgd derived its default step (2.5·eps/steps) before checking eps: "0.5" failed with
    "can't multiply sequence by non-int of type 'float'"."""
    model, x = tiny_cnn().eval(), random_images(2)
    with pytest.raises(TypeError, match="eps must be a number or an"):
        attacks.pgd(model, x, torch.tensor([0, 1]), eps="0.5")
