"""Notebook conventions (hygiene) and a smoke-preset run of every numbered notebook."""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from advlens import presets, runner

NOTEBOOKS = runner.discover()
IDS = [p.stem for p in NOTEBOOKS]
MAX_CODE_LINES = 40


def _cells(path: Path) -> list[nbformat.NotebookNode]:
    return nbformat.read(path, as_version=4).cells


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path: Path) -> None:
    for i, cell in enumerate(_cells(path)):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs; clear them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_one_parameters_cell_with_every_knob(path: Path) -> None:
    declared = runner.notebook_parameters(path)  # raises unless exactly one parameters cell
    number = path.name[:2]
    assert declared.get("preset") == "laptop", "the default preset must be 'laptop'"
    assert "out_dir" in declared
    knobs = set().union(*(set(t) for t in presets.PRESETS[number].values()))
    missing = sorted(knobs - set(declared))
    assert not missing, f"{path.name}: knobs {missing} are in PRESETS but not in parameters"
    cell = next(c for c in _cells(path) if "parameters" in c.metadata.get("tags", []))
    bare = [line for line in cell.source.splitlines() if "=" in line and "  # " not in line]
    assert not bare, f"{path.name}: knobs without a comment saying what they do: {bare}"
    source = "\n".join(c.source for c in _cells(path) if c.cell_type == "code")
    assert f'from_namespace("{number}", globals())' in source, \
        f"{path.name} must take its knobs with presets.from_namespace({number!r}, globals())"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_teaches_and_keeps_logic_in_lib(path: Path) -> None:
    cells = _cells(path)
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    markdown = [c for c in cells if c.cell_type == "markdown"]
    code = [c for c in cells if c.cell_type == "code"]
    assert len(markdown) >= max(3, len(code) // 2), f"{path.name} needs more explanation"
    for i, cell in enumerate(code):
        tree = ast.parse(cell.source)
        defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        assert not defs, f"{path.name}: define functions in lib/advlens, not in cell {i}"
        assert len(cell.source.splitlines()) <= MAX_CODE_LINES, f"{path.name}: cell {i} too long"


def _resolves(dotted: str) -> bool:
    """Whether ``a.b.c`` names a module or an attribute reached from the longest module prefix."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_prose_names_only_functions_that_exist(path: Path) -> None:
    """A reader who looks up a backticked `advlens.…` name of the prose finds it."""
    names = {name for cell in _cells(path) if cell.cell_type == "markdown"
             for name in re.findall(r"`(advlens(?:\.\w+)+)", cell.source)}
    missing = sorted(name for name in names if not _resolves(name))
    assert not missing, f"{path.name}: the prose names {missing}, which do not exist"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_on_smoke_preset(path: Path, smoke_run: Callable[..., Path | None]) -> None:
    figures = sorted(smoke_run(path.name[:2]).glob("*.png"))
    assert figures, f"{path.name} saved no figure"
    for png in figures:
        for suffix in (".pdf", ".csv", ".provenance.json"):
            assert png.with_name(png.stem + suffix).exists(), f"{png.stem}{suffix} missing"
        record = json.loads(png.with_name(png.stem + ".provenance.json").read_text())
        assert record["parameters"]["preset"] == "smoke"
        assert {"git_commit", "versions", "wall_time_s", "seed"} <= set(record)
        # plots.save_figure checks the drawn figure: no overlapping labels, titles, axis labels
        assert record.get("layout_problems") == [], f"{png.name}: {record['layout_problems']}"
        assert record.get("caption"), f"{png.name} has no caption"


def test_cli_wrong_knob_fails_before_running(tmp_path: Path) -> None:
    import subprocess
    import sys

    for number, knob, value, expected in [("01", "iterations", "'abc'", "TypeError"),
                                          ("00", "zoo_preset", "nope", "choose one of"),
                                          ("02", "transfer_targeted_metric", "top-5",
                                           "choose one of success, top5")]:
        proc = subprocess.run(
            [sys.executable, "-m", "advlens", "run", "--preset", "smoke", "--only", number,
             "--out", str(tmp_path), "--no-progress", "-p", knob, value],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith(f"advlens: notebook {number}: knob {knob!r}"), line
        assert expected in line or expected == "TypeError" and "expected int" in line, line
        assert not list(tmp_path.rglob("*.ipynb")), "nothing may run before the knobs are checked"
