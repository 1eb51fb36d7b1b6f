"""Seed sweeps: batch reruns through the runner, findings aggregated (checked with numpy)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from advlens import findings, sweep
from advlens.zoo import ModelConfig
from advlens.zoo.seeds import SEED_STRIDE, base_seed, reseed, shifted

# A toy notebook: its findings depend on the seeds in a way the test can recompute.
TOY = '''
import json
from pathlib import Path
import pandas as pd
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
value = 0.5 * seed + 0.25 * zoo_seed ** 2
stats = json.dumps({"value": value, "half": value / 2, "missing": None})
pd.DataFrame([{"finding": "f1 even seed", "holds": seed % 2 == 0, "evidence": "toy",
               "statistics": stats},
              {"finding": "f2 untestable", "holds": None, "evidence": "toy", "statistics": ""}]
             ).to_csv(out / "01_findings.csv", index=False)
'''


def _toy_notebooks(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "laptop"\nout_dir = None\nseed = 0\nzoo_seed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(TOY)]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    folder.mkdir()
    nbformat.write(nb, folder / "01_toy.ipynb")
    return folder


def test_encode_decode_statistics_round_trip():
    text = findings.encode_statistics({"a": 1, "b": 0.25, "c": float("nan")})
    assert json.loads(text) == {"a": 1.0, "b": 0.25, "c": None}
    back = findings.decode_statistics(text)
    assert back["a"] == 1.0 and back["b"] == 0.25 and np.isnan(back["c"])
    assert findings.decode_statistics("") == {}
    with pytest.raises(ValueError, match="JSON object"):
        findings.decode_statistics("[1, 2]")


@pytest.mark.slow
def test_sweep_reruns_and_aggregates(tmp_path: Path) -> None:
    notebooks = _toy_notebooks(tmp_path / "nbs")
    seeds = [0, 1, 3]
    done = sweep.run_sweep(seeds, preset="smoke", notebooks=["01", "04"], out=tmp_path / "sw",
                           directory=notebooks)
    assert done.notebooks == ["01"]  # 04 does not exist: left out, not an error
    assert sorted(done.runs["seed"]) == seeds and done.wall_time_s > 0
    record = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert record["knobs"] == ["seed", "zoo_seed"] and record["seeds"] == seeds
    found = sweep.collect(tmp_path / "sw")
    assert len(found) == 2 * len(seeds)
    assert sorted(found.loc[found.finding == "f1 even seed", "seed"]) == seeds
    head = sweep.headline_summary(found).set_index("statistic")
    expected = np.array([0.5 * s + 0.25 * s**2 for s in seeds])  # seed == zoo_seed == s
    assert head.loc["value", "n_runs"] == 3
    assert head.loc["value", "mean"] == pytest.approx(expected.mean())
    assert head.loc["value", "sd"] == pytest.approx(np.std(expected, ddof=1))
    assert head.loc["half", "max"] == pytest.approx(expected.max() / 2)
    assert head.loc["missing", "n_nan"] == 3 and np.isnan(head.loc["missing", "mean"])
    counts = sweep.hold_counts(found).set_index("finding")
    assert counts.loc["f1 even seed"].to_dict() == {
        "notebook": "01_toy", "n_runs": 3, "holds": 1, "does_not_hold": 2, "not_testable": 0}
    assert counts.loc["f2 untestable", "not_testable"] == 3


def test_sweep_refuses_bad_input(tmp_path: Path) -> None:
    notebooks = _toy_notebooks(tmp_path / "nbs")
    with pytest.raises(ValueError, match="two distinct"):
        sweep.run_sweep([1, 1], preset="smoke", notebooks=["01"], out=tmp_path, directory=notebooks)
    with pytest.raises(ValueError, match="none of the notebooks"):
        sweep.run_sweep([0, 1], preset="smoke", notebooks=["07"], out=tmp_path, directory=notebooks)
    with pytest.raises(FileNotFoundError, match="run the sweep first"):
        sweep.collect(tmp_path / "empty")


def test_collect_reads_tables_without_statistics(tmp_path: Path) -> None:
    run = tmp_path / "seed=0-abc"
    (run / "02_x").mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"preset": "smoke", "params": {"seed": 0}}))
    pd.DataFrame([{"finding": "g", "holds": "False", "evidence": "e"}]).to_csv(
        run / "02_x" / "02_findings.csv", index=False)
    found = sweep.collect(tmp_path)
    assert found["verdict"].tolist() == ["does not hold"]
    assert sweep.headline_summary(found).empty


def test_zoo_seeds_shift_every_model_and_invert():
    configs = [ModelConfig("cnn-s"), ModelConfig("cnn-s", seed=1),
               ModelConfig("cnn-s", dataset="twin-cue", variant="a-only")]
    assert reseed(configs, 0) == configs
    moved = reseed(configs, 2)
    assert [c.seed for c in moved] == [2 * SEED_STRIDE, 2 * SEED_STRIDE + 1, 2 * SEED_STRIDE]
    assert len({c.hash for c in moved} | {c.hash for c in configs}) == 6  # no shared model
    assert [base_seed(c.seed, 2) for c in moved] == [0, 1, 0]
    assert shifted(1, 2) == moved[1].seed
    with pytest.raises(ValueError, match="not a model of zoo seed"):
        base_seed(5, 1)
    with pytest.raises(ValueError, match="non-negative integer"):
        reseed(configs, -1)
    with pytest.raises(ValueError, match="already use seeds"):
        reseed(moved, 1)
