"""Notebook conventions (hygiene) and a smoke-preset run of every numbered notebook."""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

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


def _cell_with(number: str, text: str) -> str:
    """The source of notebook ``number``'s one code cell that contains ``text``."""
    path = next(iter(runner.discover([number])))
    found = [c.source for c in _cells(path) if c.cell_type == "code" and text in c.source]
    assert len(found) == 1, f"{path.name}: {len(found)} code cells contain {text!r}"
    return found[0]


def _tiny_mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 12), torch.nn.ReLU(),
                               torch.nn.Linear(12, 5))


def _uncentred_cka(x: object, y: object) -> float:
    """Linear CKA without the centring (the mistake the by-hand check must catch)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(np.linalg.norm(y.T @ x) ** 2
                 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_notebook_01_cka_by_hand_checks_the_centring_and_the_heatmap_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The by-hand CKA cell gave linear_cka features it had centred already, so a library that
    forgot to centre passed it (ReLU features: 0.95 for 0.40 on the smoke zoo), and it never
    looked at cka_matrix, which computes the heatmaps. Both mistakes must now fail its assert."""
    from advlens import cka, features
    from advlens.papers import jones2022

    source = _cell_with("01", "by_hand = np.linalg.norm")
    models = [_tiny_mlp(0), _tiny_mlp(1)]
    namespace = {"ZOO": SimpleNamespace(entries=[SimpleNamespace(model=m, name=f"m{i}")
                                                 for i, m in enumerate(models)]),
                 "test": SimpleNamespace(images=torch.rand(64, 1, 8, 8,
                                                           generator=torch.Generator()
                                                           .manual_seed(2))),
                 "features": features, "cka": cka, "jones2022": jones2022, "np": np}
    exec(source, dict(namespace))  # the library as it is: the check passes

    def uncentred_matrix(reps: dict, **_: object) -> pd.DataFrame:
        names = list(reps)
        return pd.DataFrame([[_uncentred_cka(reps[a], reps[b]) for b in names] for a in names],
                            index=names, columns=names)

    for target, name, wrong in [(cka, "linear_cka", lambda x, y, **_: _uncentred_cka(x, y)),
                                (jones2022, "cka_matrix", uncentred_matrix)]:
        with monkeypatch.context() as m:
            m.setattr(target, name, wrong)
            with pytest.raises(AssertionError):
                exec(source, dict(namespace))


@pytest.mark.parametrize("loss", ["logit", "ce"])
def test_notebook_02_fgsm_by_hand_checks_the_eps_search_the_suite_runs(
        monkeypatch: pytest.MonkeyPatch, loss: str) -> None:
    """The suite's FGSM row comes from attacks.fgsm_search, which the by-hand cell did not call:
    a search returning examples, eps or norms 1 % off passed it. Each must now fail its assert."""
    import dataclasses

    from advlens import attacks, resample

    source = _cell_with("02", "x_fgsm = ")
    model = _tiny_mlp(3).eval()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = model(x).argmax(1)  # every image classified "correctly"
    namespace = {"MODELS": {"m": model}, "SIDES": {"m": None}, "x": x, "y": y,
                 "P": {"search_start": 0.02, "search_tries": 6, "search_loss": loss},
                 "attacks": attacks,
                 "resample": resample, "torch": torch}
    checked = dict(namespace)
    exec(source, checked)  # the library as it is: the check passes
    assert bool(checked["ok"].any()), "the search should fool some of the images"
    search = attacks.fgsm_search
    for field in ("adv", "eps", "norms"):
        def off(*args: object, field: str = field, **kw: object) -> object:
            r = search(*args, **kw)
            return dataclasses.replace(r, **{field: getattr(r, field) * 1.01})
        with monkeypatch.context() as m:
            m.setattr(attacks, "fgsm_search", off)
            with pytest.raises(AssertionError):
                exec(source, dict(namespace))


def test_notebook_02_fgsm_by_hand_counts_only_images_the_model_got_right(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The cell printed "fools 62% of these 16 images" for a model that misclassified 9 of
    them before any step (the smoke zoo's cnn-s; an ImageNet model gets about 1 in 4 wrong):
    an image already wrong counted as fooled, in the FGSM step's count and the eps search's."""
    from advlens import attacks, resample

    source = _cell_with("02", "x_fgsm = ")
    model = _tiny_mlp(5).eval()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:5] = (y[:5] + 1) % 5  # five images the model gets wrong before any attack
    eps = 0.05
    x_grad = x.clone().requires_grad_(True)  # the reference: the raw-logit FGSM step by hand
    (grad,) = torch.autograd.grad(-model(x_grad).gather(1, y[:, None]).sum(), x_grad)
    with torch.no_grad():
        expected = int((model((x + eps * grad.sign()).clamp(0, 1))[5:].argmax(1) != y[5:]).sum())
    namespace = {"MODELS": {"m": model}, "SIDES": {"m": None}, "x": x, "y": y,
                 "P": {"search_start": 0.02, "search_tries": 6, "search_loss": "logit"},
                 "attacks": attacks, "resample": resample, "torch": torch}
    exec(source, namespace)
    out = capsys.readouterr().out
    assert f"fools {expected} of the 11 of these 16 images it classifies correctly" in out, out
    found = namespace["found"]
    searched = int(found.success[5:].sum())
    assert f"eps search: {searched} of those 11 fooled (eps 0 for the 5 others)" in out, out
