"""Prose agrees with data: README's findings are the committed tables', and no notebook types a
measured result by hand (the findings are rendered from the tables when the notebook runs)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from advlens import findings, runner
from advlens.paths import figures_dir, repo_root

_DECIMAL = re.compile(r"(?<![\w.])\d*\.\d{2,}(?![\d])")
# sentences quoting the paper's own numbers (typed on purpose) mention it
_QUOTES_PAPER = re.compile(r"paper|ImageNet|published|Jones et al|Su et al|Linsley|Liang", re.I)


def test_readme_findings_are_the_committed_tables() -> None:
    text = (repo_root() / "README.md").read_text()
    generated = findings.readme_section(figures_dir())
    assert findings.current_section(text) == generated.strip("\n"), (
        "README's 'What holds' section differs from figures/*/*_findings.csv; run "
        "`python -m advlens readme` (and never edit that section by hand)")


def test_a_number_edited_by_hand_is_caught() -> None:
    text = (repo_root() / "README.md").read_text()
    section = findings.current_section(text)
    number = _DECIMAL.search(section)
    assert number is not None, "the generated section should carry numbers"
    edited = section[:number.start()] + "9" + section[number.start() + 1:]
    assert edited != findings.readme_section(figures_dir()).strip("\n")
    assert findings.current_section(findings.replace_section(text, edited)) == edited


def test_readme_check_of_another_run_names_it_and_the_command_that_fixes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "my run"
    (run / "01_x").mkdir(parents=True)
    pd.DataFrame({"finding": ["a"], "holds": [True], "evidence": ["e"]}).to_csv(
        run / "01_x" / "01_findings.csv", index=False)
    assert runner.main(["readme", "--figures", str(run), "--check"]) == 1
    out = capsys.readouterr().out
    assert f"differ from {run};" in out and f"readme --figures '{run}'`" in out


def test_markdown_rendering_of_a_findings_table() -> None:
    table = pd.DataFrame({"finding": ["a", "b", "c"], "holds": [True, False, None],
                          "evidence": ["x 0.1", "y 0.2", "z"], "paper": ["p", "", None]})
    text = findings.markdown(table, heading="**H**")
    assert text.splitlines() == ["**H**", "", "- **a** — holds: x 0.1. Paper: p.",
                                 "- **b** — does not hold: y 0.2.",
                                 "- **c** — not testable here: z."]
    assert findings.verdict("True") == "holds" and findings.verdict("") == "not testable here"
    with pytest.raises(ValueError, match="lacks columns"):
        findings.markdown(table.drop(columns="evidence"))


def test_verdict_of_numpy_and_pandas_values() -> None:
    """A verdict computed with numpy/pandas (``(lo > 0).all()`` is a numpy bool, a nullable
    boolean column holds pd.NA) reads as the Python value does, not as 'True' or '<NA>'."""
    import numpy as np

    lo = pd.Series([0.1, 0.2])
    assert findings.verdict((lo > 0).all()) == "holds"
    assert findings.verdict((lo > 0.15).all()) == "does not hold"
    for missing in (np.float32("nan"), pd.NA, pd.array([None], dtype="boolean")[0]):
        assert findings.verdict(missing) == "not testable here"


def _result_numbers(notebook: str) -> set[str]:
    """Every number of the committed findings tables of ``notebook``, as written there."""
    numbers: set[str] = set()
    for csv in (figures_dir() / notebook).glob("*_findings.csv"):
        for text in pd.read_csv(csv, keep_default_na=False)["evidence"]:
            numbers |= set(_DECIMAL.findall(str(text)))
    return numbers


@pytest.mark.parametrize("path", runner.discover(), ids=lambda p: p.stem)
def test_no_measured_result_typed_in_notebook_prose(path) -> None:  # noqa: ANN001
    results = _result_numbers(path.stem)
    typed = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        for sentence in re.split(r"(?<=[.;:])\s", cell.source):
            if _QUOTES_PAPER.search(sentence):
                continue
            # a threshold of a decision rule ("p < 0.05", "R² ≥ 0.5") is not a result
            typed += [m.group() for m in _DECIMAL.finditer(sentence) if m.group() in results
                      and not re.search(r"[<>≤≥=]\s*$", sentence[max(0, m.start() - 3):m.start()])]
    assert not typed, (f"{path.name} types measured numbers {sorted(set(typed))} in its prose; "
                       "render them from the findings table (IPython.display.Markdown)")
