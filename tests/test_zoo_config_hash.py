"""The zoo's cache key: fields added after the first release are hashed only when non-default."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from advlens.io import config_hash
from advlens.zoo import config as zoo_config
from advlens.zoo.config import ModelConfig, data_version


def _hash_of_every_field(cfg: ModelConfig) -> str:
    """The key as the first release computed it: every field hashed."""
    return config_hash({"config": cfg.to_dict(), "code": zoo_config.TRAINING_CODE_VERSION,
                        "data": data_version(cfg.dataset)})


def test_without_later_fields_every_field_is_hashed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoo_config, "LATER_FIELDS", ())
    cfg = ModelConfig(arch="cnn-s", seed=3)
    assert cfg.hash == _hash_of_every_field(cfg)


def test_later_field_at_default_keeps_the_old_key(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ModelConfig(arch="cnn-s", seed=3)
    before = cfg.to_dict()
    field = "tag"  # stands in for a field added later
    monkeypatch.setattr(zoo_config, "LATER_FIELDS", (field,))
    without = {k: v for k, v in before.items() if k != field}
    expected = config_hash({"config": without, "code": zoo_config.TRAINING_CODE_VERSION,
                            "data": data_version(cfg.dataset)})
    assert cfg.hash == expected
    changed = dataclasses.replace(cfg, tag="x")
    assert changed.hash != cfg.hash
    assert changed.hash == _hash_of_every_field(changed)


def test_later_fields_are_real_fields() -> None:
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(zoo_config.LATER_FIELDS) <= names


def test_twin_cue_generator_version_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new twin-cue generator must retrain twin-cue models (and only those)."""
    generator = sys.modules["advlens.data.twin_cue"]  # advlens.data.twin_cue is the function
    assert zoo_config.TWIN_CUE_VERSION == generator.GENERATOR_VERSION  # not a stale copy
    twin = ModelConfig(arch="cnn-s", dataset="twin-cue", variant="a-only")
    digits = ModelConfig(arch="cnn-s")
    before = twin.hash, digits.hash
    monkeypatch.setattr(zoo_config, "TWIN_CUE_VERSION", f"{generator.GENERATOR_VERSION}-next")
    assert twin.hash != before[0]
    assert digits.hash == before[1]


def test_config_and_datasets_import_without_a_cycle() -> None:
    """zoo.config must import at top level without reaching back into zoo.datasets."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(zoo_config.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "advlens.zoo.datasets" not in imported
    nested = [n for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
              for n in ast.walk(f) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not nested, "zoo/config.py hides imports inside functions"


def test_an_int_for_a_float_field_is_the_same_model() -> None:
    """eps=1 and eps=1.0 (lr, weights too) name one model: one cache key, and the stored
    config holds floats."""
    as_int = ModelConfig(arch="cnn-s", regime="l2-at", eps=1, lr=1, harmonizer_weight=0)
    as_float = ModelConfig(arch="cnn-s", regime="l2-at", eps=1.0, lr=1.0,
                           harmonizer_weight=0.0)
    assert as_int.hash == as_float.hash
    assert isinstance(as_int.eps, float) and isinstance(as_int.harmonizer_weight, float)


def test_a_numpy_int_for_a_float_field_is_the_same_model() -> None:
    """eps from np.arange (np.int64) is the model eps=1.0 names: the same cache key."""
    import numpy as np

    from_numpy = ModelConfig(arch="cnn-s", regime="l2-at", eps=np.arange(1, 2)[0],
                             lr=np.int32(1))
    as_float = ModelConfig(arch="cnn-s", regime="l2-at", eps=1.0, lr=1.0)
    assert from_numpy == as_float and from_numpy.hash == as_float.hash
    assert type(from_numpy.eps) is float and type(from_numpy.lr) is float


def test_regime_params_are_refused() -> None:
    """No training regime reads regime_params: a value only moved the cache key, so the same
    model was trained again under another (review: the field was never used)."""
    with pytest.raises(ValueError, match="regime_params must be empty.*No training regime"):
        ModelConfig(arch="cnn-s", regime="l2-at", eps=1.0, regime_params=(("beta", 6.0),))
    stored = ModelConfig(arch="cnn-s").to_dict()
    assert stored["regime_params"] == [] and ModelConfig.from_dict(stored).regime_params == ()
    as_list = ModelConfig(arch="cnn-s", regime_params=[])  # (as a knob dict gives it)
    assert as_list == ModelConfig(arch="cnn-s") and hash(as_list) == hash(ModelConfig("cnn-s"))


def test_a_float_field_refuses_a_bool_or_a_string_and_minus_zero_is_zero() -> None:
    """eps=True passed the l2-at check as the model at1 under another cache key than eps=1.0
    (the two configs compare equal); eps="0.5" failed with "'<' not supported between int and
    str"; weight_decay=-0.0 and 0.0 (equal) had two keys."""
    # (lr "3e-3": PyYAML reads 3e-3 as a string)
    for field, value in (("eps", True), ("eps", "0.5"), ("lr", "3e-3"), ("lr", None),
                         ("weight_decay", False)):
        with pytest.raises(TypeError, match=f"{field} must be a number; got {value!r}"):
            ModelConfig(arch="cnn-s", regime="l2-at", **{"eps": 1.0, field: value})
    minus = ModelConfig(arch="cnn-s", weight_decay=-0.0, eps=-0.0)
    plus = ModelConfig(arch="cnn-s", weight_decay=0.0, eps=0.0)
    assert minus == plus and minus.hash == plus.hash


def test_a_numpy_float32_in_a_float_field_is_stored_as_a_python_float() -> None:
    """np.float32(0.1) kept its NumPy type (its key was already that of its value as a float)."""
    import numpy as np

    single = ModelConfig(arch="cnn-s", regime="l2-at", eps=np.float32(0.1), lr=np.float32(3e-3))
    assert type(single.eps) is float and type(single.lr) is float
    assert single.eps == float(np.float32(0.1))
    assert single == ModelConfig(arch="cnn-s", regime="l2-at", eps=float(np.float32(0.1)),
                                 lr=float(np.float32(3e-3)))


def test_an_integral_float_for_an_int_field_is_the_same_model() -> None:
    """epochs=1.0 / n_train=64.0 (a YAML or papermill parameter) crashed in training (range,
    slicing) under a cache key of their own; they are the int config, stored as ints."""
    import numpy as np

    as_int = ModelConfig("mlp-s", regime="l2-at", eps=1.0, epochs=1, seed=2, data_seed=3,
                         n_train=64, n_test=32, batch_size=16, attack_steps=4)
    as_float = ModelConfig("mlp-s", regime="l2-at", eps=1.0, epochs=1.0, seed=2.0,
                           data_seed=np.int64(3), n_train=np.float32(64), n_test=32.0,
                           batch_size=16.0, attack_steps=4.0)
    assert as_float == as_int and as_float.hash == as_int.hash
    assert all(type(getattr(as_float, k)) is int
               for k in ("epochs", "seed", "data_seed", "n_train", "n_test", "batch_size"))


@pytest.mark.parametrize("kw", [{"seed": 0.5}, {"epochs": 2.5}, {"epochs": True},
                                {"n_train": float("nan")}, {"batch_size": "32"}])
def test_a_non_integer_for_an_int_field_is_refused_naming_it(kw: dict) -> None:
    with pytest.raises(ValueError, match=f"ModelConfig.{next(iter(kw))} must be an integer"):
        ModelConfig("mlp-s", **kw)


@pytest.mark.parametrize("kw", [{"n_train": -5}, {"n_test": 0}])
def test_a_count_below_one_is_refused(kw: dict) -> None:
    """n_train=-5 trained on every digit but 5 (randperm(n)[:-5]); n_test=0 failed only after
    the model was trained."""
    with pytest.raises(ValueError, match=f"{next(iter(kw))} must be None .* or >= 1"):
        ModelConfig("mlp-s", **kw)


@pytest.mark.parametrize(("kw", "says"), [
    ({"arch": "densenet161"}, "published checkpoint's architecture"),
    ({"n_train": 1}, r"n_train must be None \(every image\) or >= 2"),
    ({"checkpoint": "foo.pt"}, "checkpoint='foo.pt' names a published"),
    ({"attack_steps": 3}, r"\['attack_steps'\] set the PGD of adversarial training"),
    ({"attack_step_factor": 1.0}, r"\['attack_step_factor'\] set the PGD")])
def test_a_trained_config_that_would_fail_late_or_only_move_its_key_is_refused(
        kw: dict, says: str) -> None:
    """A published-only arch or one training image failed only at that model's turn in a
    build, after the models before it trained; a checkpoint or PGD settings on a standard model
    were ignored, giving the same model a second cache key (trained twice)."""
    with pytest.raises(ValueError, match=says):
        ModelConfig(**{"arch": "cnn-s", **kw})
    ModelConfig("cnn-s", regime="l2-at", eps=0.5, attack_steps=3, attack_step_factor=1.0)


@pytest.mark.parametrize(("dataset", "arch", "field", "full"), [
    ("digits", "cnn-s", "n_train", 1400), ("digits", "cnn-s", "n_test", 397),
    ("cifar10", "resnet8", "n_train", 50_000), ("stl10", "resnet8", "n_test", 8_000)])
def test_a_count_of_every_image_is_the_model_of_none_and_above_it_is_refused(
        dataset: str, arch: str, field: str, full: int) -> None:
    """n_train 2,000 on the 1,400 digits trained the model of None under a key of its own."""
    every = ModelConfig(dataset=dataset, arch=arch)
    assert ModelConfig(dataset=dataset, arch=arch, **{field: full}) == every
    assert ModelConfig(dataset=dataset, arch=arch, **{field: full}).hash == every.hash
    assert ModelConfig(dataset=dataset, arch=arch, **{field: full - 1}).hash != every.hash
    with pytest.raises(ValueError, match=f"{field} = {full + 1} is above the {full:,} images"):
        ModelConfig(dataset=dataset, arch=arch, **{field: full + 1})


def test_the_fixed_split_sizes_are_the_loaders_own() -> None:
    from advlens.data import digits
    from advlens.zoo.config import FIXED_SPLIT_SIZES
    from advlens.zoo.datasets import dataset_for

    assert {s: len(digits(s)) for s in FIXED_SPLIT_SIZES["digits"]} == FIXED_SPLIT_SIZES["digits"]
    config = ModelConfig(dataset="digits", arch="cnn-s")
    assert len(dataset_for(config, "train")) == FIXED_SPLIT_SIZES["digits"]["train"]
    twin = ModelConfig(dataset="twin-cue", arch="cnn-s", variant="both", n_train=5000)  # any size
    assert twin.n_train == 5000
