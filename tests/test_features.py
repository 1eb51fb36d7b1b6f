"""Representation extraction on generic models: in-place ReLU, re-used modules, no hook leaks."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from advlens import features


class InplaceNet(nn.Module):
    """Penultimate output followed by an in-place op, and one ReLU module re-used twice."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(16, 16)
        self.bn = nn.BatchNorm1d(16)
        self.head = nn.Linear(16, 3)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.fc2(self.relu(self.fc1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_default_is_input_of_final_linear() -> None:
    torch.manual_seed(0)
    model = InplaceNet().eval()
    x = torch.randn(10, 8)
    with torch.no_grad():
        expected = model.body(x)
    got = features.representation(model, x, batch_size=3)
    torch.testing.assert_close(got, expected)
    assert _no_hooks(model)


def test_named_layer_is_not_corrupted_by_inplace_relu() -> None:
    torch.manual_seed(0)
    model = InplaceNet().eval()
    x = torch.randn(6, 8)
    with torch.no_grad():
        expected = model.fc1(x)  # the re-used in-place ReLU would overwrite an uncloned output
    got = features.representation(model, x, layer="fc1")
    torch.testing.assert_close(got, expected)
    assert (got < 0).any(), "negative pre-activations must survive the in-place ReLU"


def test_train_mode_is_evaluated_in_eval_and_restored() -> None:
    torch.manual_seed(0)
    model = InplaceNet()
    model.train()
    model.bn.running_mean.fill_(0.3)
    x = torch.randn(5, 8)
    got = features.representation(model, x)
    model.eval()
    with torch.no_grad():
        expected = model.body(x)
    torch.testing.assert_close(got, expected)
    model.train()
    features.representation(model, x)
    assert all(m.training for m in model.modules())


def test_torchvision_resnet_layer_and_penultimate() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        pooled = torch.flatten(model.avgpool(model.layer4(model.layer3(model.layer2(
            model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))))), 1)
        layer1 = model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))
    torch.testing.assert_close(features.representation(model, x), pooled)
    torch.testing.assert_close(features.representation(model, x, layer="layer1"),
                               layer1.flatten(1))
    assert _no_hooks(model)


def test_gradient_flows_through_representation_graph() -> None:
    model = InplaceNet().eval()
    x = torch.randn(4, 8, requires_grad=True)
    features.representation_graph(model, x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert _no_hooks(model)


def test_errors_name_the_problem() -> None:
    model = InplaceNet()
    with pytest.raises(ValueError, match="no module named 'nope'"):
        features.representation(model, torch.randn(2, 8), layer="nope")
    with pytest.raises(ValueError, match="no nn.Linear"):
        features.representation(nn.Sequential(nn.ReLU()), torch.randn(2, 8))
    assert _no_hooks(model)


def test_a_layer_given_as_the_module_itself_is_named_with_its_name() -> None:
    """``layer=model[2]`` (the module, not its name): the error gives the name to pass (it read
    the module's repr as a name: "no module named ReLU()"), which takes that module's output."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.rand(3, 3, 2, 2)
    with pytest.raises(TypeError, match="not the module itself; this one is named '2': pass "
                                        "layer='2'"):
        features.representation(model, x, layer=model[2])
    with pytest.raises(TypeError, match="this ReLU is not one of Sequential's modules"):
        features.representation(model, x, layer=nn.ReLU())
    assert torch.equal(features.representation(model, x, layer="2"), torch.relu(model[:2](x)))
    assert _no_hooks(model)


def test_predict_and_accuracy() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        model[1].bias.zero_()
    x = torch.tensor([[2.0, 0, 0, 0], [0, 3.0, 0, 0]])
    assert features.accuracy(model, x, torch.tensor([0, 1])) == 1.0
    assert features.accuracy(model, x, torch.tensor([1, 1])) == 0.5


class _Normalised(nn.Module):
    """``(x - mean) / std`` first, as every zoo model: integer pixels are promoted silently."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((1, 2, 1, 1), 0.5))
        self.fc = nn.Linear(8, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(((x - self.mean) / 0.25).flatten(1)))


def test_integer_images_are_refused_not_promoted_to_pixels_255_times_too_large() -> None:
    torch.manual_seed(0)
    model = _Normalised().eval()
    x8 = torch.randint(0, 256, (5, 2, 2, 2), dtype=torch.uint8)
    labels = torch.arange(5) % 3
    with torch.no_grad():  # the right answer: the model on the pixels scaled to [0, 1]
        expected = model(x8.float() / 255)
    torch.testing.assert_close(features.predict(model, x8.float() / 255), expected)
    for call in (lambda im: features.predict(model, im),
                 lambda im: features.representation(model, im),
                 lambda im: features.accuracy(model, im, labels)):
        for bad in (x8, x8.long(), x8.numpy()):
            with pytest.raises(ValueError, match="got dtype torch.(uint8|int64).*by 255"):
                call(bad)


def test_a_model_returning_a_tuple_is_named_with_the_way_out() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.fc(x), x

    x = torch.rand(3, 4)
    with pytest.raises(TypeError, match=r"returned a tuple.*model\(x\)\[0\]"):
        features.predict(Pair(), x)
    with pytest.raises(TypeError, match="returned a tuple"):
        features.accuracy(Pair(), x, torch.tensor([0, 1, 0]))


def test_forward_and_capture_returns_logits_and_the_layer_of_one_pass() -> None:
    """The full forward's logits plus the captured layer (uncorrupted by the in-place ReLU),
    differentiable, with no hook left behind (also when the forward raises)."""
    torch.manual_seed(0)
    model = InplaceNet().eval()
    x = torch.randn(5, 8, requires_grad=True)
    for layer, expected in ((None, model.body), ("fc1", model.fc1)):
        logits, rep = features.forward_and_capture(model, x, *features.resolve_layer(model,
                                                                                      layer))
        with torch.no_grad():
            torch.testing.assert_close(logits, model(x))
            torch.testing.assert_close(rep, expected(x))
        assert _no_hooks(model)
    (grad,) = torch.autograd.grad(rep.sum() + logits.sum(), x)
    assert grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        features.forward_and_capture(model, torch.randn(2, 5), model.head, True)
    assert _no_hooks(model)


class GruNet(nn.Module):
    """A recurrent layer returns a tuple (output, h_n): its representation is the output."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(4, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(x)[0][:, -1])


def test_a_layer_returning_a_tuple_gives_its_first_element() -> None:
    torch.manual_seed(0)
    model = GruNet().eval()
    x = torch.randn(6, 7, 4)
    with torch.no_grad():
        expected = model.gru(x)[0].flatten(1)
    torch.testing.assert_close(features.representation(model, x, layer="gru", batch_size=4),
                               expected)


def test_the_forward_pass_stops_at_the_captured_layer() -> None:
    """Nothing past the captured layer runs (the docstring's promise): a later module that
    counts its calls is never called."""
    calls: list[int] = []

    class Count(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(x.shape[0])
            return x

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4), Count(), nn.Linear(4, 2))
    x = torch.randn(5, 8)
    with torch.no_grad():
        expected = model[:2](x)
    torch.testing.assert_close(features.representation_graph(model, x, layer="1"), expected)
    features.representation(model, x, layer="2")
    assert calls == []
    assert _no_hooks(model)


def test_a_zero_dim_input_is_named_not_indexed() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="x is an empty batch"):
        features.predict(model, torch.tensor(0.5))


def _two_device_data_parallel(monkeypatch: pytest.MonkeyPatch, module: nn.Module
                              ) -> nn.DataParallel:
    """nn.DataParallel over two devices, run on the CPU: its own forward and replicate (replicas
    share the wrapped modules' hook dicts), one thread per replica and the ExceptionWrapper
    re-raise of parallel_apply; only CUDA's broadcast, scatter and gather are swapped."""
    import sys
    import threading

    from torch._utils import ExceptionWrapper

    replicate = sys.modules["torch.nn.parallel.replicate"]
    monkeypatch.setattr(replicate, "_broadcast_coalesced_reshape",
                        lambda tensors, devices, detach=False: [list(tensors) for _ in devices])

    def parallel_apply(replicas: list, inputs: list, kwargs: tuple) -> list:
        results: dict[int, object] = {}
        grad = torch.is_grad_enabled()

        def work(i: int) -> None:
            torch.set_grad_enabled(grad)
            try:
                results[i] = replicas[i](*inputs[i])
            except Exception:
                results[i] = ExceptionWrapper(where=f"in replica {i}")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(replicas))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for i in range(len(replicas)):
            if isinstance(results[i], ExceptionWrapper):
                results[i].reraise()
        return [results[i] for i in range(len(replicas))]

    dp = nn.DataParallel(module)
    dp.device_ids, dp.output_device, dp.src_device_obj = [0, 1], 0, torch.device("cpu")
    dp.scatter = lambda inputs, kwargs, ids: (tuple((c,) for c in inputs[0].chunk(len(ids))),
                                              ({},) * len(ids))
    dp.replicate = lambda m, ids: replicate.replicate(m, ids)
    dp.parallel_apply = parallel_apply
    dp.gather = lambda outputs, device: torch.cat(outputs)
    return dp


def test_a_multi_gpu_data_parallel_model_gives_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """DataParallel's replicas share the hooks: every replica's chunk reached the hook and only
    the first was kept (half the rows on two GPUs). The wrapped module runs on one device."""
    torch.manual_seed(0)
    model = InplaceNet().eval()
    dp = _two_device_data_parallel(monkeypatch, model)
    x = torch.randn(8, 8)
    with torch.no_grad():
        torch.testing.assert_close(dp(x), model(x))  # the emulation is a DataParallel
        body, fc1 = model.body(x), model.fc1(x)
    torch.testing.assert_close(features.representation(dp, x), body)
    torch.testing.assert_close(features.representation(dp, x, layer="module.fc1"), fc1)
    logits, rep = features.forward_and_capture(dp, x, *features.resolve_layer(dp, "module.fc1"))
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(rep.detach(), fc1)
    assert _no_hooks(model)


def _tiny_timm(distilled: bool = False, num_classes: int = 3) -> nn.Module:
    vision_transformer = pytest.importorskip("timm.models.vision_transformer")
    deit = pytest.importorskip("timm.models.deit")
    cls = deit.VisionTransformerDistilled if distilled else vision_transformer.VisionTransformer
    torch.manual_seed(0)
    return cls(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2,
               num_classes=num_classes).eval()


def test_timm_penultimate_is_timm_pre_logits_or_refused() -> None:
    x = torch.rand(5, 3, 16, 16)
    single = _tiny_timm()
    with torch.no_grad():  # timm's own pre-logits: the reference
        expected = single.forward_head(single.forward_features(x), pre_logits=True)
    assert torch.allclose(features.representation(single, x), expected, atol=1e-6)
    # a feature extractor's last nn.Linear is inside the last block (blocks.0.mlp.fc2): refused,
    # and the way out names the identity head, whose output is timm's pre-logits
    extractor = _tiny_timm(num_classes=0)
    with pytest.raises(ValueError, match="layer='head'"):
        features.representation(extractor, x)
    with torch.no_grad():
        expected = extractor.forward_head(extractor.forward_features(x), pre_logits=True)
    assert torch.allclose(features.representation(extractor, x, layer="head"), expected,
                          atol=1e-6)
    # two heads (class and distillation token): the last registered one is not "the" head,
    # also when the timm model is wrapped (as the zoo's published models are)
    with pytest.raises(ValueError, match="get_classifier"):
        features.representation(_tiny_timm(distilled=True), x)
    with pytest.raises(ValueError, match="get_classifier"):
        features.representation(nn.Sequential(nn.Identity(), _tiny_timm(distilled=True)), x)


class AuxHeadNet(nn.Module):
    """A timm-like model whose classifier (``get_classifier()``) is a linear ``head`` registered
    before an auxiliary linear head: the last nn.Linear is not the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)
        self.aux = nn.Linear(8, 2)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.body(x.flatten(1))
        return self.head(z) + self.aux(z).sum(1, keepdim=True)


def test_a_linear_head_that_is_not_last_is_refused_without_the_identity_hint() -> None:
    """Only an identity head's output is the features: for a linear head the way out is a
    module name of the caller's choice, not layer='head' (whose output is the logits; a
    `make mutate` survivor gave that hint for any head found by name)."""
    with pytest.raises(ValueError, match="get_classifier") as err:
        features.representation(AuxHeadNet().eval(), torch.rand(2, 4))
    assert "identity head" not in str(err.value) and "layer='<module name>'" in str(err.value)


class DictBackbone(nn.Module):
    """A backbone returning a dict (torchvision's IntermediateLayerGetter, HF ModelOutput)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(x)}


class DictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = DictBackbone()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x)["out"].mean((2, 3)))


def test_non_tensor_layer_output_is_refused_clearly() -> None:
    model = DictNet().eval()
    with pytest.raises(TypeError, match="output of DictBackbone is dict, not a tensor"):
        features.representation(model, torch.rand(2, 3, 8, 8), layer="backbone")
    assert _no_hooks(model)
    got = features.representation(model, torch.rand(2, 3, 8, 8), layer="backbone.conv")
    assert got.shape == (2, 4 * 6 * 6)


def test_module_called_twice_gives_its_first_call() -> None:
    torch.manual_seed(0)
    model = InplaceNet().eval()
    x = torch.randn(5, 8)
    with torch.no_grad():
        first = torch.relu(model.fc1(x))  # the shared ReLU's first call, not its last
    torch.testing.assert_close(features.representation(model, x, layer="relu"), first)
    _, got = features.forward_and_capture(model, x, model.relu, False)
    torch.testing.assert_close(got, first)


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
@pytest.mark.parametrize("kind", ["script", "trace"])
@pytest.mark.parametrize("layer", [None, "3"])
def test_a_torchscript_model_is_refused_by_name(kind: str, layer: str | None) -> None:
    """TorchScript calls no forward hook: a scripted or traced model was reported as having "no
    nn.Linear layer" (it has one; the hint to pass ``layer=`` then failed in torch, or, traced,
    as a module "never called in the forward pass")."""
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    x = torch.rand(2, 3, 8, 8)
    model = torch.jit.script(eager) if kind == "script" else torch.jit.trace(eager.eval(), x)
    with pytest.raises(TypeError, match=r"is a TorchScript module .* Pass the original \(eager\)"):
        features.representation(model, x, layer)
    assert _no_hooks(eager)
    features.predict(model, x)  # a forward alone takes it as it is


def test_a_float64_model_takes_float32_images_and_keeps_its_precision() -> None:
    """float32 images failed in a float64 model's first layer ("mat1 and mat2 must have the
    same dtype"; STIR with a float64 m2 too), and the representation was cut to float32 (a
    penultimate bias of 1e5 moved it by 4e-3)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    with torch.no_grad():
        model[1].bias += 1e5
    x = torch.rand(6, 1, 4, 4)
    rep = features.representation(model, x)
    assert rep.dtype == torch.float64
    assert torch.equal(rep, model[:3](x.double()))
    assert features.representation(model.float(), x).dtype == torch.float32
