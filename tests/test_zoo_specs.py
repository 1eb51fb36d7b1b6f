"""Zoo presets, configs, the Zoo collection and the paper preset's clear failure."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from advlens.zoo import FAMILIES, ModelConfig, Zoo, ZooEntry, build, load, spec
from advlens.zoo.regimes import DIGITS_AT_RADII


@pytest.mark.parametrize("preset", ["smoke", "laptop", "paper"])
def test_specs_have_unique_names_and_hashes(preset: str) -> None:
    configs = spec(preset)
    assert len({c.name for c in configs}) == len(configs)
    assert len({c.hash for c in configs}) == len(configs)
    for c in configs:
        assert ModelConfig.from_dict(c.to_dict()) == c


def test_laptop_spec_covers_what_the_notebooks_need() -> None:
    configs = spec("laptop")
    digits = [c for c in configs if c.dataset == "digits"]
    standard = [c for c in digits if c.regime == "standard" and c.seed == 0]
    assert set(FAMILIES) <= {c.family for c in standard}
    assert len({c.arch for c in standard}) >= 6
    robust_levels = Counter(c.arch for c in digits if c.regime == "l2-at" and c.seed == 0)
    robust_archs = [a for a, n in robust_levels.items() if n >= len(DIGITS_AT_RADII)]
    assert len({next(c.family for c in digits if c.arch == a) for a in robust_archs}) >= 3
    for arch in robust_archs:  # each robust arch has its standard (eps 0) twin
        assert any(c.arch == arch and c.regime == "standard" for c in digits)
    assert any(c.seed > 0 for c in digits)
    twin = Counter(c.variant for c in configs if c.dataset == "twin-cue")
    assert twin["a-only"] >= 2 and twin["b-only"] >= 1 and twin["both"] >= 1
    assert len({c.arch for c in configs if c.dataset == "twin-cue" and c.variant != "both"}) == 1
    # harmonized twins (notebook 03): >= 3 families on twin-cue and on digits, each with its
    # plain twin (same config but the regime)
    for dataset in ("twin-cue", "digits"):
        harm = [c for c in configs if c.dataset == dataset and c.regime == "harmonized"]
        assert len({c.family for c in harm}) >= 3
        for c in harm:
            plain = c.replace(regime="standard", harmonizer_weight=0.0, importance_map=None)
            assert plain in configs
    # a width spread within the MLP and CNN families for the scaling law
    assert len({c.arch for c in standard if c.family == "mlp"}) >= 4
    assert len({c.arch for c in standard if c.family == "cnn"}) >= 4


def test_smoke_spec_is_tiny() -> None:
    configs = spec("smoke")
    assert all(c.epochs <= 2 for c in configs)
    assert {c.variant for c in configs if c.dataset == "twin-cue"} == {"a-only", "b-only", "both"}
    assert {c.dataset for c in configs if c.regime == "harmonized"} == {"digits", "twin-cue"}


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="smoke, laptop, paper"):
        spec("huge")


@pytest.mark.parametrize("kwargs, message", [
    ({"arch": "no-such-arch"}, "unknown arch"),
    ({"arch": "cnn-s", "regime": "l2-at"}, "eps > 0"),
    ({"arch": "cnn-s", "eps": 0.5}, "standard model has eps 0"),
    ({"arch": "cnn-s", "dataset": "twin-cue"}, "variant"),
    ({"arch": "cnn-s", "variant": "a-only"}, "only for twin-cue"),
    ({"arch": "cnn-s", "regime": "fancy"}, "regime must be"),
    ({"arch": "cnn-s", "family": "mlp"}, "belongs to family"),
    # a harmonized copy of an l2-at config kept its eps: trained with no attack, listed with
    # eps 0.5 and keyed apart from its eps-0 twin
    ({"arch": "cnn-s", "eps": 0.5, "regime": "harmonized", "harmonizer_weight": 0.1,
      "importance_map": "stroke"}, "harmonized model has eps 0"),
    # accepted, then refused at its turn in a build (inf) or trained to NaN weights
    ({"arch": "cnn-s", "regime": "l2-at", "eps": math.inf}, "finite eps > 0"),
    ({"arch": "cnn-s", "regime": "harmonized", "harmonizer_weight": math.inf,
      "importance_map": "stroke"}, "finite harmonizer_weight > 0"),
])
def test_bad_configs_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_names_follow_the_contract() -> None:
    assert ModelConfig("cnn-s", regime="l2-at", eps=0.5).name == "cnn-s/at0.5/s0"
    assert ModelConfig("cnn-m", dataset="twin-cue", variant="a-only",
                       seed=1).name == "twin-cue-a-only/cnn-m/std/s1"
    assert ModelConfig("cnn-s").family == "cnn"
    assert ModelConfig("cnn-s").replace(arch="vit-xs").family == "vit"


def test_paper_load_names_the_missing_checkpoint(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    robust = next(c for c in spec("paper") if c.arch == "resnet50" and c.eps == 3.0)
    monkeypatch.delenv("ADVLENS_CHECKPOINTS", raising=False)
    with pytest.raises(FileNotFoundError, match="ADVLENS_CHECKPOINTS"):
        load(robust, tmp_path)
    monkeypatch.setenv("ADVLENS_CHECKPOINTS", "")  # `export VAR=`: unset, not the current folder
    with pytest.raises(FileNotFoundError, match="set \\$ADVLENS_CHECKPOINTS to the folder"):
        load(robust, tmp_path)
    monkeypatch.setenv("ADVLENS_CHECKPOINTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vgg16.tv_in1k.*resnet50_l2_eps3.ckpt"):
        build("paper", root=tmp_path)  # every missing file is named at once
    (tmp_path / "resnet50_l2_eps3.ckpt").write_bytes(b"")  # present but empty: named, not used
    with pytest.raises(ValueError, match="resnet50_l2_eps3.ckpt is empty, not a checkpoint"):
        load(robust, tmp_path)


def _entry(name: str, **kw) -> ZooEntry:
    config = ModelConfig(**kw)
    return ZooEntry(name, config, nn.Linear(2, 2), {"test_acc": 0.9, "n_params": 6,
                                                    "robust_acc": 0.5, "hash": config.hash,
                                                    "robust_eval": {"eps": 0.5}})


def test_zoo_select_table_and_indexing() -> None:
    zoo = Zoo([_entry("a", arch="cnn-s"), _entry("b", arch="cnn-s", regime="l2-at", eps=1.0),
               _entry("c", arch="mlp-s", seed=1)])
    assert [e.name for e in zoo.select(family="cnn")] == ["a", "b"]
    assert [e.name for e in zoo.select(eps=lambda e: e > 0)] == ["b"]
    assert [e.name for e in zoo.select(arch=["mlp-s", "vit-s"], seed=1)] == ["c"]
    assert zoo["b"].config.eps == 1.0 and "c" in zoo and len(zoo) == 3
    table = zoo.table()
    assert list(table["name"]) == ["a", "b", "c"]
    assert {"name", "family", "arch", "dataset", "regime", "eps", "seed", "params", "test_acc",
            "robust_acc", "train_time_s", "hash"} <= set(table.columns)
    with pytest.raises(KeyError, match="names"):
        zoo["z"]
    with pytest.raises(ValueError, match="unknown selection key"):
        zoo.select(colour="red")
    with pytest.raises(ValueError, match="unique"):
        Zoo([_entry("a", arch="cnn-s"), _entry("a", arch="mlp-s")])
    assert isinstance(zoo.entries[0].model, torch.nn.Module)


def test_laptop_digits_epochs_come_from_one_table() -> None:
    """Every laptop digits model, and notebooks 02's and 04's own digits models, train at the
    epochs of presets.DIGITS_EPOCHS / DIGITS_AT_EPOCHS (measured by benchmarks/bench_epochs.py;
    the zoo had stopped far short of them, typed in three places); twin-cue models at 7."""
    from advlens.presets import DIGITS_AT_EPOCHS, DIGITS_EPOCHS, PRESETS

    for c in spec("laptop"):
        if c.dataset == "twin-cue":
            assert c.epochs == 7, c.name
        elif c.regime == "l2-at":
            assert c.epochs == DIGITS_AT_EPOCHS, c.name
        else:
            assert c.epochs == DIGITS_EPOCHS[c.arch], c.name
    su = PRESETS["02"]["laptop"]
    assert [m["epochs"] for m in su["family_models"] if m["tag"] != "e1"] == \
        [DIGITS_EPOCHS[m["arch"]] for m in su["family_models"] if m["tag"] != "e1"]
    assert su["extra_models"] == [{"arch": "resnet14", "epochs": DIGITS_EPOCHS["resnet8"]}]
    liang = PRESETS["04"]["laptop"]
    assert liang["epochs"] == DIGITS_EPOCHS[liang["arch"]]
    assert liang["b_archs"] == {a: DIGITS_EPOCHS[a] for a in liang["b_archs"]}
