"""Notebooks 01 and 02 require (first cell) exactly the zoo models they build and load."""

from __future__ import annotations

import pytest

from advlens import presets
from advlens.papers import jones2022, su2018
from advlens.paths import notebooks_dir
from advlens.zoo import spec
from advlens.zoo.seeds import reseed


@pytest.mark.parametrize("preset", ["smoke", "laptop", "paper"])
def test_notebook_01_needs_only_the_models_it_builds(preset: str) -> None:
    """The first cell required the whole zoo: at the paper preset 12 timm checkpoints that
    notebook 01 never loads. The build cell's selection, as it was written there."""
    knobs = presets.resolve("01", preset)
    needed = set(knobs["heatmap_archs"]) | set(knobs["robust_archs"])
    built = [c for c in reseed(spec(knobs["zoo"]), knobs["zoo_seed"])
             if c.dataset == knobs["dataset"] and c.arch in needed and c.regime != "harmonized"]
    assert jones2022.zoo_configs(knobs) == built
    if preset == "paper":
        assert len(built) < len(spec(knobs["zoo"]))
        assert all(c.arch in needed for c in built)


@pytest.mark.parametrize("preset", ["smoke", "laptop", "paper"])
def test_notebook_02_needs_only_its_standard_models_and_its_extra_ones(preset: str) -> None:
    """The first cell required the whole zoo: at the paper preset the 41 robust checkpoints
    that notebook 02 never loads."""
    knobs = presets.resolve("02", preset)
    configs = su2018.zoo_configs(knobs)
    assert configs and all(c.regime == "standard" and c.dataset == knobs["dataset"]
                           for c in configs)
    everything = su2018.zoo_configs(knobs, extra=True)
    assert everything[:len(configs)] == configs
    assert len(everything) - len(configs) == len(knobs["extra_models"]) + len(
        knobs["family_models"])
    if preset == "paper":
        assert not any(c.eps > 0 for c in everything)
        assert len(everything) < len(spec(knobs["zoo"]))


@pytest.mark.parametrize("zoo_seed", [0, 2])
def test_notebook_02_loads_the_extra_models_its_first_cell_requires(zoo_seed: int) -> None:
    """The model cells load ``knob_configs``; the first cell requires ``zoo_configs(extra=True)``:
    the same configs, training seeds shifted by ``zoo_seed`` (one place builds both)."""
    from advlens.zoo.config import ModelConfig

    knobs = {**presets.resolve("02", "laptop"), "zoo_seed": zoo_seed}
    extra = su2018.knob_configs(knobs, "extra_models")
    family = su2018.knob_configs(knobs, "family_models")
    assert extra and family
    shifted = [ModelConfig(**kw).seed + 100 * zoo_seed for kw in knobs["extra_models"]]
    assert [c.seed for c in extra] == shifted
    everything = su2018.zoo_configs(knobs, extra=True)
    assert everything[len(everything) - len(extra) - len(family):] == extra + family
    text = (notebooks_dir() / "02_robustness_scaling.ipynb").read_text()
    assert 'knob_configs(P, \\"extra_models\\")' in text
    assert 'knob_configs(P, \\"family_models\\")' in text
