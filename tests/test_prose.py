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
    words = ("no", "one", "two", "three", "four", "five")
    stated = [
        f"(`minimal_eps_pgd` at its defaults: {fwd - 2} rounds of {steps} steps) and DDN "
        f"({linsley['ddn_steps']} steps) on the {linsley['n_images']} ClickMe images",
        f"04 per seed ({len(liang['seeds'])})",
        f"({liang['epochs']} epochs at batch {liang['train_batch_size']} with random crops",
        f"the α attacks (PGD {liang['steps']} steps on every test image",
        f"searches ({su['cw_binary_steps']} × {su['cw_steps']} steps) in "
        f"{words[1 + len(su['target_modes'])]} modes (untargeted and "
        f"{words[len(su['target_modes'])]} target modes) on {su['n_images']} images per model",
        f"Notebook 03 is DDN's {linsley['ddn_steps']} steps and the tolerance search on "
        f"{imagenet} ImageNet models",
    ]
    assert su["cw_binary_steps"] == su["ead_binary_steps"] and su["cw_steps"] == su["ead_steps"]
    missing = [s for s in stated if s not in text]
    assert not missing, f"README's cost prose no longer states the code's values: {missing}"


def _prose(number: str) -> str:
    """The markdown cells of notebook ``number``, whitespace collapsed to single spaces."""
    path = next(iter(runner.discover([number])))
    return " ".join(" ".join(c.source.split()) for c in nbformat.read(path, as_version=4).cells
                    if c.cell_type == "markdown")


def test_notebook_02_names_the_objective_each_fgsm_attack_ascends() -> None:
    """Notebook 02 wrote FGSM as ``sign(∇ₓ CE(f(x), y))`` after its suite moved to the raw
    logit (Su et al.'s code, ``search_loss = "logit"`` in every preset), and said nothing of
    the transfer matrix's I-FGSM, which now follows the same knob (``transfer.ifgsm(loss=)``)."""
    import torch

    from advlens import attacks, presets, transfer
    from advlens.papers import su2018

    text = _prose("02")
    assert su2018.SuiteSettings().search_loss == "logit"
    assert {presets.PRESETS["02"][p]["search_loss"] for p in presets.PRESETS["02"]} == {"logit"}
    assert "Each step ascends the raw logit (−z_y untargeted, +z_t targeted)" in text
    assert "CE(f(x), y)" not in text
    # the transfer attack: the knob's objective, as the notebook says
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)).eval()
    x = torch.rand(6, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    for loss in ("logit", "ce"):
        made = transfer.ifgsm(eps=0.05, steps=3, loss=loss)(model, x, y).adv
        ref = attacks.pgd(model, x, y, eps=0.05, norm="linf", steps=3, step_size=0.05 / 3,
                          loss=loss).adv
        assert torch.equal(made, ref)
    assert ("I-FGSM at a fixed L∞ budget (`transfer_eps`, `transfer_steps` steps of eps/steps, "
            "up the suite's `search_loss`)") in text
    path = next(iter(runner.discover(["02"])))
    code = " ".join(" ".join(c.source.split()) for c in nbformat.read(path, as_version=4).cells
                    if c.cell_type == "code")
    assert ('transfer.ifgsm(eps=P["transfer_eps"], steps=P["transfer_steps"], '
            'loss=P["search_loss"])') in code


def test_notebook_02_counts_the_paper_zoo_and_the_memory_it_frees() -> None:
    """Notebook 02's prose counts the paper zoo's standard models (21: 12 timm, nine Salman et
    al. at ε 0, 420 ordered transfer pairs), and its attack-suite cell drops the adversarial
    images as "~150 GB at the paper preset" (``su2018.attack_suite``'s docstring: 21 models × 4
    attacks × 4 modes × ~760 images of 3×224×224 float32)."""
    from advlens import presets
    from advlens.papers import su2018
    from advlens.zoo import spec

    paper = presets.PRESETS["02"]["paper"]
    models = [c for c in spec("paper") if c.dataset == paper["dataset"]
              and c.regime == "standard"]
    timm = sum(c.source == "timm" for c in models)
    salman = sum(c.source == "robustness" for c in models)
    text = _prose("02")
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    assert (f"the {len(models)} standard ImageNet classifiers of the paper zoo instead "
            f"({timm} timm models and the {words[salman]} Salman et al. models at ε = 0)") in text
    assert f"has {len(models) * (len(models) - 1)} ordered pairs" in text
    modes = 1 + len(paper["target_modes"])
    images = 0.76 * paper["n_images"]  # about top-1 accuracy x n_images correct ones
    gigabytes = len(models) * len(su2018.SUITE) * modes * images * 3 * 224 * 224 * 4 / 1e9
    assert 125 <= gigabytes <= 175, gigabytes  # "~150 GB"
    doc = " ".join(su2018.attack_suite.__doc__.split())
    assert (f"{len(models)} models × {len(su2018.SUITE)} attacks × {modes} modes × ~760 images "
            "of 3×224×224 float32: about 150 GB") in doc


def test_notebook_01_states_when_b_needs_the_whole_level_test() -> None:
    """Notebook 01's caveat on (b) said the whole-level permutation test had too few orderings
    at every preset ("Read (b) as a description of this zoo, not as a test"); from
    ``jones2022.LEVEL_TEST_LEVELS`` levels (the paper preset's 10) the verdict requires it."""
    import math

    from advlens import presets
    from advlens.papers import jones2022

    text = _prose("01")
    levels = {p: len(k["robust_eps"]) for p, k in presets.PRESETS["01"].items()}
    low = levels["laptop"]
    assert levels["paper"] >= jones2022.LEVEL_TEST_LEVELS > low
    assert 1 / math.factorial(low) > jones2022.LEVEL_TEST_P  # why fewer levels cannot test
    assert 1 / math.factorial(jones2022.LEVEL_TEST_LEVELS) <= jones2022.LEVEL_TEST_P
    assert (f"from {jones2022.LEVEL_TEST_LEVELS} levels on (the paper preset) the rule requires "
            f"it too, at one-sided p ≤ {jones2022.LEVEL_TEST_P:g}") in text
    assert f"({low} levels give {low}! = {math.factorial(low)}, so p ≥ 1/{math.factorial(low)})" \
        in text
    assert "Read (b) as a description of this zoo, not as a test. The paper preset has more" \
        not in text
    # "every ordering, or 9,999 random ones where there are more, as the paper preset's 10! are"
    # (it said "every ordering"): a perfect rise has p = 1/L! exactly, or the Monte Carlo floor
    import inspect

    from advlens.stats import permutation_p

    draws = inspect.signature(permutation_p).parameters["n_resamples"].default
    assert (f"every ordering, or {draws:,} random ones where there are more, as the paper "
            f"preset's {levels['paper']}! are") in text
    assert math.factorial(levels["paper"]) > draws >= math.factorial(jones2022.LEVEL_TEST_LEVELS)
    for n, p in ((jones2022.LEVEL_TEST_LEVELS, 1 / math.factorial(jones2022.LEVEL_TEST_LEVELS)),
                 (levels["paper"], 1 / (1 + draws))):
        rising = pd.DataFrame({"level": np.arange(n, dtype=float),
                               "cka_inverted": np.linspace(0.1, 0.5, n)})
        assert jones2022.level_test(rising) == (pytest.approx(p), n)


def test_notebook_01_scopes_its_radii_and_names_the_pair_level_test() -> None:
    """Notebook 01 said "The zoo has only a few radii (0.25–1 on 16×16 digits)" at every preset
    (smoke: 0.5; paper: ten ImageNet radii 0.01–5), and neither the pair table's caption nor
    its reading named ``level_p``, the column finding (b) per pair requires from
    ``jones2022.LEVEL_TEST_LEVELS`` levels on."""
    import json

    from advlens import presets
    from advlens.papers import jones2022

    text = _prose("01")
    laptop = presets.PRESETS["01"]["laptop"]
    radii = [e for e in laptop["robust_eps"] if e > 0]
    # the radii are the printed P's, not typed (a reader took "0.25–1" for all 4 levels, 0 too)
    assert ("Below the `paper` preset the zoo has only a few radii (`robust_eps` in the printed "
            "`P`) and a handful") in text
    assert f"{min(radii):g}–{max(radii):g}" not in text
    assert "The zoo has only a few radii" not in text
    assert (f"below {jones2022.LEVEL_TEST_LEVELS} levels p ≤ {jones2022.LEVEL_TEST_P:g} is out "
            "of reach and it is only reported") in text
    assert "level_p" in jones2022.pair_trends.__doc__
    path = next(iter(runner.discover(["01"])))
    cell = next("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                if '"01b_pair_trends"' in "".join(c["source"]))
    assert "level_p: one-sided p of its level means rising, levels permuted" in cell


def test_notebook_04_states_the_one_sided_rule_its_verdicts_apply() -> None:
    """Notebook 04 said the claim holds at "two-sided permutation p < 0.05"; the verdict
    (``liang2021.correlations``' ``holds``) needs the one-sided p below (1 − 0.95)/2, over at
    least ``stats.min_testable_points()`` sources."""
    import math

    from advlens.papers import liang2021
    from advlens.stats import min_testable_points

    text = _prose("04")
    cut = round((1 - 0.95) / 2, 12)
    assert f"(one-sided p < {cut:g}: a two-sided p < {1 - 0.95:g} on the positive side)" in text
    assert f"its one-sided permutation p < {cut:g}" in text
    assert f"over at least {min_testable_points()} sources" in text
    assert 1 / math.factorial(min_testable_points() - 1) > cut  # "with 3 or 4 ... not testable"
    assert "two-sided permutation p < 0.05" not in text
    path = next(iter(runner.discover(["04"])))
    code = " ".join(" ".join(c.source.split()) for c in nbformat.read(path, as_version=4).cells
                    if c.cell_type == "code")
    assert ('its two-sided permutation p and the " "one-sided p (ρ above its pairings) the '
            'verdict uses') in code
    assert f"at one-sided p < {cut:g}" in " ".join(liang2021.findings.__doc__.split())


def test_notebook_03_says_what_its_x_axis_is_at_each_preset() -> None:
    """Notebook 03 said "A model's accuracy is measured on the whole evaluation set"; at the
    paper preset (ClickMe) the x axis is each model's ImageNet top-1
    (``linsley2023.imagenet_accuracy``), on the stand-in sets the accuracy on their images."""
    from advlens import presets
    from advlens.papers import linsley2023

    text = _prose("03")
    assert presets.PRESETS["03"]["paper"]["datasets"] == ["clickme"]
    for name in presets.PRESETS["03"]["laptop"]["datasets"]:
        assert linsley2023.imagenet_accuracy([], name) is None  # measured on the images
    assert linsley2023.imagenet_accuracy([], "clickme") == {}  # the zoo's test_acc per model
    assert "on ClickMe, as in the paper, its **ImageNet top-1**" in text
    assert "on the stand-in sets, its accuracy on the whole evaluation set" in text
    assert "A model's accuracy is measured on the whole evaluation set" not in text


def test_notebook_05_states_the_sweep_its_presets_run() -> None:
    """Notebook 05 restates its presets' sweeps (smoke: two seeds of 01 and 02; laptop: three
    seeds of 01-03), which ``python -m advlens.sweep`` now takes as its defaults too."""
    from advlens import presets

    counts = ("no", "one", "two", "three", "four", "five")
    smoke, laptop = presets.PRESETS["05"]["smoke"], presets.PRESETS["05"]["laptop"]
    text = _prose("05")
    assert (f"At the `smoke` preset the sweep is {counts[len(smoke['seeds'])]} seeds of notebooks "
            f"{' and '.join(smoke['sweep_notebooks'])}") in text
    assert (f"at `laptop` {counts[len(laptop['seeds'])]} seeds of notebooks "
            f"{laptop['sweep_notebooks'][0]}–{laptop['sweep_notebooks'][-1]}") in text
    assert laptop["sweep_notebooks"] == ["01", "02", "03"]  # "01–03" names every one between
