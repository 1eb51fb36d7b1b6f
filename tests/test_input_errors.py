"""Inputs that used to give silently wrong numbers, or fail deep inside with an unclear error,
across the library's public functions (the attacks have their own contract tests)."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats
from torch import nn

from advlens import alignment, attacks, cka, features, inversion, resample, stats, transfer
from advlens.checkpoints import load_checkpoint
from advlens.data.cifar import cifar10
from advlens.data.clickme import clickme
from advlens.data.imagefolder import imagefolder
from advlens.papers import linsley2023, su2018
from data_writers import write_cifar, write_png


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _images(n: int = 5) -> np.ndarray:
    return np.random.default_rng(0).random((n, 1, 4, 4))  # float64, as NumPy makes them


# ------------------------------------------------------------------------ NaN in, NaN or error out
def test_spearman_of_a_map_holding_nan_is_nan_as_scipys() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 12)), rng.random((2, 12))
    b[0, 3] = np.nan
    rho = alignment.spearman(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert np.isnan(rho[0]) and np.isnan(scipy_stats.spearmanr(a[0], b[0]).statistic)
    np.testing.assert_allclose(rho[1], scipy_stats.spearmanr(a[1], b[1]).statistic, rtol=1e-12)
    ranks = alignment.rankdata(torch.from_numpy(b)).numpy()
    np.testing.assert_array_equal(ranks, scipy_stats.rankdata(b, axis=1))  # NaN row, and not


def test_clickme_npz_refuses_nan_and_scales_integer_images_by_their_dtype(tmp_path: Path) -> None:
    dark = np.zeros((8, 8, 3), np.uint8)
    dark[0, 0] = 1  # largest value 1: still 0–255 pixels, not [0, 1] floats
    heat = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    np.savez(tmp_path / "a.npz", image=dark, heatmap=heat, label=2)
    data = clickme(tmp_path, size=8, blur=False, progress=False)
    assert float(data.images.max()) == pytest.approx(1 / 255)
    heat[2, 2] = np.nan
    np.savez(tmp_path / "a.npz", image=dark, heatmap=heat, label=2)
    with pytest.raises(ValueError, match="heatmap holds 1 NaN or inf values"):
        clickme(tmp_path, size=8, blur=False, progress=False)


def test_alpha_refuses_nan_changes_and_takes_numpy() -> None:
    rng = np.random.default_rng(0)
    d_ss, d_st, d_tt = rng.normal(size=(3, 6, 4))
    value = transfer.alpha2_from_changes(d_ss, d_st)  # NumPy arrays: an AttributeError before
    assert value == pytest.approx(transfer.alpha2_from_changes(torch.from_numpy(d_ss),
                                                               torch.from_numpy(d_st)))
    d_st[1] = np.nan
    for fn, args in ((transfer.alpha2_from_changes, (d_ss, d_st)),
                     (transfer.alpha1_from_changes, (d_st, d_tt)),
                     (transfer.alpha_combined_from_changes, (d_ss, d_st, d_tt))):
        with pytest.raises(ValueError, match=r"d_source_target holds NaN or inf on 1 image"):
            fn(*args)
    with pytest.raises(ValueError, match="of one shape"):
        transfer.alpha1_from_changes(d_tt, d_tt[:, :3])


def test_linear_fit_refuses_nan_and_names_its_options() -> None:
    x, y = np.arange(5.0), np.arange(5.0) * 2
    y[2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf in y \(at positions \[2\]\)"):
        stats.linear_fit(x, y)
    with pytest.raises(ValueError, match="n_boot must be an int >= 1"):
        stats.linear_fit(x, x, n_boot=0)
    with pytest.raises(ValueError, match=r"level is a fraction in \(0, 1\)"):
        stats.bootstrap_ci(x, level=95)
    with pytest.raises(ValueError, match="an array of at least one value"):
        stats.bootstrap_ci(3.0)


# ---------------------------------------------------------------------- shapes, dtypes, flags
@pytest.mark.parametrize("call", [
    lambda m, x, y: features.accuracy(m, x, y), lambda m, x, y: alignment.saliency(m, x, y),
    lambda m, x, y: linsley2023.correct(m, x, y)])
def test_a_one_logit_binary_model_is_told_to_return_two_logits(call: object) -> None:
    """Labels 0/1 against a model of one output (a binary classifier's logit): the error said
    "Relabel the classes 0..0", which would make the task one class."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"got 0\.\.1\. For a binary classifier with one logit z, "
                                         r"return two: torch\.cat\(\[-z, z\], dim=1\) / 2"):
        call(model, x, y)  # type: ignore[operator]


def test_accuracy_refuses_labels_of_another_shape() -> None:
    model, x = _mlp(), _images()
    y = features.predict(model, x).argmax(1)
    assert features.accuracy(model, x, y) == 1.0
    for bad in (y[:, None], y[:1]):  # broadcast before: 0.28 and 0.12 for a perfect model
        with pytest.raises(ValueError, match=r"y must have shape \(5,\)"):
            features.accuracy(model, x, bad)
        with pytest.raises(ValueError, match=r"y must have shape \(5,\)"):
            linsley2023.correct(model, x, bad)


def test_float64_images_meet_a_float32_model() -> None:
    model, x = _mlp(), _images()
    expected = model(torch.from_numpy(x).float())
    torch.testing.assert_close(features.predict(model, x), expected.detach())
    assert features.representation(model, x).shape == (5, 8)
    with pytest.raises(ValueError, match="x is an empty batch"):
        features.predict(model, x[:0])
    with pytest.raises(ValueError, match="batch_size must be an int >= 1; got 0"):
        features.representation(model, x, batch_size=0)


def _attack_inputs() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = _mlp()
    x = torch.from_numpy(_images(3)).float()
    return model, x, model(x).argmax(1).detach()


@pytest.mark.parametrize("call", [
    lambda: cka.linear_cka(np.eye(6), np.eye(6), debiased="False"),
    lambda: cka.cka_matrix({"a": np.eye(6), "b": np.eye(6)}, debiased="no"),
    lambda: transfer.alpha2_from_changes(np.eye(3), np.eye(3), squared="False"),
    # each of these ran as if True: a random start, an early abort, FISTA, a linear start,
    # merged checks, per-image ratios instead of the mean, the unfiltered transfer rate,
    # Spearman instead of Pearson, a saliency map with a graph and unchecked images
    lambda: attacks.pgd(*_attack_inputs(), eps=0.1, steps=1, random_start="False"),
    lambda: attacks.cw_l2(*_attack_inputs(), binary_steps=1, steps=1, abort_early="False"),
    lambda: attacks.ead(*_attack_inputs(), binary_steps=1, steps=1, fista="False"),
    lambda: attacks.ead(*_attack_inputs(), binary_steps=1, steps=1, abort_early="False"),
    lambda: attacks.ddn(*_attack_inputs(), steps=1, loss="margin", linear_start="False"),
    lambda: attacks.fab(*_attack_inputs(), steps=2, merge_checks="False"),
    lambda: transfer.alpha1_from_changes(np.ones((3, 2)), np.ones((3, 2)), per_sample="False"),
    lambda: transfer.alpha1(_mlp(), _mlp(), torch.rand(3, 1, 4, 4), per_sample="False"),
    lambda: transfer.transfer_matrix({"a": _attack_inputs()[0]}, *_attack_inputs()[1:],
                                     only_successful="False"),
    lambda: stats.permutation_p([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.5], rank="False"),
    lambda: alignment.saliency(*_attack_inputs(), create_graph="False"),
])
def test_a_string_flag_is_refused_not_read_as_true(call) -> None:  # noqa: ANN001
    with pytest.raises(TypeError, match="must be True or False; got '"):
        call()


def test_the_flags_still_take_booleans_numpys_included() -> None:
    """The reference: a NumPy bool is the bool it holds (as check_bool takes it)."""
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.5])
    assert stats.permutation_p(x, y, rank=np.bool_(True)) == stats.permutation_p(x, y, rank=True)
    d = np.random.default_rng(0).random((3, 2)) + 0.1
    assert transfer.alpha1_from_changes(d, d, per_sample=np.bool_(False)) == pytest.approx(1.0)


def test_su_distortion_refuses_flags_that_are_not_booleans() -> None:
    norms = [0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="success must hold booleans"):
        su2018.distortion(norms, ["True", "False", "False"])  # every string was True
    with pytest.raises(ValueError, match="success must hold booleans"):
        su2018.distortion(norms, [0.9, 0.2, 0.1])
    as_ints = su2018.distortion(norms, [1, 0, 0])
    assert as_ints == su2018.distortion(norms, [True, False, False])


def test_invert_refuses_a_step_size_it_cannot_take() -> None:
    model, x = _mlp(), torch.rand(2, 1, 4, 4)
    for bad in (float("nan"), -0.1, 0.0):
        with pytest.raises(ValueError, match="step_size must be finite and > 0"):
            inversion.invert(model, x, x.flip(0), iterations=2, step_size=bad)
    for bad in ("0.1", True):  # float() read the string as 0.1
        with pytest.raises(TypeError, match="step_size must be a number"):
            inversion.invert(model, x, x.flip(0), iterations=2, step_size=bad)
    with pytest.raises(TypeError, match="use_best must be True or False"):
        inversion.invert(model, x, x.flip(0), iterations=2, use_best="False")


# ---------------------------------------------------------------------------------- data files
def test_imagefolder_reads_16_bit_images_and_refuses_float_ones(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    Image.fromarray(np.full((4, 4), 30000, np.uint16)).save(tmp_path / "a" / "wide.png")
    write_png(tmp_path / "b" / "x.png", np.full((4, 4, 3), 128, np.uint8))
    (tmp_path / "b" / "._x.png").write_bytes(b"macOS metadata")  # skipped, not "corrupt"
    data = imagefolder(tmp_path, progress=False)
    assert len(data) == 2
    # 30000/65535 on 8 bits (saturated at 1.0 before)
    assert float(data.images[0].mean()) == pytest.approx(round(30000 / 65535 * 255) / 255)
    with pytest.raises(ValueError, match="n must be None \\(all\\) or an int >= 1; got 0"):
        imagefolder(tmp_path, n=0, progress=False)
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "a" / "f.tif")
    with pytest.raises(ValueError, match="its pixels are floats .*range is unknown"):
        imagefolder(tmp_path, progress=False)


def test_cifar_refuses_pixels_that_are_not_bytes(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    with pytest.raises(ValueError, match="n must be None \\(all\\) or an int >= 1; got -3"):
        cifar10("test", tmp_path, n=-3)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = pickle.loads(path.read_bytes())
    batch[b"data"] = batch[b"data"] / 255.0  # floats in [0, 1]: all zeros before
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="'data' is float64 .*expected uint8 pixels"):
        cifar10("test", tmp_path)


@pytest.mark.parametrize("name,body,shown", [
    ("w.pt", "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n",
     "a Git LFS pointer"),
    ("w.pt", "<!DOCTYPE html><html><body>sign in</body></html>", "an HTML page"),
    ("w.pt", "", "is empty"),
    ("w.safetensors", "not a header at all", "not a readable safetensors file"),
])
def test_a_checkpoint_placeholder_is_named_not_called_untrusted(tmp_path: Path, name: str,
                                                                body: str, shown: str) -> None:
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(ValueError, match=shown):
        load_checkpoint(path, trust=False)


def test_a_tfrecord_length_beyond_the_file_is_refused_before_reading(tmp_path: Path) -> None:
    from advlens.data.tfrecord import read_records

    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"\xff" * 8 + b"\x00" * 8)  # a length of 2**64 - 1, not a TFRecord
    with pytest.raises(ValueError, match="claims 18446744073709551615 bytes, more than the file "
                                         "holds \\(16 bytes\\)"):
        list(read_records(path, verify=False))  # a MemoryError / OverflowError before


def test_invert_names_a_representation_that_is_not_finite() -> None:
    class NaNHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.fc = nn.Flatten(), nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.body(x) * float("nan"))

    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"positions \[0, 1\] have a representation holding NaN"):
        inversion.invert(NaNHead(), x, x.flip(0), iterations=1)


def test_saliency_takes_float64_images_for_a_float32_model() -> None:
    model, x = _mlp(), _images(3)
    y = features.predict(model, x).argmax(1)
    torch.testing.assert_close(alignment.saliency(model, x, y),
                               alignment.saliency(model, torch.from_numpy(x).float(), y))


def test_read_json_names_a_binary_file(tmp_path: Path) -> None:
    from advlens.io import read_json

    path = tmp_path / "x.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match=r"x\.json is not valid JSON"):
        read_json(path)


def _no_inversion(*args: object, **kwargs: object) -> None:
    raise AssertionError("the inversion ran before the inputs were checked")


def test_stir_checks_its_inputs_before_inverting(monkeypatch: pytest.MonkeyPatch) -> None:
    import advlens.stir

    monkeypatch.setattr(advlens.stir, "invert", _no_inversion)
    model = _mlp()
    with pytest.raises(ValueError, match="at least 4 images \\(debiased CKA\\); got 3"):
        advlens.stir.stir(model, model, torch.rand(3, 1, 4, 4), debiased=True)
    with pytest.raises(TypeError, match="debiased must be True or False"):
        advlens.stir.stir(model, model, torch.rand(6, 1, 4, 4), debiased="False")


def test_stir_runs_m2_on_the_images_before_inverting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt layer2, or an m2 that cannot take x, fails before the inversion through m1
    (which takes thousands of steps at the paper's settings), not after it."""
    import advlens.stir

    monkeypatch.setattr(advlens.stir, "invert", _no_inversion)
    model, x = _mlp(), torch.rand(6, 1, 4, 4)
    with pytest.raises(ValueError, match="no module named 'fc'"):
        advlens.stir.stir(model, model, x, layer2="fc")
    wider = nn.Sequential(nn.Flatten(), nn.Linear(48, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        advlens.stir.stir(model, wider, x)


def test_alpha2_checks_its_flag_before_attacking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "_pair", _no_inversion)
    with pytest.raises(TypeError, match="squared must be True or False"):
        transfer.alpha2(_mlp(), _mlp(), torch.rand(4, 1, 4, 4), squared="False")


class _HalfBody(nn.Module):
    """bf16 weights, float32 logits: the model casts its input itself."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _mlp().bfloat16()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.bfloat16()).float()


class _Tempered(nn.Module):
    """A float64 temperature registered before a float32 body (mixed dtypes)."""

    def __init__(self) -> None:
        super().__init__()
        self.t = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
        self.net = _mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).double() / self.t


@pytest.mark.parametrize("make", [_HalfBody, _Tempered])
def test_float32_images_reach_a_model_that_handles_its_own_dtypes_unchanged(make) -> None:  # noqa: ANN001
    """A model of mixed dtypes gets float32 images as they are: never cast to half precision,
    nor up to a first parameter's float64 (only a model all in float64 takes them in float64)."""
    from advlens import attacks

    model, x = make(), torch.rand(4, 1, 4, 4)
    y = features.predict(model, x).argmax(1)
    r = attacks.ddn(model, x, y, steps=5)
    assert r.adv.dtype == torch.float32 and features.predict(model, x).shape == (4, 3)


def test_float32_images_reach_a_float64_model_in_float64() -> None:
    """A model all in float64 failed on float32 images in its first layer ("mat1 and mat2 must
    have the same dtype"): in the attacks, predict and representation alike."""
    from advlens import attacks

    model, x = _mlp().double(), torch.rand(4, 1, 4, 4)
    y = features.predict(model, x).argmax(1)
    r = attacks.ddn(model, x, y, steps=5)
    assert r.adv.dtype == torch.float64 and features.representation(model, x).dtype == torch.float64


def test_numpy_and_tensor_numbers_are_taken_where_python_ones_are() -> None:
    from advlens.probes import linear_probe

    model, x = _mlp(), torch.rand(4, 1, 4, 4)
    assert features.predict(model, x, batch_size=np.int64(2)).shape == (4, 3)
    y = torch.tensor([0, 1, 2, 0])
    assert linear_probe(model, x, y, x, y, num_classes=np.int64(4), epochs=1).model is not None
    inversion.invert(model, x, x.flip(0), iterations=1, step_size=np.float32(0.1))
    assert su2018.distortion([0.1, 0.2], [1.0, 0.0]) == su2018.distortion([0.1, 0.2],
                                                                          [True, False])


def test_a_probe_names_an_empty_split() -> None:
    from advlens.probes import linear_probe

    model, x = _mlp(), torch.rand(4, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="the val split is empty"):
        linear_probe(model, x, y, x[:0], y[:0])
    with pytest.raises(ValueError, match="num_classes must be None or an int >= 2; got 0"):
        linear_probe(model, x, y, x, y, num_classes=0)


def test_minibatch_cka_refuses_a_representation_that_changes_width() -> None:
    rng = np.random.default_rng(0)
    mb = cka.MinibatchCKA()
    mb.update({"a": rng.random((6, 8)), "b": rng.random((6, 5))})
    with pytest.raises(ValueError, match=r"batch\['a'\] has 12 features but earlier batches had 8"):
        mb.update({"a": rng.random((6, 12)), "b": rng.random((6, 5))})
    with pytest.raises(ValueError, match=r"batch\['a'\] must be a \(b, d\) representation; got "
                                         r"shape \(\)"):
        mb.update({"a": 5, "b": rng.random((6, 5))})


def test_fine_tune_takes_float64_images_for_a_float32_model() -> None:
    from advlens.probes import fine_tune

    model, x = _mlp(), _images(6)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    wide = fine_tune(model, x, y, x, y, epochs=1)
    narrow = fine_tune(model, torch.from_numpy(x).float(), y, torch.from_numpy(x).float(), y,
                       epochs=1)
    assert wide.val_acc == narrow.val_acc and wide.history == narrow.history


def test_empty_batches_are_named() -> None:
    from advlens.probes import train_val_split

    with pytest.raises(ValueError, match="empty batches"):
        alignment.spearman_alignment(torch.zeros(0, 3, 4, 4), torch.zeros(0, 4, 4))
    with pytest.raises(ValueError, match="y is empty"):
        train_val_split(torch.zeros(0, dtype=torch.long))
    # images of no pixels: torch's "min(): Expected reduction dim to be specified" before
    with pytest.raises(ValueError, match=r"x have no pixels \(shape \(2, 1, 0, 4\)\)"):
        alignment.saliency(_mlp(), torch.zeros(2, 1, 0, 4), torch.zeros(2, dtype=torch.long))


def test_images_holding_nan_are_counted_and_the_way_out_named() -> None:
    from advlens.checks import check_images

    x = torch.rand(4, 1, 3, 3)
    x[1, 0, 0, 0] = float("nan")
    x[3, 0, 2, 1] = float("inf")
    with pytest.raises(ValueError, match=r"x contain NaN or inf values \(2 of 4 images\); drop"):
        check_images(x, "x")
    colour = torch.rand(2, 3, 3, 3)
    colour[0, :2, 1, 1] = float("nan")  # one image, bad in two channels: counted once
    with pytest.raises(ValueError, match=r"\(1 of 2 images\)"):
        check_images(colour, "x")


@pytest.mark.parametrize("bad", [[0.0, 1.0], [0.5, 1.7], [True, False], [1, False]])
def test_label_lists_of_floats_or_booleans_are_refused(bad: list) -> None:
    """A list of labels must hold ints (NumPy's included): floats were truncated by int(), and
    booleans are a mask, not labels; a list of ints is taken as is."""
    from advlens.checks import check_labels

    with pytest.raises(ValueError, match="y must be integer class indices; got"):
        check_labels(bad, 2, "y")
    assert torch.equal(check_labels([np.int64(2), 0], 2, "y"), torch.tensor([2, 0]))


def test_labels_that_are_no_class_index_are_refused() -> None:
    """A boolean mask (``y == 3``), 1-based or negative labels: accuracy and correct compared
    them with the predictions (a silently wrong accuracy: 0.0 for shifted labels), saliency
    failed inside gather (a device-side assert on CUDA); each is now named. The reference: a
    model is right on every image when given its own predictions as labels."""
    model, x = _mlp(), _images()
    y = features.predict(model, x).argmax(1)
    assert features.accuracy(model, x, y) == 1.0 and bool(linsley2023.correct(model, x, y).all())
    assert alignment.saliency(model, x, y).shape == (5, 4, 4)
    with pytest.raises(ValueError, match="y must be integer class indices; got dtype torch.bool"):
        features.accuracy(model, x, y == 1)
    with pytest.raises(ValueError, match="got dtype torch.bool"):
        alignment.saliency(model, x, (y == 1).numpy())
    for bad, span in ((y + 3, rf"{int(y.min()) + 3}\.\.{int(y.max()) + 3}"),
                      (y - 3, rf"{int(y.min()) - 3}\.\.{int(y.max()) - 3}")):
        for call in (features.accuracy, linsley2023.correct, alignment.saliency):
            with pytest.raises(ValueError, match=rf"y must be class indices in 0\.\.2 \(the "
                                                 rf"model has 3 outputs\); got {span}"):
                call(model, x, bad)


# ----------------------------------------- numbers, counts and seeds named (fuzzing the public API)
@pytest.mark.parametrize("call, message", [
    # each failed on a comparison or inside torch / numpy, naming neither the argument nor value
    (lambda v: cka.rbf_cka(np.eye(4), np.eye(4)[::-1], threshold=v), "threshold must be a number"),
    (lambda v: alignment.top_k_dice(torch.rand(2, 4, 4), torch.rand(2, 4, 4), percentile=v),
     "percentile must be a number"),
    (lambda v: alignment.standardize_cut(torch.rand(2, 4, 4), eps=v), "eps must be a number"),
    (lambda v: transfer.ifgsm(eps=v, steps=5), "eps must be a number"),
    (lambda v: transfer.liang_pgd(step_fraction=v), "step_fraction must be a number"),
    (lambda v: inversion.invert(_mlp(), torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4),
                                iterations=1, momentum=v, progress=False),
     "momentum must be a number"),
    (lambda v: attacks.fmn(*_attack_inputs(), steps=1, max_step=v), "max_step must be a number"),
])
@pytest.mark.parametrize("bad", ["0.5", True])  # a string; a flag is no number (True read as 1)
def test_a_number_that_is_a_string_or_a_flag_is_named(call, message: str, bad: object) -> None:  # noqa: ANN001
    with pytest.raises(TypeError, match=message):
        call(bad)


def test_stats_name_a_level_or_seed_they_cannot_take() -> None:
    x = np.arange(8.0)
    for bad in ("0.95", True):
        with pytest.raises(ValueError, match=r"level is a fraction in \(0, 1\)"):
            stats.bootstrap_ci(x, n_boot=10, level=bad)
    for bad in ("1", 2.5, -1, True):  # numpy named neither; 2.5 is no seed
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            stats.linear_fit(x, x[::-1].copy(), n_boot=10, seed=bad)
    # exact test: the seed is unused there, and was never checked
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        stats.permutation_p(x[:4], x[:4], seed="0")


def test_a_seed_or_count_that_is_no_int_is_named_not_truncated() -> None:
    """torch.manual_seed took int(seed): "3" as 3, 2.5 as 2; nn.Linear failed on 3.0 classes."""
    import advlens.stir
    from advlens.probes import replace_head, train_val_split

    for bad in ("3", 2.5, True):
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            replace_head(_mlp(), 4, seed=bad)
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            train_val_split(torch.arange(10) % 2, seed=bad)
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            inversion.draw_pairs(torch.arange(6) % 2, 2, seed=bad)
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            advlens.stir.noise_seeds(torch.rand(2, 1, 4, 4), seed=bad)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        replace_head(_mlp(), 3.0)
    for bad in (2.5, -1, True):  # 2.5 failed inside torch; -1 and True ran as 0 and 1 levels
        with pytest.raises(ValueError, match="levels must be an int >= 0"):
            alignment.pyramid(torch.rand(2, 8, 8), levels=bad)
    for bad in ("8", 8.0, 0, True):
        with pytest.raises(ValueError, match="side must be an int >= 1"):
            resample.images_to_side(torch.rand(2, 1, 4, 4), bad)
        with pytest.raises(ValueError, match="side must be an int >= 1"):
            resample.maps_to_side(torch.rand(2, 4, 4), bad)


def test_the_attack_settings_refuse_a_flag_for_a_number() -> None:
    with pytest.raises(TypeError, match="eps must be a number, not a boolean; got True"):
        attacks.pgd(*_attack_inputs(), eps=True, steps=1)  # ran as an L2 radius of 1
    with pytest.raises(TypeError, match="lr must be a number, not a boolean"):
        attacks.cw_l2(*_attack_inputs(), binary_steps=1, steps=1, lr=True)


# -------------------------------------- arrays and edge shapes of the map and loss utilities
def test_rank_utilities_take_numpy_and_name_bad_shapes() -> None:
    """NumPy arrays failed in ``sort(dim=...)``; a row-count mismatch broadcast inside torch."""
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 10)), rng.random((3, 10))
    expected = [scipy_stats.spearmanr(a[i], b[i]).statistic for i in range(3)]
    np.testing.assert_allclose(alignment.spearman(a, b).numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(alignment.rankdata(a).numpy(), scipy_stats.rankdata(a, axis=1))
    with pytest.raises(ValueError, match="a and b must hold the same number of rows"):
        alignment.spearman(torch.from_numpy(a[:2]), torch.from_numpy(b))
    for bad in (torch.tensor(0.5), torch.zeros(0, 10)):
        with pytest.raises(ValueError, match="values must hold at least one row"):
            alignment.rankdata(bad)
    with pytest.raises(ValueError, match="rep and target_rep must be"):
        inversion.relative_distance(torch.rand(3, 4), torch.rand(2, 4))
    d = np.random.default_rng(1).random((4, 3)) + 0.1
    with pytest.raises(ValueError, match="logit changes must be"):
        transfer.alpha1_from_changes(torch.tensor(1.0), torch.from_numpy(d))


def test_maps_to_side_takes_numpy_maps_and_names_an_empty_batch() -> None:
    maps = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    torch.testing.assert_close(resample.maps_to_side(maps, 4),
                               resample.maps_to_side(torch.from_numpy(maps), 4))
    with pytest.raises(ValueError, match="maps must be a non-empty"):
        resample.maps_to_side(torch.zeros(0, 8, 8), 4)


def test_half_precision_images_meet_a_float32_model() -> None:
    """float16 / bfloat16 images are exact in float32; they failed in the first layer
    ("mat1 and mat2 must have the same dtype"). Reference: the model in float64 on the same
    pixel values."""
    model = _mlp()
    x = torch.from_numpy(_images(5))
    reference = copy.deepcopy(model).double()
    for dtype in (torch.float16, torch.bfloat16):
        xh = x.to(dtype)
        expected = reference(xh.double()).float()
        torch.testing.assert_close(features.predict(model, xh), expected, rtol=1e-5, atol=1e-5)
        y = expected.argmax(1)
        assert features.accuracy(model, xh, y) == 1.0
        assert alignment.saliency(model, xh, y).dtype == torch.float32


def test_a_per_image_list_is_taken_where_a_tensor_is() -> None:
    """pgd's eps and fmn's max_step as lists passed their checks, then failed in the default
    step's arithmetic ("can't multiply sequence by non-int of type 'float'", "unsupported
    operand type(s) for /: 'list' and 'int'"), naming neither."""
    from advlens import attacks

    model, x = _mlp(), torch.rand(4, 1, 4, 4)
    y = features.predict(model, x).argmax(1)
    for kw in ({"eps": [0.1] * 4}, {"eps": (0.1,) * 4}):
        as_list = attacks.pgd(model, x, y, norm="linf", steps=3, **kw)
        as_tensor = attacks.pgd(model, x, y, norm="linf", steps=3, eps=torch.full((4,), 0.1))
        assert torch.equal(as_list.adv, as_tensor.adv)
    as_list = attacks.fmn(model, x, y, norm="linf", steps=5, max_step=[0.1] * 4)
    as_tensor = attacks.fmn(model, x, y, norm="linf", steps=5, max_step=torch.full((4,), 0.1))
    assert torch.equal(as_list.adv, as_tensor.adv)


@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf")])
@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_project_ball_refuses_a_radius_that_is_no_ball(eps: float, norm: str) -> None:
    """A negative radius gave a constant +0.1 (L∞), a flipped δ (L2) or 0 (L1); NaN gave NaN."""
    from advlens.attacks.norms import project_ball

    with pytest.raises(ValueError, match="eps must be finite and >= 0"):
        project_ball(torch.randn(2, 3), eps, norm)


class _NeverRun(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("no model may run before the arguments are checked")


def _misspelt_sides_calls() -> list:
    from advlens.data import ImageSet

    x = torch.rand(4, 1, 6, 6)
    y = torch.zeros(4, dtype=torch.long)
    data = ImageSet(x, y, torch.rand(4, 1, 6, 6), ["0", "1"], "toy")
    models = {"alpha": _NeverRun()}
    bad = {"alhpa": 8}
    return [
        lambda: transfer.transfer_matrix(models, x, y, sides=bad),
        lambda: su2018.attack_suite(models, x, y, settings=su2018.SuiteSettings(), sides=bad),
        lambda: linsley2023.model_table(models, data, data.masks[:, 0], accuracy={"alpha": 1.0},
                                        sides=bad),
        lambda: linsley2023.saliency_alignment(models, data, data.masks[:, 0], human_maps=False,
                                               sides=bad),
    ]


@pytest.mark.parametrize("index", range(4))
def test_a_misspelt_model_name_in_sides_is_refused_before_anything_runs(index: int) -> None:
    """A ``sides`` key that names no model was silently ignored: that model ran, and had its
    distortions measured, at the images' side instead of its own."""
    with pytest.raises(ValueError, match=r"sides names no model \['alhpa'\]; the models are "
                                         r"\['alpha'\]"):
        _misspelt_sides_calls()[index]()
