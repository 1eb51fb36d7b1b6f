"""`advlens verify`: tables compared within tolerance, verdict flips fail, tolerances measured;
provenance records how torch computed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from advlens import runner, verify


def _run_folder(root: Path, preset: str, tables: dict[str, pd.DataFrame],
                capability: str = "AVX512") -> Path:
    for name, frame in tables.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        # each folder a run at a seed of its own (runs with the same knobs measure nothing)
        record = {"parameters": {"preset": preset, "seed": root.name},
                  "compute": {"cpu_capability": capability}}
        path.with_suffix(".provenance.json").write_text(json.dumps(record))
    return root


def _tables(cka: list[float], holds: list[object]) -> dict[str, pd.DataFrame]:
    return {
        "01_x/01a.csv": pd.DataFrame({"row": ["a", "b", "c"], "cka": cka, "wall_s": [1, 2, 3]}),
        "01_x/01_findings.csv": pd.DataFrame({
            "finding": ["(a) drop", "(b) rise"], "holds": holds,
            "evidence": [f"mean {cka[0]:.3f} vs {cka[1]:.3f}", "slope 0.5"]}),
    }


def test_cell_delta() -> None:
    assert verify.cell_delta("0.5", "0.5") == 0.0
    assert verify.cell_delta("0.5", "0.75") == pytest.approx(0.25)
    assert verify.cell_delta("slope 0.1 [0.0, 0.2]", "slope 0.1 [-0.05, 0.2]") == \
        pytest.approx(0.05)
    assert verify.cell_delta("cnn", "mlp") is None  # wording differs: not a number that moved
    assert verify.cell_delta("", "0.3") == math.inf
    assert verify.cell_delta("nan", "0.3") == math.inf


def test_identical_within_moved(tmp_path: Path) -> None:
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    same = _run_folder(tmp_path / "same", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    near = _run_folder(tmp_path / "near", "laptop", _tables([0.71, 0.2, 0.9], [True, False]),
                       capability="AVX2")
    far = _run_folder(tmp_path / "far", "laptop", _tables([0.9, 0.2, 0.9], [True, False]))
    tol = {"laptop": {"01_x/01a.csv": {"row": 0.0, "cka": 0.05},
                      "01_x/01_findings.csv": {"finding": 0.0, "evidence": 0.05}}}
    report = verify.verify(same, ref, tolerances=tol)
    assert report.ok and sorted(report.identical) == ["01_x/01_findings.csv", "01_x/01a.csv"]
    report = verify.verify(near, ref, tolerances=tol)
    assert report.ok and not report.moved and "01_x/01a.csv" in report.within
    assert report.max_delta["01_x/01a.csv"] == pytest.approx(0.01)
    assert report.compute["cpu_capability"] == ("AVX512", "AVX2")
    report = verify.verify(far, ref, tolerances=tol)
    assert report.ok, "a number beyond tolerance is reported, not a failure"
    moved = {(c.table, c.column) for c in report.moved}
    assert moved == {("01_x/01a.csv", "cka"), ("01_x/01_findings.csv", "evidence")}
    assert "MOVED 01_x/01a.csv row 0 cka" in report.text()


def test_a_table_whose_text_changed_is_not_within_tolerance(tmp_path: Path) -> None:
    """A changed label (rows in another order, a renamed model) is not a number within its
    tolerance: the summary counted such a table 'within tolerance (not identical)'."""
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    renamed = _tables([0.7, 0.2, 0.9], [True, False])
    renamed["01_x/01a.csv"]["row"] = ["b", "a", "c"]
    run = _run_folder(tmp_path / "run", "laptop", renamed)
    tol = {"laptop": {"01_x/01a.csv": {"row": 0.0, "cka": 0.05}}}
    report = verify.verify(run, ref, tolerances=tol)
    assert report.ok and not report.strict_ok
    assert not report.within and report.relabelled == ["01_x/01a.csv"]
    assert ("2 tables compared: 1 identical, 0 within tolerance (not identical), 0 changed "
            "with no measured tolerance, 1 with text or flags changed") in report.text()


def test_verdict_flip_fails_with_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _run_folder(tmp_path / "ref", "smoke", _tables([0.7, 0.2, 0.9], [True, ""]))
    flip = _run_folder(tmp_path / "flip", "smoke", _tables([0.7, 0.2, 0.9], [False, ""]))
    untestable = _run_folder(tmp_path / "none", "smoke", _tables([0.7, 0.2, 0.9], [True, True]))
    report = verify.verify(flip, ref, tolerances={})
    assert not report.ok and [c.column for c in report.flipped] == ["(a) drop holds"]
    assert not verify.verify(untestable, ref, tolerances={}).ok  # None -> True is a flip too
    monkeypatch.setattr(verify, "TOLERANCE_FILE", tmp_path / "tolerances.json")
    assert runner.main(["verify", str(flip), "--reference", str(ref)]) == 1
    assert "FLIPPED 01_x/01_findings.csv: (a) drop holds True -> False" in capsys.readouterr().out
    assert runner.main(["verify", str(ref), "--reference", str(ref)]) == 0


def test_a_verdict_that_became_untestable_is_named(tmp_path: Path) -> None:
    """The findings tables store an untested verdict (None) as an empty cell: a flip to it
    printed as 'holds True -> ' (nothing after the arrow)."""
    ref = _run_folder(tmp_path / "ref", "smoke", _tables([0.7, 0.2, 0.9], [True, ""]))
    run = _run_folder(tmp_path / "run", "smoke", _tables([0.7, 0.2, 0.9], ["", True]))
    lines = [line for line in verify.verify(run, ref, tolerances={}).text().splitlines()
             if "FLIPPED" in line]
    assert lines == ["  FLIPPED 01_x/01_findings.csv: (a) drop holds True -> None (not "
                     "testable here)",
                     "  FLIPPED 01_x/01_findings.csv: (b) rise holds None (not testable "
                     "here) -> True"]


def test_preset_mismatch_and_missing_folder(tmp_path: Path) -> None:
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    run = _run_folder(tmp_path / "run", "smoke", _tables([0.7, 0.2, 0.9], [True, False]))
    with pytest.raises(ValueError, match="preset 'smoke'.*'laptop'"):
        verify.verify(run, ref)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        verify.verify(tmp_path / "nope", ref)
    (tmp_path / "afile").write_text("x")  # it said "does not exist" of a file
    with pytest.raises(FileNotFoundError, match="afile is a file, not a folder; give the --out"):
        verify.verify(tmp_path / "afile", ref)


def test_measure_tolerances_is_the_largest_seed_difference(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(size=(3, 3))
    runs = [_run_folder(tmp_path / f"s{i}", "smoke", _tables(list(values[i]), [True, False]))
            for i in range(3)]
    measured = verify.measure_tolerances(runs)
    expected = max(abs(values[i] - values[j]).max() for i in range(3) for j in range(3))
    assert measured["01_x/01a.csv"]["cka"] == pytest.approx(expected, rel=1e-2)
    assert measured["01_x/01a.csv"]["cka"] >= expected  # rounded up: it covers every seed pair
    assert measured["01_x/01a.csv"]["row"] == 0.0
    assert "wall_s" not in measured["01_x/01a.csv"], "timings are never compared"
    assert "holds" in measured["01_x/01_findings.csv"]


def test_measured_tolerances_keep_three_significant_digits_rounded_up() -> None:
    """Each tolerance is the seed spread rounded *up* to 3 significant digits: it covers the
    spread and exceeds it by less than one unit in the third digit."""
    for spread in (0.0123401, 0.98761, 3.14159e-7, 271.828, 0.5):
        tol = verify._round_up(spread)
        unit = 10.0 ** (math.floor(math.log10(spread)) - 2)
        assert tol >= spread and tol - spread < unit * (1 + 1e-9), (spread, tol)
        assert float(f"{tol:.3g}") == tol, (spread, tol)


def test_measure_skips_runs_whose_table_changed_shape(tmp_path: Path) -> None:
    """A table whose row count differs in one run is measured over the pairs of equal shape."""
    runs = [_run_folder(tmp_path / f"s{i}", "smoke", _tables([0.1 * i, 0.2, 0.9], [True, False]))
            for i in range(2)]
    longer = _tables([0.7, 0.2, 0.9], [True, False])
    longer["01_x/01a.csv"] = pd.concat([longer["01_x/01a.csv"]] * 2)
    runs.append(_run_folder(tmp_path / "s2", "smoke", longer))
    measured = verify.measure_tolerances(runs)
    assert measured["01_x/01a.csv"]["cka"] == pytest.approx(0.1)  # from s0 and s1 only
    assert measured["01_x/01_findings.csv"]["evidence"] == pytest.approx(0.7)


def test_measure_takes_each_pair_of_runs_by_its_own_columns(tmp_path: Path) -> None:
    """With four runs a table may have one set of columns in two of them and another in the
    other two: measuring every pair by the first pair's columns raised KeyError."""
    tables = [pd.DataFrame({"row": ["a", "b"], "cka": cka, **extra}) for cka, extra in (
        ([0.1, 0.5], {"y": [1.0, 2.0]}), ([0.3, 0.5], {"y": [1.0, 2.5]}),
        ([0.1, 0.45], {"z": [5.0, 0.0]}), ([0.1, 0.5], {"z": [7.0, 0.0]}))]
    runs = [_run_folder(tmp_path / f"s{i}", "smoke", {"01_x/01a.csv": t})
            for i, t in enumerate(tables)]
    measured = verify.measure_tolerances(runs)["01_x/01a.csv"]
    # the largest difference over the pairs (s0, s1) and (s2, s3), by hand
    assert measured == {"row": 0.0, "cka": pytest.approx(0.2), "y": pytest.approx(0.5),
                        "z": pytest.approx(2.0)}


def test_measure_refuses_a_folder_without_tables(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "s0", "smoke", _tables([0.7, 0.2, 0.9], [True, False]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        verify.measure_tolerances([run, tmp_path / "empty"])


def test_a_move_of_exactly_the_tolerance_is_within(tmp_path: Path) -> None:
    """'A number may move by the tolerance': |Δ| = tolerance (1.0 → 2.0, tolerance 1) is
    within; only beyond it is moved."""
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([1.0, 0.2, 0.9], [True, False]))
    run = _run_folder(tmp_path / "run", "laptop", _tables([2.0, 0.2, 0.9], [True, False]))
    over = _run_folder(tmp_path / "over", "laptop", _tables([2.001, 0.2, 0.9], [True, False]))
    tol = {"laptop": {"01_x/01a.csv": {"cka": 1.0}, "01_x/01_findings.csv": {"evidence": 1.0}}}
    report = verify.verify(run, ref, tolerances=tol)
    assert not report.moved and report.within == ["01_x/01_findings.csv", "01_x/01a.csv"]
    assert report.strict_ok
    assert "\n  2 tables compared: 0 identical, 2 within tolerance" in report.text()
    report = verify.verify(over, ref, tolerances=tol)
    assert {(c.table, c.column) for c in report.moved} == {("01_x/01a.csv", "cka"),
                                                          ("01_x/01_findings.csv", "evidence")}
    summary = next(line for line in report.text().splitlines() if "tables compared" in line)
    assert summary.startswith("  2 tables compared: 0 identical, 0 within tolerance")
    assert summary.endswith(" 2 with numbers beyond tolerance")


def test_a_missing_result_table_is_not_a_lost_verdict(tmp_path: Path) -> None:
    """Only a findings table holds verdicts: another table missing in the run is reported
    missing (--strict fails) but the verdicts are checked and OK."""
    tables = _tables([0.7, 0.2, 0.9], [True, False])
    ref = _run_folder(tmp_path / "ref", "smoke", tables)
    run = _run_folder(tmp_path / "run", "smoke",
                      {"01_x/01_findings.csv": tables["01_x/01_findings.csv"]})
    report = verify.verify(run, ref, tolerances={})
    assert report.ok and not report.lost and not report.strict_ok
    assert report.missing == ["01_x/01a.csv"]


def test_a_findings_table_of_only_finding_and_holds_is_checked(tmp_path: Path) -> None:
    bare = {"01_x/01_findings.csv": pd.DataFrame({"finding": ["(a)", "(b)"],
                                                  "holds": [True, False]})}
    ref = _run_folder(tmp_path / "ref", "smoke", bare)
    run = _run_folder(tmp_path / "run", "smoke", bare)
    report = verify.verify(run, ref, tolerances={})
    assert report.ok and not report.lost and len(report.verdicts) == 2


def test_git_reference_without_a_revision_is_head(tmp_path: Path) -> None:
    """``git:`` alone reads figures/ as committed at HEAD: HEAD's figures verify identical."""
    run = verify.committed_reference("HEAD", tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    import tempfile

    old, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        report = verify.verify(run, "git:", tolerances={})
    finally:
        tempfile.tempdir = old
    assert report.ok and report.strict_ok and not report.within and report.identical
    assert report.reference == "git:" and not list(scratch.iterdir())  # nothing left behind


def test_committed_tolerances_cover_the_committed_reference() -> None:
    table = verify.load_tolerances()
    assert "laptop" in table, "measure them: python -m advlens verify --measure RUN0 RUN1"
    from advlens.paths import figures_dir

    committed = {str(p.relative_to(figures_dir())) for p in figures_dir().glob("*/*.csv")}
    # one row per attacked image: which images, hence the row count, changes with the seed, so
    # two seeds give no cell-by-cell tolerance (its per-model summary, 03_model_table, has one)
    per_seed_shape = {"03_adversarial_alignment/03_per_image.csv"}
    uncovered = sorted(committed - set(table["laptop"]) - per_seed_shape)
    assert not uncovered, f"no measured laptop tolerance for {uncovered}; measure them"


def test_provenance_records_cpu_capability_threads_and_determinism() -> None:
    code = ("import json; from advlens import provenance; "
            "print(json.dumps(provenance.compute_settings()))")
    env = {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    settings = json.loads(out.strip().splitlines()[-1])
    assert settings["cpu_capability"] == "DEFAULT"  # torch obeyed the variable we set
    assert settings["threads"] == 1
    assert settings["deterministic_algorithms"] is False
    assert settings["env"]["ATEN_CPU_CAPABILITY"] == "default"


def test_provenance_records_the_gpus_and_tf32(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from advlens import provenance

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: f"NVIDIA H100 #{i}")
    monkeypatch.setenv("ADVLENS_DEVICE", "cuda")
    settings = provenance.compute_settings()
    assert settings["gpus"] == ["NVIDIA H100 #0", "NVIDIA H100 #1"]
    assert settings["tf32"] == {"matmul": torch.backends.cuda.matmul.allow_tf32,
                                "cudnn": torch.backends.cudnn.allow_tf32}
    assert settings["env"]["ADVLENS_DEVICE"] == "cuda"
    tables = _tables([0.7, 0.2, 0.9], [True, False])
    ref = _run_folder(tmp_path / "ref", "laptop", tables)
    run = _run_folder(tmp_path / "run", "laptop", tables)
    for path in run.rglob("*.provenance.json"):  # the run on a GPU, the reference on a CPU
        record = json.loads(path.read_text())
        record["compute"]["gpus"] = settings["gpus"]
        path.write_text(json.dumps(record))
    report = verify.verify(run, ref, tolerances={})
    assert report.compute["gpus"] == ("not recorded", ["NVIDIA H100 #0", "NVIDIA H100 #1"])


def test_committed_reference_is_figures_at_head(tmp_path: Path) -> None:
    from advlens.paths import repo_root

    ref = verify.committed_reference("HEAD", tmp_path)
    name = "figures/02_robustness_scaling/02_findings.csv"
    committed = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=repo_root(), check=True,
                               capture_output=True).stdout
    assert (ref / "02_robustness_scaling" / "02_findings.csv").read_bytes() == committed
    with pytest.raises(FileNotFoundError, match="git revision"):
        verify.committed_reference("no-such-revision", tmp_path / "x")


@pytest.mark.usefixtures("python_without_extraction_filters")
def test_committed_reference_on_a_python_without_extraction_filters(tmp_path: Path) -> None:
    """Python 3.11.0-3.11.3 (Debian 12's python3.11 is 3.11.2; pyproject admits them) have no
    ``extractall(filter=...)``: ``--reference git:REV`` and ``make reproduce``'s verify raised
    a TypeError there."""
    from advlens.paths import repo_root

    ref = verify.committed_reference("HEAD", tmp_path)
    committed = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD", "figures"],
                               cwd=repo_root(), check=True, capture_output=True,
                               text=True).stdout.split()
    assert sorted(str(p.relative_to(tmp_path)) for p in ref.rglob("*") if p.is_file()) \
        == sorted(committed)


def test_verdicts_are_matched_by_name_when_the_findings_table_grows(tmp_path: Path) -> None:
    ref = _run_folder(tmp_path / "ref", "smoke", _tables([0.7, 0.2, 0.9], [True, False]))
    grown = _tables([0.7, 0.2, 0.9], [True, True])
    grown["01_x/01_findings.csv"] = pd.concat([
        grown["01_x/01_findings.csv"].iloc[::-1],
        pd.DataFrame({"finding": ["(c) new"], "holds": [True], "evidence": ["n"]})]).assign(
        statistics="{}")
    run = _run_folder(tmp_path / "run", "smoke", grown)
    report = verify.verify(run, ref, tolerances={})
    assert [c.column for c in report.verdicts] == ["(a) drop holds", "(b) rise holds"]
    assert [c.column for c in report.flipped] == ["(b) rise holds"]


@pytest.mark.parametrize("a,b,delta", [
    ("resnet18", "resnet34", None),  # a renamed label, not a number that moved by 16
    ("seed-1", "seed-2", None),
    ("cnn-m/at0.5", "cnn-m/at1.0", None),
    ("nan", "NaN", 0.0),  # one missing value written two ways
    ("", "0.3", math.inf),
    ("slope 0.04 [-0.03, 0.15]", "slope 0.05 [-0.02, 0.15]", 0.01),
    ("p = 0.03.", "p = 0.04.", 0.01),
    ("x -1", "x -2", 1.0),
    ("1e-3", "2e-3", 1e-3),
])
def test_cell_delta_reads_numbers_not_names(a: str, b: str, delta: float | None) -> None:
    got = verify.cell_delta(a, b)
    assert got == delta if delta is None or math.isinf(delta) else got == pytest.approx(delta)


def test_verdicts_that_cannot_be_checked_fail(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A findings table, row or `holds` column gone from the run, an empty findings file, or a
    finding named twice is a verdict not checked: not OK (it was reported OK before)."""
    tables = _tables([0.7, 0.2, 0.9], [True, False])
    ref = _run_folder(tmp_path / "ref", "smoke", tables)
    gone = _run_folder(tmp_path / "gone", "smoke", {"01_x/01a.csv": tables["01_x/01a.csv"]})
    report = verify.verify(gone, ref, tolerances={})
    assert not report.ok and report.lost == ["01_x/01_findings.csv: the findings table is "
                                             "missing in the run"]
    assert "NOT CHECKED" in report.text() and "FAIL" in report.text()
    one_row = {**tables, "01_x/01_findings.csv": tables["01_x/01_findings.csv"].iloc[:1]}
    report = verify.verify(_run_folder(tmp_path / "row", "smoke", one_row), ref, tolerances={})
    assert not report.ok and "'(b) rise' missing" in report.lost[0]
    renamed = {**tables, "01_x/01_findings.csv":
               tables["01_x/01_findings.csv"].rename(columns={"holds": "held"})}
    report = verify.verify(_run_folder(tmp_path / "col", "smoke", renamed), ref, tolerances={})
    assert not report.ok and "no 'finding' and 'holds' columns" in report.lost[0]
    findings = tables["01_x/01_findings.csv"]
    twice = {**tables, "01_x/01_findings.csv": pd.concat([findings, findings.iloc[:1].assign(
        holds=False)])}
    report = verify.verify(_run_folder(tmp_path / "twice", "smoke", twice), ref, tolerances={})
    assert not report.ok and "more than once" in report.lost[0]
    empty = _run_folder(tmp_path / "empty", "smoke", tables)
    (empty / "01_x/01_findings.csv").write_text("")
    report = verify.verify(empty, ref, tolerances={})
    assert not report.ok and "empty" in report.lost[0]
    assert "01_x/01_findings.csv: empty file in the run" in report.structure
    monkeypatch.setattr(verify, "TOLERANCE_FILE", tmp_path / "tolerances.json")
    assert runner.main(["verify", str(gone), "--reference", str(ref)]) == 1


def test_strict_fails_on_a_change_with_no_measured_tolerance(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--strict fails when a number changed in a column without a measured tolerance (it passed
    100x changes before), and the text says such a table has no tolerance, not 'within'."""
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    far = _run_folder(tmp_path / "far", "laptop", _tables([70.0, 0.2, 0.9], [True, False]))
    tol = {"laptop": {"01_x/01_findings.csv": {"finding": 0.0, "evidence": 100.0}}}
    report = verify.verify(far, ref, tolerances=tol)
    assert report.ok and not report.strict_ok
    assert report.unmeasured == ["01_x/01a.csv"] and "01_x/01a.csv" not in report.within
    assert "1 changed with no measured tolerance" in report.text()
    no_preset = verify.verify(far, ref, tolerances={"smoke": {}})
    assert "no tolerances measured for preset 'laptop'" in no_preset.text()
    monkeypatch.setattr(verify, "TOLERANCE_FILE", tmp_path / "tolerances.json")
    assert runner.main(["verify", str(far), "--reference", str(ref), "--strict"]) == 2
    assert runner.main(["verify", str(far), "--reference", str(ref)]) == 0
    assert runner.main(["verify", str(ref), "--reference", str(ref), "--strict"]) == 0
    capsys.readouterr()


def test_an_empty_table_is_named_not_a_crash(tmp_path: Path) -> None:
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    run = _run_folder(tmp_path / "run", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    (run / "01_x/01a.csv").write_text("")
    report = verify.verify(run, ref, tolerances={})
    assert report.ok and "01_x/01a.csv: empty file in the run" in report.structure
    assert "01_x/01_findings.csv" in report.identical  # the other tables are still compared


@pytest.mark.parametrize("record", ['[1, 2]', '"laptop"', '{"parameters": "laptop"}',
                                    '{"parameters": {"preset": "laptop"}, "compute": ["x"]}'])
def test_a_provenance_record_of_another_shape_is_named(tmp_path: Path, record: str) -> None:
    """A run folder from elsewhere whose ``*.provenance.json`` is valid JSON but not the
    record plots write (a list, ``parameters`` a string) stopped verify with a bare
    AttributeError ('list' object has no attribute 'get') naming no file."""
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    run = _run_folder(tmp_path / "run", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    (run / "01_x/01_findings.provenance.json").write_text(record)  # the first one read
    with pytest.raises(ValueError, match=r"01_findings\.provenance\.json is not a provenance "
                                         "record"):
        verify.verify(run, ref, tolerances={})


def test_infinite_tolerances_survive_a_strict_json_round_trip(tmp_path: Path) -> None:
    """A column whose number may become NaN between seeds has tolerance inf: stored as "inf"
    (strict JSON has no infinity; the writer turns a bare inf into null) and read back as inf."""
    path = tmp_path / "tolerances.json"
    from advlens.io import atomic_write_json

    atomic_write_json(path, {"laptop": verify._storable({"t.csv": {"a": math.inf, "b": 0.5}})})
    assert json.loads(path.read_text())["laptop"]["t.csv"]["a"] == "inf"
    assert verify.load_tolerances(path)["laptop"]["t.csv"] == {"a": math.inf, "b": 0.5}


@pytest.mark.parametrize("entry", ['{"t.csv": {"a": "1e-6"}}', '{"t.csv": {"a": -0.1}}',
                                   '{"t.csv": {"a": true}}', '{"t.csv": {"a": null}}',
                                   '{"t.csv": ["a"]}', 'null'])
def test_a_malformed_tolerance_is_named(tmp_path: Path, entry: str) -> None:
    """A hand-edited tolerance that is no number >= 0 (a string as "inf" is stored, a negative
    one, a list) is refused naming the file, where a TypeError used to surface mid-comparison
    (or a negative tolerance made every change "moved")."""
    path = tmp_path / "tolerances.json"
    path.write_text(f'{{"laptop": {entry}}}')
    with pytest.raises(ValueError, match="tolerances.json"):
        verify.load_tolerances(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="JSON object"):
        verify.load_tolerances(path)


def test_a_notebook_that_did_not_complete_is_not_ok(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook whose run.json says 'failed' or 'running' left partial or stale tables: its
    verdicts are not checked, so verify fails (it reported OK on the identical stale tables);
    'completed', or no run.json (a legacy run, the committed figures/), is accepted."""
    tables = _tables([0.7, 0.2, 0.9], [True, False])
    ref = _run_folder(tmp_path / "ref", "smoke", tables)
    run = _run_folder(tmp_path / "run", "smoke", tables)
    assert verify.verify(run, ref, tolerances={}).ok  # no run.json: legacy, accepted
    record = {"notebook": "01_x.ipynb", "preset": "smoke", "params": {}, "started": "t"}
    (run / "01_x" / "run.json").write_text(json.dumps({**record, "status": "completed"}))
    assert verify.verify(run, ref, tolerances={}).ok
    for status in ("failed", "running"):
        (run / "01_x" / "run.json").write_text(json.dumps(
            {**record, "status": status, "error": "ValueError: boom"}))
        report = verify.verify(run, ref, tolerances={})
        assert not report.ok and len(report.lost) == 1, report.lost
        assert report.lost[0].startswith(f"01_x: the run's run.json says '{status} (ValueError")
        assert "NOT CHECKED 01_x" in report.text() and "FAIL" in report.text()
    (run / "01_x" / "run.json").write_text("{not json")
    assert not verify.verify(run, ref, tolerances={}).ok
    monkeypatch.setattr(verify, "TOLERANCE_FILE", tmp_path / "tolerances.json")
    assert runner.main(["verify", str(run), "--reference", str(ref)]) == 1
    capsys.readouterr()


def test_measure_refuses_a_missing_or_repeated_run_and_keeps_the_stored_tolerances(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    stored = tmp_path / "tolerances.json"
    stored.write_text(json.dumps({"laptop": {"01_x/01a.csv": {"cka": 0.05}}}))
    monkeypatch.setattr(verify, "TOLERANCE_FILE", stored)
    run = _run_folder(tmp_path / "s0", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    missing = [str(tmp_path / "a"), str(tmp_path / "b")]
    for measure in ([str(run), str(tmp_path / "s1-typo")], missing, [str(run), str(run)]):
        assert runner.main(["verify", "--measure", *measure]) == 1
        assert "give" in capsys.readouterr().err
    assert json.loads(stored.read_text()) == {"laptop": {"01_x/01a.csv": {"cka": 0.05}}}


def test_a_run_mixing_presets_is_refused_naming_them(tmp_path: Path) -> None:
    """`run --preset smoke --only 01` into figures/ leaves laptop tables beside smoke ones:
    only the first record (00's) was read, so smoke tables were judged against laptop ones with
    laptop tolerances (five verdicts "flipped") without a word about presets."""
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    _run_folder(ref, "laptop", {"00_a/t.csv": pd.DataFrame({"v": [1.0]})})
    mixed = _run_folder(tmp_path / "mixed", "laptop", {"00_a/t.csv": pd.DataFrame({"v": [1.0]})})
    _run_folder(mixed, "smoke", _tables([0.6, 0.2, 0.9], [False, False]))
    for call in (lambda: verify.verify(mixed, ref, tolerances={}),
                 lambda: verify.measure_tolerances([mixed, ref])):
        with pytest.raises(ValueError, match=r"different presets \(laptop: 00_a; smoke: 01_x\)"):
            call()


def test_measure_refuses_runs_with_the_same_knobs(tmp_path: Path) -> None:
    """Two runs of a notebook with the same knobs (the seed knob forgotten) measured 0 in every
    column, and stored, every later rerun on another machine failed --strict."""
    import shutil

    run = _run_folder(tmp_path / "s0", "smoke", _tables([0.7, 0.2, 0.9], [True, False]))
    copy = Path(shutil.copytree(run, tmp_path / "s0-again"))
    with pytest.raises(ValueError, match=r"ran 01_x with the same knobs.*-p seed N"):
        verify.measure_tolerances([run, copy])


def test_measure_keeps_the_tolerances_of_a_notebook_only_one_run_holds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of 01 + 02 and of 01 alone: 02's stored tolerances were dropped (the notebooks
    replaced were those any run held) though nothing measured them, and the message said 02
    was measured."""
    stored = tmp_path / "tolerances.json"
    stored.write_text(json.dumps({"smoke": {"02_y/t.csv": {"cka": 0.05}}}))
    monkeypatch.setattr(verify, "TOLERANCE_FILE", stored)
    both = _run_folder(tmp_path / "s0", "smoke", {**_tables([0.7, 0.2, 0.9], [True, False]),
                                                  "02_y/t.csv": pd.DataFrame({"cka": [0.5]})})
    one = _run_folder(tmp_path / "s1", "smoke", _tables([0.6, 0.2, 0.9], [True, False]))
    assert runner.main(["verify", "--measure", str(both), str(one)]) == 0
    out = capsys.readouterr().out
    assert "of notebooks 01_x from 2 runs" in out
    assert "02_y in one run only: not measured, kept" in out
    table = json.loads(stored.read_text())["smoke"]
    assert table["02_y/t.csv"] == {"cka": 0.05}
    assert table["01_x/01a.csv"]["cka"] == pytest.approx(0.1)


def test_measures_of_two_notebooks_at_once_keep_both(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`verify --measure` of notebook 01's runs and of notebook 02's, side by side: each read
    tolerances.json before measuring and wrote it back after, so the later writer dropped the
    tables the other had just stored."""
    stored = tmp_path / "tolerances.json"
    monkeypatch.setattr(verify, "TOLERANCE_FILE", stored)
    ours = [str(_run_folder(tmp_path / f"a{s}", "smoke", {"01_x/t.csv": pd.DataFrame(
        {"cka": [0.5 + 0.1 * s]})})) for s in (0, 1)]
    theirs = [str(_run_folder(tmp_path / f"b{s}", "smoke", {"02_y/t.csv": pd.DataFrame(
        {"cka": [0.5 + 0.2 * s]})})) for s in (0, 1)]
    other = ("import sys\nfrom pathlib import Path\nfrom advlens import runner, verify\n"
             "verify.TOLERANCE_FILE = Path(sys.argv[1])\n"
             "sys.exit(runner.main(['verify', '--measure', *sys.argv[2:]]))\n")
    measure = verify.measure_tolerances

    def measured_while_another_process_stores(runs: list[str]) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-c", other, str(stored), *theirs],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return measure(runs)

    monkeypatch.setattr(verify, "measure_tolerances", measured_while_another_process_stores)
    assert runner.main(["verify", "--measure", *ours]) == 0
    capsys.readouterr()
    table = json.loads(stored.read_text())
    assert table["smoke"] == {"01_x/t.csv": {"cka": pytest.approx(0.1)},
                              "02_y/t.csv": {"cka": pytest.approx(0.2)}}


def test_cli_refuses_an_unknown_preset(capsys: pytest.CaptureFixture[str]) -> None:
    """A misspelled --preset used to pass, with only a note that it had no tolerances."""
    with pytest.raises(SystemExit) as stop:
        runner.main(["verify", "--preset", "lapotp"])
    assert stop.value.code == 2
    assert "invalid choice: 'lapotp'" in capsys.readouterr().err


def test_a_reference_without_tables_is_refused(tmp_path: Path) -> None:
    """A reference folder holding no <notebook>/<table>.csv (a notebook's own folder, a typo)
    made every run table 'new': a flipped verdict was reported OK, exit 0."""
    run = _run_folder(tmp_path / "run", "smoke", _tables([0.7, 0.2, 0.9], [False, False]))
    notebook = _run_folder(tmp_path / "ref", "smoke", _tables([0.7, 0.2, 0.9], [True, False]))
    for wrong in (notebook / "01_x", tmp_path / "empty"):
        wrong.mkdir(exist_ok=True)
        with pytest.raises(FileNotFoundError, match="reference .* holds no"):
            verify.verify(run, wrong, tolerances={})
    assert not verify.verify(run, notebook, tolerances={}).ok


def test_a_number_that_became_infinite_moved(tmp_path: Path) -> None:
    """pandas writes inf as "inf" (03b_qualitative's tolerance of an image never broken): a
    finite value that became inf was a "text or flag changed", and --measure skipped it (its
    column's tolerance stayed finite). It is a number that moved by |Δ| = inf, as in NumPy."""
    before, after = np.array([0.7, np.inf, 1.25, -np.inf]), np.array([0.7, 1.3, np.inf, np.inf])
    frames = [pd.DataFrame({"image": [0, 1, 2, 3], "tolerance": v}) for v in (before, after)]
    ref, run = (_run_folder(tmp_path / name, "smoke", {"03_x/03b.csv": frame})
                for name, frame in zip(("ref", "run"), frames, strict=True))
    report = verify.verify(run, ref, tolerances={"smoke": {"03_x/03b.csv": {"tolerance": 1.0}}})
    assert not report.structure and not report.relabelled
    expected = np.abs(before - after)
    assert [(c.row, c.delta) for c in report.moved] == [
        (row, delta) for row, delta in enumerate(expected) if delta > 1.0]
    assert verify.measure_tolerances([ref, run])["03_x/03b.csv"]["tolerance"] == math.inf


@pytest.mark.parametrize("a,b,delta", [
    ("inf", "inf", 0.0), ("-inf", "inf", math.inf), ("0.5", "-inf", math.inf),
    ("[0.1, inf]", "[0.2, inf]", 0.1), ("mean nan vs 0.5", "mean 0.4 vs 0.5", math.inf),
    ("mean nan vs 0.5", "mean NaN vs 0.75", 0.25), ("info 1", "info 2", 1.0),
    ("linf", "l2", None), ("nano", "nanu", None),
    # a findings statistic that became NaN is JSON null (encode_statistics): a number that
    # moved to NaN, not a text change; null beside null is level; "nullify" is a word
    ('{"rho": 0.5, "n": 3.0}', '{"rho": null, "n": 3.0}', math.inf),
    ('{"rho": null}', '{"rho": null}', 0.0), ("nullify 1", "nullify 2", 1.0),
])
def test_cell_delta_reads_inf_and_nan_as_numbers(a: str, b: str, delta: float | None) -> None:
    got = verify.cell_delta(a, b)
    assert got == delta if delta is None or math.isinf(delta) else got == pytest.approx(delta)


@pytest.mark.parametrize("a,b,delta", [
    ("ρ 0.601 [\u22120.361, 0.839]", "ρ 0.601 [0.361, 0.839]", 0.722),
    ("\u22120.5", "0.5", 1.0), ("\u22120.5", "-0.5", 0.0), ("\u22120.5", "\u22120.25", 0.25),
    ("within \u2212 across 0.05", "within \u2212 across 0.07", 0.02),  # an operator, no sign
    ("seed\u22121", "seed\u22122", None),  # a label, as "seed-1"
])
def test_cell_delta_reads_a_unicode_minus_as_a_sign(a: str, b: str,
                                                    delta: float | None) -> None:
    """A sign typeset as U+2212 was read as text: a CI bound that changed sign was a "text
    change", not a number that moved (and --measure left it out of the tolerance)."""
    got = verify.cell_delta(a, b)
    assert got is None if delta is None else got == pytest.approx(delta)


def test_measure_replaces_only_the_notebooks_its_runs_hold(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Remeasuring from two runs of `--only 01` deleted every other notebook's tolerances of
    that preset (02's, 03's... were gone from tolerances.json); they are kept."""
    stored = tmp_path / "tolerances.json"
    other = {"02_y/02a.csv": {"rate": 0.1}}
    stored.write_text(json.dumps({"smoke": {**other, "01_x/01a.csv": {"cka": 9.0}}}))
    monkeypatch.setattr(verify, "TOLERANCE_FILE", stored)
    runs = [str(_run_folder(tmp_path / f"s{i}", "smoke", _tables([0.7 + i / 10, 0.2, 0.9],
                                                                    [True, False])))
            for i in range(2)]
    assert runner.main(["verify", "--measure", *runs]) == 0
    table = json.loads(stored.read_text())["smoke"]
    assert table["02_y/02a.csv"] == other["02_y/02a.csv"]
    assert table["01_x/01a.csv"]["cka"] == pytest.approx(0.1)
    assert "1 tables of other notebooks kept" in capsys.readouterr().out


def test_measure_refuses_runs_of_two_presets_or_an_unfinished_notebook(tmp_path: Path) -> None:
    """verify refuses both; --measure took them and stored tolerances spanning two presets or
    measured on a failed notebook's partial tables."""
    tables = _tables([0.7, 0.2, 0.9], [True, False])
    smoke = _run_folder(tmp_path / "smoke", "smoke", tables)
    laptop = _run_folder(tmp_path / "laptop", "laptop", _tables([0.1, 0.2, 0.9], [True, False]))
    with pytest.raises(ValueError, match="different presets"):
        verify.measure_tolerances([smoke, laptop])
    failed = _run_folder(tmp_path / "failed", "smoke", tables)
    (failed / "01_x" / "run.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(ValueError, match="did not complete.*01_x"):
        verify.measure_tolerances([smoke, failed])


def test_a_run_of_some_notebooks_is_compared_on_those(tmp_path: Path) -> None:
    """verify of `run --only 01` (the README's example; a sweep's grid of 01 and 02) failed:
    every other notebook's findings table read "missing in the run", a verdict not checked.
    A notebook the run does not hold at all is listed, not failed; a findings table gone from
    a notebook the run holds still fails."""
    tables = _tables([0.7, 0.2, 0.9], [True, False])
    other = {name.replace("01_x/01", "02_y/02"): frame for name, frame in tables.items()}
    ref = _run_folder(tmp_path / "ref", "smoke", {**tables, **other})
    part = _run_folder(tmp_path / "part", "smoke", tables)
    report = verify.verify(part, ref, tolerances={})
    assert report.ok and report.strict_ok and report.absent == ["02_y"] and not report.lost
    assert "not in this run (not compared): 02_y" in report.text()
    report = verify.verify(_run_folder(tmp_path / "gone", "smoke", {
        "01_x/01a.csv": tables["01_x/01a.csv"], **other}), ref, tolerances={})
    assert not report.ok and report.lost and not report.absent
    # a notebook folder whose tables were all deleted is no partial run: it fails
    emptied = _run_folder(tmp_path / "emptied", "smoke", {**tables, **other})
    for csv in (emptied / "02_y").glob("*.csv"):
        csv.unlink()
    report = verify.verify(emptied, ref, tolerances={})
    assert not report.ok and not report.absent and "02_y/02_findings.csv" in report.lost[0]
    # a run of none of the reference's notebooks compares nothing: refused
    with pytest.raises(FileNotFoundError, match="holds none of the reference's notebooks"):
        verify.verify(_run_folder(tmp_path / "other", "smoke", {
            "03_z/03a.csv": tables["01_x/01a.csv"]}), ref, tolerances={})


def test_strict_ends_with_a_failure_line_when_only_numbers_moved(tmp_path: Path) -> None:
    """Under --strict a number moved beyond its tolerance exits 2, but the last line read
    "OK: every verdict unchanged"."""
    ref = _run_folder(tmp_path / "ref", "smoke", _tables([0.7, 0.2, 0.9], [True, False]))
    run = _run_folder(tmp_path / "run", "smoke", _tables([0.7, 0.7, 0.9], [True, False]))
    tol = {"smoke": {"01_x/01a.csv": {"row": 0.0, "cka": 0.01},
                     "01_x/01_findings.csv": {"finding": 0.0, "evidence": 0.01}}}
    report = verify.verify(run, ref, tolerances=tol)
    assert report.ok and not report.strict_ok
    assert report.text().splitlines()[-1] == "  OK: every verdict unchanged"
    last = report.text(strict=True).splitlines()[-1]
    assert last.startswith("  FAIL (--strict)") and "beyond their tolerance" in last


def _set_parameters(folder: Path, notebook: str, **knobs: Any) -> None:
    for record in (folder / notebook).glob("*.provenance.json"):
        data = json.loads(record.read_text())
        data["parameters"].update(knobs)
        record.write_text(json.dumps(data))


def test_a_run_at_other_knobs_is_named_and_fails_strict(tmp_path: Path) -> None:
    """A smoke 01 run at n_data 64 against one at 128 read 'within tolerance ... OK', also under
    --strict: tables of other knobs are another experiment (review). Seeds differ by design."""
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    run = _run_folder(tmp_path / "run", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    tol = {"laptop": {"01_x/01a.csv": {"row": 0.0, "cka": 0.05}}}
    report = verify.verify(run, ref, tolerances=tol)
    assert report.knobs == ["01_x seed: 'ref' -> 'run'"] and not report.knob_changes
    assert report.strict_ok
    assert "KNOB 01_x seed: 'ref' -> 'run' (a seed" in report.text()
    _set_parameters(run, "01_x", n_data=64, iterations=[1, 2])
    report = verify.verify(run, ref, tolerances=tol)
    assert report.ok and not report.strict_ok
    assert report.knob_changes == ["01_x iterations: 'not recorded' -> [1, 2]",
                                   "01_x n_data: 'not recorded' -> 64"]
    # the failure line says why (it ended "every verdict unchanged, but " and nothing more)
    assert report.text(strict=True).splitlines()[-1] == (
        "  FAIL (--strict): every verdict unchanged, but knobs other than the seeds changed")
    assert runner.main(["verify", str(run), "--reference", str(ref), "--strict"]) == 2


def test_compute_lists_every_value_of_the_run_and_unmeasured_cells_are_itemised(
        tmp_path: Path) -> None:
    """Only the first provenance record's compute was shown (a notebook run with other threads
    was hidden), and changed numbers without a tolerance were named by table only (review)."""
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    run = _run_folder(tmp_path / "run", "laptop", _tables([0.7, 0.25, 0.9], [True, False]))
    record = run / "01_x" / "01a.provenance.json"
    data = json.loads(record.read_text())
    data["compute"] = {"cpu_capability": "AVX2"}
    record.write_text(json.dumps(data))
    report = verify.verify(run, ref, tolerances={"laptop": {}})
    assert report.compute["cpu_capability"] == ("AVX512", "AVX2, AVX512")
    text = report.text()
    assert "UNMEASURED 01_x/01a.csv row 1 cka: 0.2 -> 0.25" in text


def test_a_zoo_of_other_weights_is_named(tmp_path: Path) -> None:
    """A laptop run on a zoo retrained on this machine moved 15 of 47 test accuracies under the
    same config hashes, and verify named only a thread count (review): the weights differ."""
    def zoo(shas: list[str | None]) -> pd.DataFrame:
        frame = pd.DataFrame({"name": ["a", "b", "c"], "hash": ["h1", "h2", "h3"],
                              "test_acc": [0.9, 0.8, 0.7]})
        return frame if shas[0] is None else frame.assign(weights_sha256=shas)

    tables = _tables([0.7, 0.2, 0.9], [True, False])
    ref = _run_folder(tmp_path / "ref", "laptop",
                      {**tables, verify.ZOO_TABLE: zoo(["x1", "x2", "x3"])})
    same = _run_folder(tmp_path / "same", "laptop",
                       {**tables, verify.ZOO_TABLE: zoo(["x1", "x2", "x3"])})
    other = _run_folder(tmp_path / "other", "laptop",
                        {**tables, verify.ZOO_TABLE: zoo(["x1", "y2", "x3"])})
    old = _run_folder(tmp_path / "old", "laptop", {**tables, verify.ZOO_TABLE: zoo([None])})
    assert not any("weights" in n for n in verify.verify(same, ref, tolerances={}).notes)
    report = verify.verify(other, ref, tolerances={})
    assert any("the zoo's weights differ for 1 of 3 models (b;" in n for n in report.notes)
    assert report.strict_ok  # named once in the note, not a changed cell that fails --strict
    notes = verify.verify(ref, old, tolerances={}).notes
    assert any("the reference does not record its zoo's weights" in n for n in notes)
    # a model trained from another config (its hash differs, e.g. other epochs) is said apart:
    # no copy of a zoo cache makes it alike
    other_recipe = zoo(["x1", "y2", "y3"]).assign(hash=["h1", "h2", "h3-other-epochs"])
    recipe = _run_folder(tmp_path / "recipe", "laptop",
                         {**tables, verify.ZOO_TABLE: other_recipe})
    notes = verify.verify(recipe, ref, tolerances={}).notes
    assert any("differ for 1 of 3 models because their configs differ (c;" in n for n in notes)
    assert any("differ for 1 of 3 models (b;" in n and "another CPU" in n for n in notes)


def test_measure_keep_larger_raises_each_column_to_the_stored_tolerance(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--keep-larger keeps the stored tolerances, each raised to the measured one where that is
    larger (earlier sessions merged them by hand); a stored value nothing measured stays, the
    earlier runs stay on record, and without --measure the flag is refused."""
    stored = tmp_path / "tolerances.json"
    stored.write_text(json.dumps({
        "laptop": {"01_x/01a.csv": {"cka": 0.5, "row": 0.0, "gone": 3.0},
                   "01_x/01_findings.csv": {"evidence": 0.05, "holds": "inf"},
                   "01_x/old.csv": {"v": 0.2}, "02_y/t.csv": {"v": 0.25}},
        "_measured_from": {"laptop_01": ["machine A s0", "machine A s1"]}}))
    monkeypatch.setattr(verify, "TOLERANCE_FILE", stored)
    s0 = _run_folder(tmp_path / "s0", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    s1 = _run_folder(tmp_path / "s1", "laptop", _tables([0.6, 0.2, 0.95], [True, False]))
    measured = verify.measure_tolerances([s0, s1])
    assert measured["01_x/01_findings.csv"]["evidence"] == pytest.approx(0.1)
    assert runner.main(["verify", "--measure", str(s0), str(s1), "--keep-larger"]) == 0
    assert "the larger of the stored and the measured" in capsys.readouterr().out
    table = json.loads(stored.read_text())
    # stored 0.5 above the measured 0.1 stays; a column nothing measured stays
    assert table["laptop"]["01_x/01a.csv"] == {"row": 0.0, "cka": 0.5, "gone": 3.0}
    findings = table["laptop"]["01_x/01_findings.csv"]
    assert findings["evidence"] == pytest.approx(0.1)  # measured 0.1 above the stored 0.05
    assert findings["holds"] == "inf" and findings["finding"] == 0.0
    assert table["laptop"]["01_x/old.csv"] == {"v": 0.2}  # not in these runs: kept
    assert table["laptop"]["02_y/t.csv"] == {"v": 0.25}  # another notebook: kept
    record = table["_measured_from"]["laptop_01"]
    assert record[:4] == ["machine A s0", "machine A s1", str(s0), str(s1)]
    assert "--keep-larger" in record[-1]
    # without the flag the measured values replace the stored ones of that notebook
    assert runner.main(["verify", "--measure", str(s0), str(s1)]) == 0
    replaced = json.loads(stored.read_text())
    assert replaced["laptop"]["01_x/01a.csv"]["cka"] == pytest.approx(0.1)
    assert "01_x/old.csv" not in replaced["laptop"]
    assert replaced["_measured_from"]["laptop_01"] == [str(s0), str(s1)]
    assert runner.main(["verify", "--keep-larger"]) == 1
    assert "add --measure" in capsys.readouterr().err


def _stats_run(root: Path, rows: list[tuple[str, dict[str, Any]]]) -> Path:
    table = pd.DataFrame({"finding": [r[0] for r in rows], "holds": [True] * len(rows),
                          "statistics": [json.dumps(r[1]) for r in rows]})
    return _run_folder(root, "laptop", {"03_x/03_findings.csv": table})


def _findings_run(root: Path, rho: float, p: float, n: int = 37) -> Path:
    table = pd.DataFrame({
        "finding": ["1 rises", "2 falls"], "holds": [True, False],
        "evidence": [f"rho = {rho:.2f}, p = {p:.2f} (n = {n})", "slope 0.5"],
        "statistics": [json.dumps({"rho": rho, "p": p}), json.dumps({"slope": 0.5})]})
    return _run_folder(root, "laptop", {"03_x/03_findings.csv": table})


def test_a_findings_statistic_has_a_tolerance_of_its_own(tmp_path: Path) -> None:
    """A findings table's cells hold several quantities each: one tolerance per column, the
    largest seed-to-seed move of any of them (a p-value's), let a rho move from 0.02 to 0.95
    unflagged (review). Tolerances are measured per finding and per statistic; a column's
    stays the fallback for a statistic the runs did not measure."""
    seed0 = _findings_run(tmp_path / "s0", rho=0.02, p=0.10)
    seed1 = _findings_run(tmp_path / "s1", rho=0.03, p=0.90)
    measured = verify.measure_tolerances([seed0, seed1])["03_x/03_findings.csv"]
    assert measured["statistics"] == pytest.approx(0.8)  # the column's: the p-value's move
    assert measured[verify.findings_key("statistics", "1 rises", "rho")] == pytest.approx(0.01)
    assert measured[verify.findings_key("statistics", "1 rises", "p")] == pytest.approx(0.8)
    assert measured[verify.findings_key("statistics", "2 falls", "slope")] == 0.0
    assert measured[verify.findings_key("evidence", "1 rises")] == pytest.approx(0.8)
    tolerances = {"laptop": {"03_x/03_findings.csv": measured}}
    # p moving within its own seed-to-seed spread: within tolerance
    near = _findings_run(tmp_path / "near", rho=0.02, p=0.5)
    report = verify.verify(near, seed0, tolerances=tolerances)
    assert report.strict_ok and report.within == ["03_x/03_findings.csv"]
    # rho far beyond its own: flagged, by name, though the column's tolerance would cover it
    far = _findings_run(tmp_path / "far", rho=0.95, p=0.10)
    report = verify.verify(far, seed0, tolerances=tolerances)
    assert report.ok and not report.strict_ok
    assert {(c.column, c.reference, c.run) for c in report.moved} == {
        ("statistics.rho", "0.02", "0.95"),  # and the evidence: 0.93 beyond its 0.8
        ("evidence", "rho = 0.02, p = 0.10 (n = 37)", "rho = 0.95, p = 0.10 (n = 37)")}
    assert "MOVED 03_x/03_findings.csv row 0 statistics.rho: 0.02 -> 0.95" in report.text()
    # tolerances measured before (the column's alone) still apply
    old = {"laptop": {"03_x/03_findings.csv": {"statistics": 1.0, "evidence": 1.0}}}
    assert verify.verify(far, seed0, tolerances=old).strict_ok


def test_another_presets_tolerances_are_refused(tmp_path: Path) -> None:
    """--preset smoke on a laptop run applied smoke's (6x looser) tolerances silently: a move
    beyond laptop's passed --strict (review)."""
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    run = _run_folder(tmp_path / "run", "laptop", _tables([0.73, 0.2, 0.9], [True, False]))
    tol = {"laptop": {"01_x/01a.csv": {"row": 0.0, "cka": 0.006}},
           "smoke": {"01_x/01a.csv": {"row": 0.0, "cka": 0.04}}}
    with pytest.raises(ValueError, match="--preset smoke but the run .* used preset 'laptop'"):
        verify.verify(run, ref, tolerances=tol, preset="smoke")
    report = verify.verify(run, ref, tolerances=tol, preset="laptop")
    assert not report.strict_ok and "note: tolerances of preset 'laptop'" in report.text()


def test_a_table_of_another_shape_is_counted(tmp_path: Path) -> None:
    """The count line left out a table whose columns changed ("1 tables compared" of 2)."""
    ref = _run_folder(tmp_path / "ref", "laptop", _tables([0.7, 0.2, 0.9], [True, False]))
    tables = _tables([0.7, 0.2, 0.9], [True, False])
    tables["01_x/01a.csv"]["extra"] = 1
    run = _run_folder(tmp_path / "run", "laptop", tables)
    report = verify.verify(run, ref, tolerances={})
    assert report.reshaped == ["01_x/01a.csv"] and not report.strict_ok
    assert ("2 tables compared: 1 identical, 0 within tolerance (not identical), 0 changed "
            "with no measured tolerance, 0 with text or flags changed, 0 with numbers beyond "
            "tolerance, 1 with other columns or rows (not compared cell by cell)"
            ) in report.text()


def test_the_same_numbers_written_otherwise_are_identical(tmp_path: Path) -> None:
    """"0.5" / "0.50" and "nan" / "NaN" are the same values: the table is identical, not
    "within tolerance" with a largest move of 0 (review of the per-statistic change)."""
    ref = _run_folder(tmp_path / "ref", "laptop", {"01_x/01a.csv": pd.DataFrame(
        {"row": ["a", "b"], "cka": ["0.5", "nan"]})})
    run = _run_folder(tmp_path / "run", "laptop", {"01_x/01a.csv": pd.DataFrame(
        {"row": ["a", "b"], "cka": ["0.50", "NaN"]})})
    report = verify.verify(run, ref, tolerances={})
    assert report.identical == ["01_x/01a.csv"] and not report.max_delta


def test_a_changed_flag_does_not_hide_a_statistic_that_moved(tmp_path: Path) -> None:
    """A flag in a findings statistic that changed stopped the cell's other statistics from
    being checked: a rho far beyond its tolerance beside it was not reported as moved."""
    def run(root: Path, significant: bool, rho: float) -> Path:
        return _stats_run(root, [("1 rises", {"significant": significant, "rho": rho})])

    tolerances = {"laptop": {"03_x/03_findings.csv": {
        verify.findings_key("statistics", "1 rises", "rho"): 0.05}}}
    report = verify.verify(run(tmp_path / "b", False, 0.95), run(tmp_path / "a", True, 0.02),
                           tolerances=tolerances)
    assert len(report.structure) == 1 and "text or flag changed" in report.structure[0]
    assert [(c.column, c.reference, c.run) for c in report.moved] == [
        ("statistics.rho", "0.02", "0.95")]


def test_findings_statistics_are_matched_by_name(tmp_path: Path) -> None:
    """Review: a statistic added beside a moved rho hid the move; two findings in another order
    read as both moved; the same statistics in another key order read as changed text."""
    key = verify.findings_key
    tol = {"laptop": {"03_x/03_findings.csv": {key("statistics", "A", "rho"): 0.05,
                                               key("statistics", "B", "rho"): 0.05}}}
    ref = _stats_run(tmp_path / "ref", [("A", {"rho": 0.02, "p": 0.5}), ("B", {"rho": 0.9})])
    added = _stats_run(tmp_path / "added", [("A", {"rho": 0.95, "p": 0.5, "n": 5}),
                                            ("B", {"rho": 0.9})])
    report = verify.verify(added, ref, tolerances=tol)
    assert [(c.column, c.reference, c.run) for c in report.moved] == [
        ("statistics.rho", "0.02", "0.95")]
    assert len(report.structure) == 1 and "text or flag changed" in report.structure[0]
    swapped = _stats_run(tmp_path / "swapped", [("B", {"rho": 0.9}),
                                                ("A", {"p": 0.5, "rho": 0.02})])
    report = verify.verify(swapped, ref, tolerances=tol)
    assert not report.moved and report.identical == ["03_x/03_findings.csv"]
    assert report.structure == ["03_x/03_findings.csv: the findings are in another order"]
    assert not report.strict_ok


def test_a_verdict_that_flipped_between_seeds_is_measured_and_tolerated(tmp_path: Path) -> None:
    """A verdict is no number: --measure read True -> False between seeds as no move (0), so
    verify failed a run whose verdict flipped exactly as it had between the seeds the preset's
    tolerances came from (smoke, where verdicts are noise). Now a changed verdict measures inf,
    per finding and for the column, and verify lists such a flip as seed-dependent, not failed;
    a verdict that held between those seeds still fails."""
    seed0 = _run_folder(tmp_path / "s0", "smoke", _tables([0.7, 0.2, 0.9], [True, False]))
    seed1 = _run_folder(tmp_path / "s1", "smoke", _tables([0.7, 0.2, 0.9], [False, False]))
    measured = verify.measure_tolerances([seed0, seed1])["01_x/01_findings.csv"]
    assert measured["holds"] == math.inf
    assert measured[verify.findings_key("holds", "(a) drop")] == math.inf
    assert measured[verify.findings_key("holds", "(b) rise")] == 0.0
    flips_a = _run_folder(tmp_path / "a", "smoke", _tables([0.7, 0.2, 0.9], [False, False]))
    flips_b = _run_folder(tmp_path / "b", "smoke", _tables([0.7, 0.2, 0.9], [True, True]))
    per_finding = {"smoke": {"01_x/01_findings.csv": measured}}
    report = verify.verify(flips_a, seed0, tolerances=per_finding)
    assert report.ok and not report.flipped
    assert [c.column for c in report.seed_flips] == ["(a) drop holds"]
    assert "1 unchanged, 0 flipped, 1 flipped as between seeds" in report.text()
    assert "SEED-DEPENDENT 01_x/01_findings.csv: (a) drop holds True -> False" in report.text()
    assert report.text().endswith("OK: every verdict unchanged but those that change between "
                                  "seeds at this preset")
    report = verify.verify(flips_b, seed0, tolerances=per_finding)
    assert not report.ok and [c.column for c in report.flipped] == ["(b) rise holds"]
    # findings in another order between the seeds: matched by name, as verify matches them
    reordered = _tables([0.7, 0.2, 0.9], [False, False])
    reordered["01_x/01_findings.csv"] = reordered["01_x/01_findings.csv"].iloc[::-1]
    seed2 = _run_folder(tmp_path / "s2", "smoke", reordered)
    by_name = verify.measure_tolerances([seed0, seed2])["01_x/01_findings.csv"]
    assert by_name["holds"] == math.inf
    assert by_name[verify.findings_key("holds", "(a) drop")] == math.inf
    assert by_name[verify.findings_key("holds", "(b) rise")] == 0.0
    # --strict fails on the moved number, and does not call the flipped verdict unchanged
    moved = _run_folder(tmp_path / "m", "smoke", _tables([0.9, 0.2, 0.9], [False, False]))
    strict = verify.verify(moved, seed0, tolerances={"smoke": {
        "01_x/01a.csv": {"row": 0.0, "cka": 0.01}, "01_x/01_findings.csv": measured}})
    assert strict.ok and not strict.strict_ok
    assert ("FAIL (--strict): every verdict unchanged (but the seed-dependent ones), but "
            "numbers moved") in strict.text(strict=True)
    # the column's tolerance where no finding's own is stored (as smoke's are kept)
    column_only = {"smoke": {"01_x/01_findings.csv": {"holds": math.inf}}}
    assert verify.verify(flips_b, seed0, tolerances=column_only).ok
    assert not verify.verify(flips_b, seed0, tolerances={
        "smoke": {"01_x/01_findings.csv": {"holds": 0.0}}}).ok
