"""Prose agrees with data: README's findings are the committed tables', and no notebook types a
measured result by hand (the findings are rendered from the tables when the notebook runs)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
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


def test_verdict_reads_the_words_a_findings_csv_holds() -> None:
    """A findings CSV read as text (keep_default_na=False) holds the words True / False / ''."""
    assert [findings.verdict(w) for w in ("True", "False", " false ", "", "nan", "None")] == \
        ["holds", "does not hold", "does not hold", "not testable here", "not testable here",
         "not testable here"]
    assert findings.verdict("mixed") == "mixed"  # any other word is shown as it is
    assert findings.verdict(0.5) == "0.5"  # only a NaN float means "not tested"


def test_statistics_cell_does_not_depend_on_the_order_of_its_names() -> None:
    """The cell is committed in figures/: the same numbers must give the same text."""
    text = '{"a": 2.0, "b": null, "c": 0.5}'
    assert findings.encode_statistics({"c": 0.5, "a": 2, "b": float("nan")}) == text
    assert findings.encode_statistics({"a": 2, "b": float("nan"), "c": 0.5}) == text


@pytest.mark.parametrize("marker", ["START", "END"])
def test_text_with_one_marker_of_the_two_is_refused(marker: str) -> None:
    text = f"# README\n{getattr(findings, marker)}\nold\n"
    for call in (lambda: findings.current_section(text),
                 lambda: findings.replace_section(text, "new")):
        with pytest.raises(ValueError, match="README has no findings markers"):
            call()


def test_only_the_first_marked_section_is_replaced() -> None:
    """Text after the section's end marker is the README's own, kept byte for byte, even where
    it quotes the markers again (e.g. in a code block that documents them)."""
    start, end = findings.START, findings.END
    text = f"head\n{start}\nold\n{end}\nquoted:\n{start}\n{end}\ntail\n"
    assert findings.current_section(text) == "old"
    assert findings.replace_section(text, "new\n") == \
        f"head\n{start}\nnew\n{end}\nquoted:\n{start}\n{end}\ntail\n"


def test_readme_section_keeps_cells_that_pandas_would_read_as_missing(tmp_path: Path) -> None:
    """'n/a' evidence or an empty paper cell are text: never rendered as 'nan'."""
    (tmp_path / "02_x").mkdir()
    (tmp_path / "02_x" / "02_findings.csv").write_text(
        "finding,holds,evidence,paper\nNA rows,False,n/a,\nb,,None,quoted\n")
    assert findings.readme_section(tmp_path, notebooks=tmp_path).splitlines() == [
        "**02_x** (`02_x/02_findings.csv`)", "",
        "- **NA rows** — does not hold: n/a.", "- **b** — not testable here: None. Paper: quoted."]


@pytest.mark.parametrize(("checks", "expected"), [
    ([True, True], True), ([True, None], None), ([None, False, True], False),
    ([np.bool_(False), None], False), ([None], None), ([], True)])
def test_combine_lets_a_failing_check_refute_and_an_untested_one_leave_it_untested(
        checks: list, expected: bool | None) -> None:
    assert findings.combine(iter(checks)) is expected


def test_notebook_02_counts_its_success_rates_instead_of_stating_them() -> None:
    """The success-rates prose said "nearly every attack succeeds on every model" as a fact;
    at the smoke preset EAD fooled none of cnn-s's images (rate 0.0). The prose now says what
    to look for and the cell prints the count from the table."""
    path = next(p for p in runner.discover(["02"]))
    cells = nbformat.read(path, as_version=4).cells
    i = next(k for k, c in enumerate(cells)
             if c.cell_type == "markdown" and c.source.startswith("### Success rates"))
    assert "succeeds on every model" not in cells[i].source
    code = cells[i + 1].source
    assert "02_success_rates" in code and "(rates == 1).sum()" in code and "rates.min()" in code


def test_readme_names_every_stand_in_map_notebook_03_uses() -> None:
    """README said the ClickMe maps are replaced by "the twin-cue masks", while notebook 03's
    laptop run scores the digits against blurred stroke masks too (findings 1-4 (digits)): each
    stand-in map of its laptop data sets (linsley2023.EVAL_SETS) must be named where README
    describes the stand-ins."""
    from advlens.papers.linsley2023 import EVAL_SETS
    from advlens.presets import PRESETS

    text = (repo_root() / "README.md").read_text()
    paragraphs = [p for p in text.split("\n\n")
                  if p.startswith(("**Linsley et al. (2023)**",
                                   "At laptop scale the ImageNet models"))]
    assert len(paragraphs) == 2
    for name in PRESETS["03"]["laptop"]["datasets"]:
        importance_map = EVAL_SETS[name][1]  # "stroke", "shape"
        for paragraph in paragraphs:
            assert importance_map in paragraph, (name, paragraph[:60])


def test_notebook_02_says_which_images_a_published_models_error_rests_on() -> None:
    """Notebook 02 said a model's top-1 error is its error on the whole test split, "recorded
    when the zoo trained it"; at the paper preset nothing is trained. The error is the
    published model's accuracy on every image of the ImageNet validation folder (what
    ``advlens.zoo.build`` records as ``test_acc``, as Su et al.'s published errors), which
    notebook 00 shows too -- not the robust check's ``robust_eval_n`` images (an earlier
    wording: "the first 500 ImageNet validation images")."""
    from advlens.zoo.builder import TEST_IMAGES

    assert TEST_IMAGES == "imagenet-val-all"
    for name in ("02_robustness_scaling", "00_data_and_zoo"):
        nb = nbformat.read(repo_root() / "notebooks" / f"{name}.ipynb", as_version=4)
        prose = " ".join(" ".join(c.source.split()) for c in nb.cells
                         if c.cell_type == "markdown")
        assert "every image of the ImageNet validation folder" in prose, name
        assert "first 500 ImageNet validation images" not in prose, name


def test_readme_cost_table_counts_the_passes_the_cost_model_counts() -> None:
    """README's GPU-hour table is ``python -m advlens.papers.costs``'s output: its pass counts
    (forward, forward+backward, training images per notebook and in all) must be those the
    cost model counts now. Notebook 01's twin-cue cue models gained a forward pass over their
    own variant (``jones2022.MIN_CUE_ACCURACY``) after the table was pasted: it read 1.83e+06
    forward passes, the code 1.84e+06. (FLOPs and hours need the 2.5-minute measurement; the
    throughput line is checked against :data:`advlens.cost.GPUS`.)"""
    from advlens import cost
    from advlens.papers import costs

    text = (repo_root() / "README.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
            for line in text.splitlines()
            if re.match(r"\| (\d\d|\*\*all\*\*) \| [\d.e+]+ \|", line)}
    counted = costs.passes()
    sums = counted.groupby("notebook")[["fwd", "fwd_bwd", "train"]].sum()
    expected = {nb: [f"{v:.3g}" for v in sums.loc[nb]] for nb in sums.index}
    expected["**all**"] = [f"{v:.3g}" for v in sums.sum()]
    assert rows == expected
    throughput = next(line for line in text.splitlines() if line.startswith("Throughput: "))
    nothing = pd.DataFrame([{"notebook": "00", "fwd": 0, "fwd_bwd": 0, "train": 0, "pflops": 0,
                             **{f"{g.name}_hours": 0 for g in cost.GPUS}}])
    assert throughput == cost.markdown(nothing).splitlines()[-1]


def test_readme_cost_prose_states_the_paper_knobs_the_cost_model_counts() -> None:
    """The paragraphs around README's cost table restate the paper knobs and defaults behind its
    pass counts (the tolerance search's rounds and steps, DDN's steps, notebook 03's images and
    models, notebook 04's seeds, epochs, batch and α attack, notebook 02's constant searches):
    each must be the value the cost model reads, not a copy that a knob change leaves behind."""
    from advlens import cost, presets
    from advlens.zoo import spec

    text = " ".join((repo_root() / "README.md").read_text().split())
    fwd, fwd_bwd = cost.tolerance_search_passes()
    linsley, liang, su = (presets.PRESETS[nb]["paper"] for nb in ("03", "04", "02"))
    imagenet = sum(c.source != "trained" for c in spec("paper"))
    steps = fwd_bwd // (fwd - 2)  # rounds x steps backward passes over rounds + 2 forwards
    modes = ("one", "two", "three", "four", "five")[len(su["target_modes"])]  # + untargeted
    stated = [
        f"(`minimal_eps_pgd` at its defaults: {fwd - 2} rounds of {steps} steps) and DDN "
        f"({linsley['ddn_steps']} steps) on the {linsley['n_images']} ClickMe images",
        f"04 per seed ({len(liang['seeds'])})",
        f"({liang['epochs']} epochs at batch {liang['train_batch_size']} with random crops",
        f"the α attacks (PGD {liang['steps']} steps on every test image",
        f"searches ({su['cw_binary_steps']} × {su['cw_steps']} steps) for {modes} target modes "
        f"on {su['n_images']} images per model",
        f"Notebook 03 is DDN's {linsley['ddn_steps']} steps and the tolerance search on "
        f"{imagenet} ImageNet models",
    ]
    assert su["cw_binary_steps"] == su["ead_binary_steps"] and su["cw_steps"] == su["ead_steps"]
    missing = [s for s in stated if s not in text]
    assert not missing, f"README's cost prose no longer states the code's values: {missing}"
