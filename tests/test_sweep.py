"""Seed sweeps: batch reruns through the runner, findings aggregated (checked with numpy)."""

from __future__ import annotations

import json
import re
import warnings
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
import warnings
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
        "notebook": "01_toy", "n_runs": 3, "holds": 1, "does_not_hold": 2, "not_testable": 0,
        "absent": 0, "missing": 0, "seed_knobs": "seed, zoo_seed"}
    assert counts.loc["f2 untestable", "not_testable"] == 3


def test_sweep_refuses_bad_input(tmp_path: Path) -> None:
    notebooks = _toy_notebooks(tmp_path / "nbs")
    with pytest.raises(ValueError, match="two distinct"):
        sweep.run_sweep([1, 1], preset="smoke", notebooks=["01"], out=tmp_path, directory=notebooks)
    with pytest.raises(ValueError, match="none of the notebooks"):
        sweep.run_sweep([0, 1], preset="smoke", notebooks=["07"], out=tmp_path, directory=notebooks)
    for seeds in ([0.5, 1.5], [0, 1.5], [True, 2]):  # int() ran 0.5 as seed 0, True as 1
        with pytest.raises(ValueError, match=r"seeds must be whole numbers; got \["):
            sweep.run_sweep(seeds, preset="smoke", notebooks=["01"], out=tmp_path,
                            directory=notebooks)
    assert not (tmp_path / sweep.SWEEP_RECORD).exists()  # refused before anything ran
    with pytest.raises(ValueError, match=r"name a notebook twice \(\['01', '01'\]\)"):
        sweep.run_sweep([0, 1], preset="smoke", notebooks=[1, "01"], out=tmp_path,
                        directory=notebooks)
    with pytest.raises(TypeError, match="must be a list"):  # not notebooks 00 and 01
        sweep.available("01", notebooks)
    with pytest.raises(FileNotFoundError, match="run the sweep first"):
        sweep.collect(tmp_path / "empty")


def test_sweep_refuses_seeds_that_are_not_a_list_of_whole_numbers(tmp_path: Path) -> None:
    """run_sweep("12") ran seeds 1 and 2 (a string is iterable), ["0", "1"] and
    [np.float32(0.5), 1] ran seed 0 (int() of each), and run_sweep(3) failed with "'int' object
    is not iterable"; whole numbers of either kind (NumPy's, 2.0) still run as ints."""
    notebooks = _toy_notebooks(tmp_path / "nbs")
    for seeds, said in (("12", "a list of whole numbers"), (3, "a list of whole numbers"),
                        (["0", "1"], "whole numbers"), ([np.float32(0.5), 1], "whole numbers"),
                        ([float("nan"), 1], "whole numbers")):
        with pytest.raises(ValueError, match=f"seeds must be {said}.*got {re.escape(repr(seeds))}"
                           if isinstance(seeds, str | int) else f"seeds must be {said}; got \\["):
            sweep.run_sweep(seeds, preset="smoke", notebooks=["01"], out=tmp_path / "sw",
                            directory=notebooks)
    assert not (tmp_path / "sw").exists()  # refused before anything ran
    with pytest.raises(ValueError, match="none of the notebooks"):  # past the seeds' checks
        sweep.run_sweep((np.int64(0), 2.0), preset="smoke", notebooks=["07"],
                        out=tmp_path / "sw", directory=notebooks)


def test_sweep_cli_reports_bad_input_in_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--seeds", "0"], ["--notebooks", "99"]):
        assert sweep.main(["--preset", "smoke", "--out", str(tmp_path), *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("advlens.sweep: ") and err.count("\n") == 1, err


def test_sweep_out_in_the_way_of_a_file_is_named_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out a file said only '[Errno 17] File exists: ...'; --out under a file raised a
    NotADirectoryError traceback (`python -m advlens run` names the folder and the way out)."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for out in (afile, afile / "sub"):
        assert sweep.main(["--preset", "smoke", "--seeds", "0", "1", "--notebooks", "01",
                           "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"advlens.sweep: cannot make the sweep's folder {out} ") \
            and "choose another --out" in err and err.count("\n") == 1, err
    assert afile.read_text() == "not a folder"


def test_collect_reads_tables_without_statistics(tmp_path: Path) -> None:
    run = tmp_path / "seed=0-abc"
    (run / "02_x").mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"preset": "smoke", "params": {"seed": 0}}))
    pd.DataFrame([{"finding": "g", "holds": "False", "evidence": "e"},
                  {"finding": "None", "holds": "", "evidence": "e"}]).to_csv(
        run / "02_x" / "02_findings.csv", index=False)
    with pytest.warns(UserWarning, match="no sweep.json, so every run folder"):
        found = sweep.collect(tmp_path)
    assert found["verdict"].tolist() == ["does not hold", "not testable here"]
    assert found["finding"].tolist() == ["g", "None"]  # cells are text, never NaN
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


def _fake_run(sweep_dir: Path, seed: int, notebooks: dict[str, dict[str, object] | None],
              holds: bool = True, run_json: dict[str, dict[str, object]] | None = None) -> Path:
    """One run folder of a sweep as run_grid writes it; ``notebooks``: folder -> the parameters
    papermill recorded in its executed copy (None: no executed copy)."""
    from advlens import runner

    params = {"seed": seed, "zoo_seed": seed}
    run = sweep_dir / runner.grid_folder({"preset": "smoke", **params})
    for name, given in notebooks.items():
        (run / name).mkdir(parents=True)
        pd.DataFrame([{"finding": "f", "holds": holds, "evidence": "e",
                       "statistics": findings.encode_statistics({"v": seed})}]).to_csv(
            run / name / f"{name[:2]}_findings.csv", index=False)
        if given is not None:
            nb = nbformat.v4.new_notebook()
            nb.metadata["papermill"] = {"parameters": given}
            nbformat.write(nb, run / name / f"{name}.ipynb")
        if run_json and name in run_json:
            (run / name / "run.json").write_text(json.dumps(
                {"notebook": f"{name}.ipynb", "preset": "smoke", **run_json[name]}))
    (run / "params.json").write_text(json.dumps({"preset": "smoke", "params": params}))
    return run


def _sweep_record(sweep_dir: Path, seeds: list[int], notebooks: list[str], **extra: object) -> None:
    (sweep_dir / "sweep.json").write_text(json.dumps(
        {"preset": "smoke", "notebooks": notebooks, "seeds": seeds, "knobs": ["seed", "zoo_seed"],
         "runs": [{"seed": s} for s in seeds], **extra}))


def test_collect_reads_only_this_sweeps_completed_runs(tmp_path: Path) -> None:
    """A second sweep into the same folder, or a failed rerun, left other seeds' runs and stale
    findings beside this sweep's: all were collected into the summary. Now only the runs
    sweep.json lists, whose run.json (if any) says completed, and the rest is named."""
    both = {"seed": 0, "zoo_seed": 0}
    _fake_run(tmp_path, 0, {"01_x": both, "02_y": both})
    _fake_run(tmp_path, 1, {"01_x": both}, run_json={"01_x": {
        "status": "failed", "params": both, "error": "ValueError: boom"}})
    _fake_run(tmp_path, 2, {"01_x": both}, run_json={"01_x": {"status": "completed",
                                                             "params": both}})
    _fake_run(tmp_path, 5, {"01_x": both}, holds=False)  # an earlier sweep's seed
    _sweep_record(tmp_path, [0, 1, 2, 3], ["01"])
    with pytest.warns(UserWarning) as caught:
        found = sweep.collect(tmp_path)
    assert sorted(found["seed"]) == [0, 2] and set(found["notebook"]) == {"01_x"}
    said = str(caught[0].message)
    for part in ("seed=5", "not one of this sweep's runs", "02_y left out",
                 "run.json says 'failed'", "seed 3 did not run"):
        assert part in said, part
    assert len(found.attrs["skipped"]) == 4
    assert sweep.hold_counts(found)["holds"].tolist() == [2]
    # a sweep that stopped after seed 0: seed 2's folder (completed) is an earlier sweep's
    _sweep_record(tmp_path, [0, 2], ["01"], status="failed", runs=[{"seed": 0}],
                  error="NotebookFailed: boom")
    with pytest.warns(UserWarning, match="seed 2 did not complete in this sweep") as caught:
        found = sweep.collect(tmp_path)
    assert found["seed"].tolist() == [0] and "'failed' (NotebookFailed: boom)" in str(
        caught[0].message)
    _sweep_record(tmp_path, [1], ["01"])
    with pytest.raises(FileNotFoundError, match="run.json says 'failed'"), \
            pytest.warns(UserWarning):
        sweep.collect(tmp_path)


def test_a_run_whose_findings_table_is_gone_is_named_not_counted_silently(
        tmp_path: Path) -> None:
    """Seed 1's 01 folder deleted after the sweep: the summary read "holds in 1 of 1 seeds"
    without a word, though sweep.json lists two seeds."""
    import shutil

    both = {"seed": 0, "zoo_seed": 0}
    for s in (0, 1):
        _fake_run(tmp_path, s, {"01_x": both})
    _sweep_record(tmp_path, [0, 1], ["01"])
    shutil.rmtree(tmp_path / _grid_folder(1) / "01_x")
    with pytest.warns(UserWarning, match=r"seed=1,zoo_seed=1-\w+ holds no findings table of "
                                         r"notebook\(s\) 01 \(deleted since it ran\?\).*"
                                         r"rerun the sweep"):
        found = sweep.collect(tmp_path)
    assert found["seed"].tolist() == [0] and len(found.attrs["skipped"]) == 1
    # and the seed counts against the finding: "holds in 1 of 2", not "1 of 1"
    counts, headline = sweep.hold_counts(found), sweep.headline_summary(found)
    assert counts[["n_runs", "holds", "absent", "missing"]].values.tolist() == [[2, 1, 0, 1]]
    assert headline[["n_runs", "n_nan", "mean"]].values.tolist() == [[2, 1, 0.0]]
    text = sweep.markdown(counts, headline)
    assert "holds in 1 of 2 seeds, no findings table in 1" in text and "from 1 of 2" in text


def test_a_number_a_seed_did_not_write_counts_as_not_computed(tmp_path: Path) -> None:
    """An untestable finding writes {} (no statistic): that seed was left out of n_runs, and
    n_nan, which the notebook says counts "the seeds where the number could not be computed",
    said 0."""
    both = {"seed": 0, "zoo_seed": 0}
    for s in (0, 1, 2):
        _fake_run(tmp_path, s, {"01_x": both})
    _sweep_record(tmp_path, [0, 1, 2], ["01"])
    table = tmp_path / _grid_folder(2) / "01_x" / "01_findings.csv"
    pd.DataFrame([{"finding": "f", "holds": "", "evidence": "e",
                   "statistics": findings.encode_statistics({})}]).to_csv(table, index=False)
    headline = sweep.headline_summary(sweep.collect(tmp_path))
    assert headline[["n_runs", "n_nan", "mean"]].values.tolist() == [[3, 1, 0.5]]


def test_notebooks_without_zoo_seed_are_not_labelled_with_one(tmp_path: Path) -> None:
    """03 and 04 declare no zoo_seed (the runner does not pass it): their rows said zoo_seed=s
    as if their models had been retrained. Now NA, with the knobs each notebook was given,
    read from run.json, else the executed notebook's papermill parameters, else sweep.json."""
    for s in (0, 1):
        _fake_run(tmp_path, s, {"01_x": {"seed": s, "zoo_seed": s}, "03_z": {"seed": s},
                                "04_w": None},
                  run_json={"03_z": {"status": "completed", "params": {"seed": s}}})
    _sweep_record(tmp_path, [0, 1], ["01", "03", "04"],
                  notebook_knobs={"01_x": ["seed", "zoo_seed"], "04_w": ["seed"]})
    found = sweep.collect(tmp_path).set_index(["notebook", "seed"])
    assert found.loc["01_x", "zoo_seed"].tolist() == [0, 1]
    for nb in ("03_z", "04_w"):
        assert found.loc[nb, "zoo_seed"].isna().all(), nb
        assert found.loc[nb, "seed_knobs"].tolist() == ["seed", "seed"]
    found = found.reset_index()
    counts = sweep.hold_counts(found)
    assert counts.set_index("notebook")["seed_knobs"].to_dict() == {
        "01_x": "seed, zoo_seed", "03_z": "seed", "04_w": "seed"}
    assert sweep.data_seed_only(counts) == ["03_z", "04_w"]
    text = sweep.markdown(counts, sweep.headline_summary(found))
    assert "**01 f** — holds in 2 of 2 seeds" in text
    assert "**03 f** — holds in 2 of 2 data seeds, same models" in text
    assert "Notebooks 03, 04 declare no `zoo_seed`" in text


def test_a_notebook_whose_seeds_ran_on_different_code_is_warned_about(tmp_path: Path) -> None:
    """A resumed sweep keeps the runs of before a code change: seeds 0-1 of 01 from one commit,
    seed 2 from another were averaged into one 'between-seed' spread without a word."""
    both = {"seed": 0, "zoo_seed": 0}
    written = {0: ("a" * 40, "c" * 40), 1: ("a" * 40, "c" * 40), 2: ("b" * 40, "c" * 40)}
    for s, (commit_01, commit_02) in written.items():
        run = _fake_run(tmp_path, s, {"01_x": both, "02_y": both})
        for name, commit in (("01_x", commit_01), ("02_y", commit_02)):
            (run / name / f"{name[:2]}_findings.provenance.json").write_text(
                json.dumps({"git_commit": commit}))
    _sweep_record(tmp_path, [0, 1, 2], ["01", "02"])
    with pytest.warns(UserWarning, match="01_x's findings tables were written by different "
                                         "code") as caught:
        found = sweep.collect(tmp_path)
    said = str(caught[0].message)
    assert f"{'a' * 40} in preset=smoke,seed=0" in said and f"{'b' * 40} in preset=smoke,seed=2" \
        in said and "02_y" not in said and "--force" in said  # 02's seeds share their code
    assert sorted(found["seed"]) == [0, 0, 1, 1, 2, 2] and not found.attrs["skipped"]
    (tmp_path / _grid_folder(2) / "01_x" / "01_findings.provenance.json").write_text(
        json.dumps({"git_commit": "a" * 40}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep.collect(tmp_path)  # one version per notebook: quiet


def _grid_folder(seed: int) -> str:
    from advlens import runner

    return runner.grid_folder({"preset": "smoke", "seed": seed, "zoo_seed": seed})


@pytest.mark.slow
def test_a_second_sweep_into_the_same_folder_collects_only_its_seeds(tmp_path: Path) -> None:
    notebooks = _toy_notebooks(tmp_path / "nbs")
    data_only = nbformat.read(notebooks / "01_toy.ipynb", as_version=4)
    data_only.cells[0].source = 'preset = "laptop"\nout_dir = None\nseed = 0'
    data_only.cells[1].source = (TOY.replace("zoo_seed", "0").replace("01_findings", "03_findings"))
    nbformat.write(data_only, notebooks / "03_toy.ipynb")
    sweep.run_sweep([0, 1], preset="smoke", notebooks=["01", "03"], out=tmp_path / "sw",
                    directory=notebooks)
    record = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert record["status"] == "completed"
    assert record["notebook_knobs"] == {"01_toy": ["seed", "zoo_seed"], "03_toy": ["seed"]}
    sweep.run_sweep([2, 3], preset="smoke", notebooks=["01", "03"], out=tmp_path / "sw",
                    directory=notebooks)
    with pytest.warns(UserWarning, match="not one of this sweep's runs"):
        found = sweep.collect(tmp_path / "sw")
    assert sorted(set(found["seed"])) == [2, 3]
    toy3 = found[found.notebook == "03_toy"]
    assert toy3["zoo_seed"].isna().all() and set(toy3["seed_knobs"]) == {"seed"}
    assert sweep.data_seed_only(sweep.hold_counts(found)) == ["03_toy"]


def test_a_sweep_that_stops_replaces_the_previous_record(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep that failed half-way left the previous sweep's sweep.json, naming other seeds;
    now its own record says which seeds it was for, that it failed, and which it finished."""
    from advlens import runner

    notebooks = _toy_notebooks(tmp_path / "nbs")
    out = tmp_path / "sw"
    out.mkdir()
    _sweep_record(out, [5, 6], ["01"], status="completed")

    def fake_grid(grid, preset, *, out, **_):  # noqa: ANN001, ANN003, ANN202
        s = grid["seed"][0]
        if s == 1:
            raise runner.NotebookFailed("01_toy.ipynb", 3, "ValueError: boom", out / "x.ipynb")
        folder = out / runner.grid_folder({"preset": preset, "seed": s, "zoo_seed": s})
        return [({"seed": s}, [runner.NotebookRun("01_toy.ipynb", folder / "01_toy" / "x.ipynb",
                                                  folder / "01_toy", 1.0)])]

    monkeypatch.setattr(sweep.runner, "run_grid", fake_grid)
    with pytest.raises(runner.NotebookFailed):
        sweep.run_sweep([0, 1, 2], preset="smoke", notebooks=["01"], out=out,
                        directory=notebooks)
    record = json.loads((out / "sweep.json").read_text())
    assert record["seeds"] == [0, 1, 2] and record["status"] == "failed"
    assert [row["seed"] for row in record["runs"]] == [0] and "boom" in record["error"]


def test_force_reaches_run_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep resumes by default (run_grid keeps completed seeds); --force reruns them."""
    from advlens import runner

    notebooks = _toy_notebooks(tmp_path / "nbs")
    forced: list[bool] = []

    def fake_grid(grid, preset, *, out, force=False, **_):  # noqa: ANN001, ANN003, ANN202
        forced.append(force)
        s = grid["seed"][0]
        folder = out / runner.grid_folder({"preset": preset, "seed": s, "zoo_seed": s})
        return [({"seed": s}, [runner.NotebookRun("01_toy.ipynb", folder / "01_toy" / "x.ipynb",
                                                  folder / "01_toy", 1.0)])]

    monkeypatch.setattr(sweep.runner, "run_grid", fake_grid)
    for force in (False, True):
        sweep.run_sweep([0, 1], preset="smoke", notebooks=["01"], out=tmp_path / "out",
                        directory=notebooks, force=force)
    assert forced == [False, False, True, True]


def test_default_sweeps_leave_out_notebook_04(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook 04's `seed` seeds only the bootstrap of its ρ CIs (its α images are the
    reference's first correct test images, its models are trained over its own `seeds`): a
    sweep over `seed` reran it for the same α and transfer numbers and called their spread the
    data's. Neither notebook 05's presets nor the CLI's default sweep it."""
    from advlens import presets

    for preset, knobs in presets.PRESETS["05"].items():
        assert "04" not in knobs["sweep_notebooks"], preset
    asked: list[list[str]] = []

    def fake_sweep(seeds, *, notebooks, **_):  # noqa: ANN001, ANN003, ANN202
        asked.append(list(notebooks))
        raise ValueError("stop here")

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    assert sweep.main([]) == 1
    assert asked == [["01", "02", "03"]]


def test_a_sweep_killed_half_way_counts_only_the_seeds_it_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep killed where no handler runs (SIGKILL, out of memory) left sweep.json 'running'
    without the seeds it finished, so collect took every seed as done and read an earlier
    sweep's folder of a seed this sweep never reached as this sweep's."""
    from advlens import runner

    notebooks = _toy_notebooks(tmp_path / "nbs")
    for s in (0, 1):  # an earlier sweep's completed runs, e.g. before a code change
        _fake_run(tmp_path, s, {"01_toy": {"seed": s, "zoo_seed": s}})
    seen: list[pd.DataFrame] = []

    def fake_grid(grid, preset, *, out, **_):  # noqa: ANN001, ANN003, ANN202
        s = grid["seed"][0]
        if s == 1:  # the sweep is killed here: collect reads what it leaves behind
            with pytest.warns(UserWarning, match="seed 1 did not complete in this sweep"):
                seen.append(sweep.collect(out))
            raise RuntimeError("killed")
        folder = out / runner.grid_folder({"preset": preset, "seed": s, "zoo_seed": s})
        return [({"seed": s}, [runner.NotebookRun("01_toy.ipynb", folder / "01_toy" / "x.ipynb",
                                                  folder / "01_toy", 1.0)])]

    monkeypatch.setattr(sweep.runner, "run_grid", fake_grid)
    with pytest.raises(RuntimeError, match="killed"):
        sweep.run_sweep([0, 1], preset="smoke", notebooks=["01"], out=tmp_path,
                        directory=notebooks, force=True)
    assert seen[0]["seed"].tolist() == [0]


def test_readme_force_command_reruns_the_runs_make_sweep_keeps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """README's way to rerun a `make sweep` after a code change must reach the runs that
    `make sweep` resumes from: `python -m advlens.sweep --force` alone wrote to its own default
    folder (out/sweep) and left them as they were."""
    import re
    import shlex

    from advlens import presets
    from advlens.paths import repo_root

    # where `make sweep` keeps its runs: the Makefile's --out, the runner's <out>/<notebook
    # stem>, and notebook 05's default sweep_dir (None: <its folder>/runs)
    recipe = re.search(r"^sweep:.*?\n((?:\t.*\n?)+)", (repo_root() / "Makefile").read_text(), re.M)
    out = re.search(r"--out (\S+)", recipe.group(1)).group(1)
    assert presets.PRESETS["05"]["laptop"]["sweep_dir"] is None
    kept = Path(out.replace("$(PRESET)", "laptop")) / "05_seed_sweep" / "runs"
    commands = re.findall(r"`(python -m advlens\.sweep --force[^`]*)`",
                          (repo_root() / "README.md").read_text())
    assert commands, "README names no `python -m advlens.sweep --force ...` command"
    asked: list[dict] = []

    def fake_sweep(seeds, **kw):  # noqa: ANN001, ANN003, ANN202
        asked.append(kw)
        raise ValueError("stop here")

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    for command in commands:
        argv = shlex.split(command.replace("<preset>", "laptop"))[3:]
        assert sweep.main(argv) == 1
        assert asked[-1]["force"] is True and asked[-1]["preset"] == "laptop"
        assert Path(asked[-1]["out"]) == kept, command


def _collected(rows: list[tuple[str, str, str, str, dict[str, float]]]) -> pd.DataFrame:
    """A collect() result by hand: (notebook, finding, run, verdict, statistics) per row."""
    return pd.DataFrame([{"notebook": nb, "finding": f, "run": run, "verdict": v,
                          "statistics": findings.encode_statistics(stats),
                          "seed_knobs": "seed" if nb.startswith("03") else "seed, zoo_seed"}
                         for nb, f, run, v, stats in rows])


def test_summaries_keep_the_findings_order_and_their_own_numbers() -> None:
    """Findings are numbered in their notebook's order (sorting put 'z' after 'a'); each
    bullet shows its own finding's numbers; s.d. with ddof 1 needs two values."""
    found = _collected([("02_x", "z first", "r0", "holds", {"rho": 0.2}),
                        ("02_x", "a second", "r0", "does not hold", {"slope": -1.0}),
                        ("02_x", "z first", "r1", "holds", {"rho": 0.6}),
                        ("02_x", "a second", "r1", "holds", {"slope": 3.0}),
                        ("03_y", "only", "r0", "holds", {"one": 5.0}),
                        ("03_y", "only", "r1", "not testable here", {"one": float("nan")})])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy "degrees of freedom" warning for one value
        head = sweep.headline_summary(found)
    assert list(head["finding"]) == ["z first", "a second", "only"]
    assert head["sd"].iloc[0] == pytest.approx(0.4 / np.sqrt(2))  # |0.2 - 0.6| / sqrt(2)
    assert head["sd"].iloc[1] == pytest.approx(4.0 / np.sqrt(2))
    assert np.isnan(head["sd"].iloc[2]) and head["mean"].iloc[2] == 5.0
    assert list(head["n_runs"]) == [2, 2, 2] and list(head["n_nan"]) == [0, 0, 1]
    counts = sweep.hold_counts(found)
    assert list(counts["finding"]) == ["z first", "a second", "only"]
    assert list(counts["holds"]) == [2, 1, 1] and list(counts["not_testable"]) == [0, 0, 1]
    lines = sweep.markdown(counts, head).splitlines()
    assert lines[0] == "- **02 z first** — holds in 2 of 2 seeds (rho 0.4 ± 0.28)."
    assert lines[1] == "- **02 a second** — holds in 1 of 2 seeds (slope 1 ± 2.8)."
    assert lines[2].startswith("- **03 only** — holds in 1 of 2 data seeds, same models, not "
                               "testable in 1 (one 5")
    assert lines[4].startswith("Notebook 03 declares no `zoo_seed`")


def test_a_finding_absent_from_one_seeds_table_is_counted_against_its_seeds() -> None:
    """Seed r2's table of 02 has no row for finding 'b' (a model missing in that seed): its
    bullet read "holds in 2 of 2 seeds" in a sweep of three, as if it held in every seed."""
    found = _collected([("02_x", "a", "r0", "holds", {}), ("02_x", "b", "r0", "holds", {"w": 1}),
                        ("02_x", "a", "r1", "holds", {}), ("02_x", "b", "r1", "holds", {"w": 3}),
                        ("02_x", "a", "r2", "holds", {}),
                        ("03_y", "c", "r0", "holds", {}), ("03_y", "c", "r1", "holds", {})])
    counts = sweep.hold_counts(found).set_index("finding")
    # three runs of 02 (r0, r1, r2), two of 03; 'b' has rows in r0 and r1 only
    assert counts["n_runs"].to_dict() == {"a": 3, "b": 3, "c": 2}
    assert counts["absent"].to_dict() == {"a": 0, "b": 1, "c": 0}
    lines = sweep.markdown(counts.reset_index(), sweep.headline_summary(found)).splitlines()
    assert lines[1] == ("- **02 b** — holds in 2 of 3 seeds, absent from the findings table "
                        "in 1 (w 2 ± 1.4 from 2 of 3 seeds).")
    assert lines[0] == "- **02 a** — holds in 3 of 3 seeds."

def test_hold_counts_refuses_a_finding_named_twice_in_one_table() -> None:
    """Run r0's table of 01 repeats finding 'a' (r2 has no row for it): its bullet read "holds
    in 3 of 3 seeds, absent from the findings table in 1" though it holds in 2 seeds."""
    found = _collected([("01_x", "a", "r0", "holds", {}), ("01_x", "a", "r0", "holds", {}),
                        ("01_x", "a", "r1", "holds", {}), ("01_x", "b", "r0", "holds", {}),
                        ("01_x", "b", "r1", "holds", {}), ("01_x", "b", "r2", "holds", {})])
    with pytest.raises(ValueError, match=r"names a finding twice .*'a' in r0/01_x;"):
        sweep.hold_counts(found)
    counts = sweep.hold_counts(found.drop_duplicates(["finding", "run"])).set_index("finding")
    assert counts.loc["a", ["n_runs", "holds", "absent"]].tolist() == [3, 2, 1]


def test_summary_prose_says_from_how_many_seeds_a_number_comes() -> None:
    """A number NaN in one seed and absent in another is the mean of one value, with no s.d.
    (numpy: std of one value with ddof 1 is undefined): the bullet read "rho 0.2 ± nan" beside
    "holds in 3 of 3 seeds", as if over all three."""
    found = _collected([("02_x", "f", "r0", "holds", {"rho": 0.2, "slope": 1.0}),
                        ("02_x", "f", "r1", "holds", {"rho": float("nan"), "slope": 2.0}),
                        ("02_x", "f", "r2", "holds", {"slope": 3.0})])
    head = sweep.headline_summary(found)
    assert head["sd"].iloc[1] == pytest.approx(np.std([1.0, 2.0, 3.0], ddof=1))
    assert sweep.markdown(sweep.hold_counts(found), head).splitlines()[0] == (
        "- **02 f** — holds in 3 of 3 seeds (rho 0.2 from 1 of 3 seeds; slope 2 ± 1).")


def test_run_sweep_resumes_quietly_by_default_and_times_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The docstring: by default completed seeds are kept (force=False); no progress bars
    unless asked; wall_time_s is the sweep's elapsed time."""
    import time

    from advlens import runner

    notebooks = _toy_notebooks(tmp_path / "nbs")
    calls: list[dict[str, object]] = []

    def fake_grid(grid, preset, *, out, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append(kw)
        time.sleep(0.05)
        s = grid["seed"][0]
        folder = out / runner.grid_folder({"preset": preset, "seed": s, "zoo_seed": s})
        return [({"seed": s}, [runner.NotebookRun("01_toy.ipynb", folder / "01_toy" / "x.ipynb",
                                                  folder / "01_toy", 1.0)])]

    monkeypatch.setattr(sweep.runner, "run_grid", fake_grid)
    started = time.perf_counter()
    done = sweep.run_sweep([0, 1], preset="smoke", notebooks=["01"], out=tmp_path / "out",
                           directory=notebooks)
    elapsed = time.perf_counter() - started
    assert [(c["force"], c["progress"]) for c in calls] == [(False, False)] * 2
    assert 0.1 <= done.wall_time_s <= elapsed
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["wall_time_s"] == \
        done.wall_time_s


def test_sweep_cli_defaults_and_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m advlens.sweep` alone: laptop, seeds 0 1 2 (its --help), exit status 0."""
    asked: list[dict[str, object]] = []

    def fake_sweep(seeds, **kw):  # noqa: ANN001, ANN003, ANN202
        asked.append({"seeds": list(seeds), **kw})
        return sweep.SweepRun(tmp_path, ["01"], list(seeds), 1.0, pd.DataFrame())

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    monkeypatch.setattr(sweep, "collect", lambda out: _collected(
        [("01_x", "f", "r0", "holds", {})]))
    assert sweep.main([]) == 0
    assert asked == [{"seeds": [0, 1, 2], "preset": "laptop", "notebooks": ["01", "02", "03"],
                      "out": "out/sweep", "force": False}]
    table = capsys.readouterr().out.splitlines()[1:]  # the hold counts, without an index
    assert table[0].split() == ["notebook", "finding", "n_runs", "holds", "does_not_hold",
                                "not_testable", "absent", "missing", "seed_knobs"]
    assert table[1].split() == ["01_x", "f", "1", "1", "0", "0", "0", "0", "seed,", "zoo_seed"]


@pytest.mark.parametrize("preset", ["smoke", "laptop", "paper"])
def test_sweep_cli_defaults_are_notebook_05s_preset(preset: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m advlens.sweep --preset smoke` reran seeds 0 1 2 of notebooks 01 02 03 (the
    CLI's own typed defaults) where notebook 05's smoke preset (`make sweep PRESET=smoke`, and
    README's --force rerun of its runs) sweeps seeds 0 1 of 01 02: one fact in two places."""
    from advlens import presets

    asked: list[tuple[list[int], list[str]]] = []

    def fake_sweep(seeds, *, notebooks, **_):  # noqa: ANN001, ANN003, ANN202
        asked.append((list(seeds), list(notebooks)))
        raise ValueError("stop here")

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    assert sweep.main(["--preset", preset]) == 1
    knobs = presets.PRESETS["05"][preset]
    assert asked == [(knobs["seeds"], knobs["sweep_notebooks"])]
    assert sweep.main(["--preset", preset, "--seeds", "3", "4", "--notebooks", "02"]) == 1
    assert asked[-1] == ([3, 4], ["02"])  # given ones still win


def test_a_notebook_without_seed_knobs_is_refused(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook declaring neither seed knob beside one that does (e.g. 05 itself beside 01)
    was rerun once per seed with the same parameters (05: a whole nested sweep per seed)."""
    notebooks = _toy_notebooks(tmp_path / "nbs")
    plain = nbformat.read(notebooks / "01_toy.ipynb", as_version=4)
    plain.cells[0].source = 'preset = "laptop"\nout_dir = None\nseeds = None'
    nbformat.write(plain, notebooks / "05_toy.ipynb")
    ran: list[object] = []
    monkeypatch.setattr(sweep.runner, "run_grid", lambda *a, **kw: ran.append(a))
    with pytest.raises(ValueError, match=r"notebooks \['05_toy'\] declare none of the seed "
                                         r"knobs .*leave them out"):
        sweep.run_sweep([0, 1], preset="smoke", notebooks=["01", "05"], out=tmp_path / "sw",
                        directory=notebooks)
    assert not ran and not (tmp_path / "sw" / sweep.SWEEP_RECORD).exists()


def test_a_sweep_of_notebooks_without_findings_is_refused_before_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--notebooks 00` ran every seed (27 s at smoke), then said the notebooks write no
    findings table (review); now it says so first. 00 beside 01 is a sweep."""
    notebooks = _toy_notebooks(tmp_path / "nbs")
    nbformat.write(nbformat.read(notebooks / "01_toy.ipynb", as_version=4),
                   notebooks / "00_toy.ipynb")
    ran: list[object] = []
    monkeypatch.setattr(sweep.runner, "run_grid", lambda *a, **kw: ran.append(a) or [])
    with pytest.raises(ValueError, match=r"notebooks \['00'\] write no findings table.*"
                                         r"\(01, 02, 03, 04\)"):
        sweep.run_sweep([0, 1], preset="smoke", notebooks=["00"], out=tmp_path / "sw",
                        directory=notebooks)
    assert not ran and not (tmp_path / "sw" / sweep.SWEEP_RECORD).exists()


def test_sweep_cli_without_findings_tables_fails_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep whose notebooks write no findings table (00) completed, then the CLI ended in a
    FileNotFoundError traceback telling the user to run the sweep it had just run."""
    from advlens import runner

    for s in (0, 1):  # what run_grid leaves of notebook 00: its runs, no *_findings.csv
        run = tmp_path / runner.grid_folder({"preset": "smoke", "seed": s})
        (run / "00_x").mkdir(parents=True)
        (run / "params.json").write_text(json.dumps({"preset": "smoke", "params": {"seed": s}}))
    (tmp_path / "sweep.json").write_text(json.dumps(
        {"preset": "smoke", "notebooks": ["00"], "seeds": [0, 1], "knobs": ["seed"],
         "status": "completed", "runs": [{"seed": 0}, {"seed": 1}]}))
    monkeypatch.setattr(sweep, "run_sweep", lambda seeds, **_: sweep.SweepRun(
        tmp_path, ["00"], list(seeds), 1.0, pd.DataFrame()))
    assert sweep.main(["--preset", "smoke", "--notebooks", "00", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("advlens.sweep: no completed") and err.count("\n") == 1, err
    assert "write no findings table" in err and "run the sweep first" not in err


def test_a_paper_sweep_says_the_published_checkpoints_were_the_same_in_every_run() -> None:
    """At the paper preset zoo_seed only relabels the published checkpoints (their weights
    cannot be retrained), yet the summary read "holds in 3 of 3 seeds" as if the models had
    varied; it now says so. Below the paper preset nothing is added."""
    rows = [("02_x", "f", f"r{i}", "holds", {"rho": 0.2 * i}) for i in range(3)]
    found = _collected(rows)
    head = sweep.headline_summary(found)
    counts = sweep.hold_counts(found)
    laptop = sweep.markdown(counts, head, preset="laptop")
    paper = sweep.markdown(counts, head, preset="paper")
    assert laptop == sweep.markdown(counts, head) and "published checkpoints" not in laptop
    assert paper.startswith(laptop.rstrip("\n"))
    assert "At the `paper` preset the published checkpoints are the same in every run" in paper
    import nbformat

    from advlens.paths import repo_root

    nb = nbformat.read(repo_root() / "notebooks" / "05_seed_sweep.ipynb", 4)
    assert any('sweep.markdown(counts, headline, preset=P["preset"])' in c.source
               for c in nb.cells)


def test_published_checkpoints_keep_their_seed_in_every_zoo_seed() -> None:
    """A paper-zoo checkpoint cannot be retrained: reseed relabelled it (seed 100·k), a new
    cache key under which its ImageNet accuracy was measured again for nothing. It is kept as
    it is; seeds_of selects it beside the shifted trained models, and preset_seed labels both."""
    from advlens.papers.jones2022 import model_label
    from advlens.zoo import Zoo
    from advlens.zoo.collection import ZooEntry
    from advlens.zoo.seeds import preset_seed, seeds_of

    published = ModelConfig("resnet18", source="robustness", dataset="imagenet", epochs=0,
                            checkpoint="resnet18_l2_eps0.ckpt")
    trained = [ModelConfig("cnn-s"), ModelConfig("cnn-s", seed=1)]
    moved = reseed([published, *trained], 2)
    assert moved[0] == published and moved[0].hash == published.hash
    assert [c.seed for c in moved[1:]] == [2 * SEED_STRIDE, 2 * SEED_STRIDE + 1]
    assert seeds_of(0, 0) == [0] and seeds_of(0, 2) == [2 * SEED_STRIDE, 0]
    from torch import nn

    zoo = Zoo([ZooEntry(c.name, c, nn.Identity()) for c in moved])
    assert [e.config for e in zoo.select(seed=seeds_of(0, 2))] == [published, moved[1]]
    assert [preset_seed(c, 2) for c in moved] == [0, 0, 1]
    assert model_label(moved[0], 2) == "resnet18/s0" and model_label(moved[2], 2) == "cnn-s/s1"


def test_a_paper_sweep_names_only_the_notebooks_given_zoo_seed_as_retrained() -> None:
    """The paper note said zoo_seed retrained "the twin-cue models of 01 and 03", two lines
    below the note that 03 declares no zoo_seed (its models were the same in every run)."""
    rows = [(nb, "f", f"r{i}", "holds", {"rho": 0.2 * i})
            for nb in ("01_x", "03_y") for i in range(2)]
    found = _collected(rows)  # 01 gets seed and zoo_seed, 03 the data seed only
    text = sweep.markdown(sweep.hold_counts(found), sweep.headline_summary(found),
                          preset="paper")
    note = text.split("At the `paper` preset", 1)[1]
    assert "in the notebook given `zoo_seed` (01)" in note and "03" not in note
    only_03 = _collected([r for r in rows if r[0] == "03_y"])
    note = sweep.markdown(sweep.hold_counts(only_03), sweep.headline_summary(only_03),
                          preset="paper").split("At the `paper` preset", 1)[1]
    assert "no notebook of this sweep was given `zoo_seed`" in note


def test_a_forced_sweep_that_stops_resumes_without_the_runs_of_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a code change a sweep is rerun in place with force; stopped at seed 1 and resumed
    without force (as an interrupted sweep resumes), it kept seed 2's runs of the old code, which
    the forced run never reached, and collect read them as this sweep's."""
    from advlens import runner

    notebooks = _toy_notebooks(tmp_path / "nbs")
    code = {"version": 1}

    def fake_run(preset, *, only, out, params, **_):  # noqa: ANN001, ANN003, ANN202
        if code.get("stop") == params["seed"]:
            raise KeyboardInterrupt  # Ctrl-C while this seed's notebook runs
        folder = Path(out) / "01_toy"
        folder.mkdir(parents=True, exist_ok=True)
        stats = json.dumps({"version": code["version"]})
        pd.DataFrame([{"finding": "f", "holds": True, "evidence": "toy", "statistics": stats}]
                     ).to_csv(folder / "01_findings.csv", index=False)
        return [runner.NotebookRun("01_toy.ipynb", folder / "01_toy.ipynb", folder, 1.0)]

    monkeypatch.setattr(runner, "run", fake_run)
    kw = {"preset": "smoke", "notebooks": ["01"], "out": tmp_path / "runs",
          "directory": notebooks}
    sweep.run_sweep([0, 1, 2], **kw)
    code.update(version=2, stop=1)  # the code changed; the forced rerun is stopped at seed 1
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep([0, 1, 2], force=True, **kw)
    del code["stop"]
    sweep.run_sweep([0, 1, 2], **kw)  # resumed
    found = sweep.collect(tmp_path / "runs")
    versions = {s: json.loads(t)["version"] for s, t in zip(found["seed"], found["statistics"],
                                                            strict=True)}
    assert versions == {0: 2, 1: 2, 2: 2}


def test_the_sweep_command_stops_on_sigterm_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    """`python -m advlens.sweep` killed (SIGTERM) or stopped with Ctrl-C printed a traceback and
    left sweep.json 'running' (review); now one line, exit 130, sweep.json says interrupted, and
    the handler is put back."""
    import os
    import signal
    import time

    from advlens import runner

    def killed(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(runner, "run_grid", killed)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "sweep"
    assert sweep.main(["--preset", "smoke", "--seeds", "0", "1", "--notebooks", "01",
                       "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "advlens.sweep: interrupted; rerun the same command to resume (completed seeds are kept)"]
    assert json.loads((out / sweep.SWEEP_RECORD).read_text())["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) == before
