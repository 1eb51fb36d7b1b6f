"""Knob checking: presets.check_knob (type and allowed values) and presets.from_namespace (the
one line under every notebook's parameters cell)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import advlens.data.registry
from advlens import presets

# a notebook table made up for the tests, so they do not depend on the real knobs
TABLE = {
    "smoke": {"seed": 0, "lr": 0.5, "archs": ["a"], "flag": True, "zoo": "smoke", "name": "x",
              "n_data": 10, "kw": {}},
    "laptop": {"seed": 1, "lr": 1e-3, "archs": ["a", "b"], "flag": False, "zoo": "laptop",
               "name": "y", "n_data": None, "kw": {"k": 1}},
    "paper": {"seed": 2, "lr": 1, "archs": None, "flag": True, "zoo": "paper", "name": "z",
              "n_data": 100, "kw": {}},
}


@pytest.fixture(autouse=True)
def fake_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(presets.PRESETS, "99", TABLE)


@pytest.mark.parametrize("name, value", [
    ("seed", 3), ("lr", 2), ("lr", 0.25), ("archs", ("c",)), ("archs", []), ("flag", False),
    ("zoo", "paper"), ("name", "anything"), ("n_data", 5), ("kw", {"x": 2}), ("seed", None),
])
def test_check_knob_accepts_values_of_the_presets_type(name: str, value: object) -> None:
    presets.check_knob("99", name, value)  # no error


@pytest.mark.parametrize("name, value, expected", [
    ("seed", "abc", "int"),  # the reviewer's case: a string for a number
    ("lr", [1.0], "float"),
    ("flag", 1, "bool"),  # 1 is not a bool ...
    ("seed", True, "int"),  # ... and True is not a number
    ("seed", 1.5, "int (a whole number)"),  # -p seed 1.5 failed late in the kernel
    ("n_data", 0.5, "int (a whole number)"),
    ("lr", "0.1", "float"),
    ("archs", "a", "list"),
    ("name", 3, "str"),
    ("kw", [("k", 1)], "dict"),
])
def test_check_knob_names_knob_value_and_expected_type(name: str, value: object,
                                                       expected: str) -> None:
    with pytest.raises(TypeError) as err:
        presets.check_knob("99", name, value)
    message = str(err.value)
    assert message.startswith(f"notebook 99: knob {name!r} = {value!r}"), message
    assert f"expected {expected}" in message, message


def test_optional_knob_says_none_is_allowed() -> None:
    with pytest.raises(TypeError, match=r"expected list \(or None"):
        presets.check_knob("99", "archs", 3)


def test_check_knob_choices() -> None:
    with pytest.raises(ValueError, match="knob 'zoo' = 'huge'; choose one of smoke, laptop"):
        presets.check_knob("99", "zoo", "huge")
    for name in presets.PRESET_NAMES:
        presets.check_knob("99", "zoo", name)


def test_resolve_merges_and_refuses_unknown() -> None:
    knobs = presets.resolve("99", "smoke", lr=None, seed=7)
    assert knobs["seed"] == 7 and knobs["lr"] == 0.5 and knobs["preset"] == "smoke"
    assert presets.PRESETS["99"]["smoke"]["seed"] == 0  # the table is not modified
    with pytest.raises(ValueError, match=r"has no knob\(s\) \['typo'\]"):
        presets.resolve("99", "smoke", typo=1)
    with pytest.raises(ValueError, match="unknown preset"):
        presets.resolve("99", "large")
    with pytest.raises(ValueError, match="no presets for notebook"):
        presets.resolve("98", "smoke")


def test_from_namespace_reads_declared_knobs_only() -> None:
    namespace = {"preset": "paper", "seed": None, "lr": 0.1, "archs": None,
                 "out_dir": "/somewhere", "np": object(), "_": 1}
    knobs = presets.from_namespace("99", namespace)
    assert knobs == {**TABLE["paper"], "lr": 0.1, "preset": "paper"}


def test_from_namespace_defaults_to_laptop_and_checks_types() -> None:
    assert presets.from_namespace("99", {})["seed"] == TABLE["laptop"]["seed"]
    with pytest.raises(TypeError, match="knob 'seed'"):
        presets.from_namespace("99", {"preset": "smoke", "seed": "0"})


@pytest.mark.parametrize("value", [5, 2.5, ["out"], True])
def test_from_namespace_names_an_out_dir_that_is_no_path(value: object) -> None:
    """``papermill -p out_dir 5`` failed on the notebook's next line, ``Path(out_dir)``, with
    pathlib's "expected str, bytes or os.PathLike object, not int", naming no knob; a path (str
    or path-like) or None passes."""
    from pathlib import Path

    with pytest.raises(TypeError, match=r"notebook 99: knob 'out_dir' = .* expected a folder"):
        presets.from_namespace("99", {"preset": "smoke", "out_dir": value})
    for fine in (None, "out/run1", Path("out/run1")):
        presets.from_namespace("99", {"preset": "smoke", "out_dir": fine})


def test_preset_names_are_listed_once() -> None:
    """The zoo's presets and CLI choices are the notebooks' preset names (one tuple)."""
    import ast
    from pathlib import Path

    root = Path(presets.__file__).parent
    literal = ("smoke", "laptop", "paper")
    repeats = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List) and all(
                    isinstance(e, ast.Constant) for e in node.elts) and \
                    tuple(e.value for e in node.elts) == literal:
                repeats.append(f"{path.relative_to(root)}:{node.lineno}")
    assert len(repeats) == 1 and repeats[0].startswith("presets.py:"), repeats


def test_knobs_print_as_a_compact_table_without_absolute_paths() -> None:
    knobs = presets.resolve("99", "smoke", name="/home/someone/data/imagenet/val")
    assert knobs == {**TABLE["smoke"], "name": "/home/someone/data/imagenet/val",
                     "preset": "smoke"}  # still a plain dict for everything else
    text = str(knobs)
    assert "/home/someone" not in text and "…/val" in text
    lines = text.splitlines()
    assert len(lines) == len(knobs) and lines[0].split() == ["seed", "0"]
    assert all(len(line) <= 100 for line in lines)
    from IPython.lib.pretty import pretty

    assert pretty(knobs) == text  # ``P`` as a notebook cell's last expression
    assert presets._short({"root": "$ADVLENS_IMAGENET", "rel": "a/b"}) == \
        "{'root': '$ADVLENS_IMAGENET', 'rel': 'a/b'}"


def test_int_knob_converts_integral_floats_and_float_knob_takes_ints() -> None:
    assert presets.check_knob("99", "seed", 2.0) == 2
    assert type(presets.check_knob("99", "seed", 2.0)) is int
    assert presets.check_knob("99", "lr", 2) == 2.0 and type(presets.check_knob("99", "lr", 2)) \
        is float
    assert presets.resolve("99", "smoke", n_data=64.0)["n_data"] == 64


@pytest.mark.parametrize("name, value, bound", [
    ("n_data", 0, ">= 1"), ("n_data", -5, ">= 1"),  # a count: every preset has >= 1
    ("seed", -1, ">= 0"),  # seeds: every preset has >= 0
    ("lr", -0.1, ">= 0"),
])
def test_number_knobs_keep_the_presets_range(name: str, value: object, bound: str) -> None:
    with pytest.raises(ValueError, match=rf"knob {name!r} = {value!r} must be {bound} "
                                         r"\(the presets use"):
        presets.check_knob("99", name, value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_float_knob_refuses_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="knob 'lr' = .*expected a finite number"):
        presets.check_knob("99", "lr", value)


def test_real_count_knobs_refuse_zero_and_fractions() -> None:
    for name in ("iterations", "n_pairs", "n_boot"):
        with pytest.raises(ValueError, match=f"knob {name!r} = 0 must be >= 1"):
            presets.check_knob("01", name, 0)
    with pytest.raises(TypeError, match=r"knob 'n_pairs' = 0.5 has type float; expected int"):
        presets.check_knob("01", "n_pairs", 0.5)
    presets.check_knob("01", "heatmap_eps", 0)  # 0.0 in every preset: 0 is fine


@pytest.mark.parametrize("notebook, name", [
    ("01", "step_size"), ("02", "search_start"), ("02", "cw_lr"), ("02", "cw_initial_const"),
    ("02", "ead_lr"), ("02", "ead_initial_const"), ("02", "transfer_eps"), ("04", "eps"),
    ("04", "step_fraction"), ("04", "probe_lr"), ("04", "val_fraction"),
])
def test_step_rate_and_budget_knobs_refuse_zero(notebook: str, name: str) -> None:
    """>= 0 (every preset's value is) let 0 through: 02's transfer_eps = 0 ran a transfer matrix
    of NaN to the end, 04's eps = 0 failed after every model of a seed was trained."""
    with pytest.raises(ValueError, match=rf"knob {name!r} = 0.0 must be > 0 \(the presets use"):
        presets.check_knob(notebook, name, 0)
    assert presets.check_knob(notebook, name, 0.05) == 0.05
    presets.check_knob("02", "ead_beta", 0)  # EAD with no L1 term: C&W-L2 by FISTA, a valid run


@pytest.mark.parametrize("notebook, over", [
    ("01", {"seed": 2**64}), ("02", {"zoo_seed": 2**64}), ("04", {"seeds": [0, 2**64]}),
    ("05", {"seeds": [0, 2**32]}), ("04", {"seeds": [-1, 0]}),
])
def test_seed_knobs_refuse_seeds_beyond_32_bits(notebook: str, over: dict) -> None:
    """A seed of 2**64 passed and failed a cell later in torch.Generator.manual_seed with
    'Overflow when unpacking long long', naming no knob; a list of seeds took -1."""
    name = next(iter(over))
    with pytest.raises(ValueError, match=rf"knob {name!r} = .*0\.\.4294967295"):
        presets.resolve(notebook, "smoke", **over)
    import torch

    for value in (presets.MAX_SEED, 0):  # the bound itself is a seed torch takes
        torch.Generator().manual_seed(value)
        presets.check_knob(notebook, name, [value, 1] if name == "seeds" else value)


def test_tuples_become_lists_at_any_depth() -> None:
    assert presets.check_knob("99", "archs", ("a", "b")) == ["a", "b"]
    assert presets.check_knob("99", "kw", {"k": (1, (2, 3))}) == {"k": [1, [2, 3]]}
    assert presets.resolve("99", "smoke", archs=("c",))["archs"] == ["c"]


def test_numpy_scalars_reach_the_notebook_as_python_values() -> None:
    """A NumPy bool passed the check (its type is named ``bool``) and papermill injected it as
    the string "True", refused only inside the kernel; a NumPy int in a dict knob reached the
    notebook as the string "2"; np.int64 (e.g. from a grid over np.arange) was refused."""
    import numpy as np
    from papermill.translators import PythonTranslator

    given = {"compare_freeze": np.True_, "seed": np.int64(3), "step_size": np.float32(0.25),
             "data_kw": {"max_per_class": np.int64(2)}, "robust_eps": [np.float64(0.5),
                                                                       np.int64(1)]}
    checked = {name: presets.check_knob("01", name, value) for name, value in given.items()}
    namespace: dict[str, object] = {}
    exec(PythonTranslator.codify(checked), namespace)  # the cell papermill would inject
    injected = {name: namespace[name] for name in given}
    assert injected == {"compare_freeze": True, "seed": 3, "step_size": 0.25,
                        "data_kw": {"max_per_class": 2}, "robust_eps": [0.5, 1]}
    assert type(injected["compare_freeze"]) is bool and type(injected["seed"]) is int


def test_knobs_that_are_none_in_every_preset_have_a_declared_type() -> None:
    unset = {name for table in presets.PRESETS.values()
             for name in set().union(*table.values())
             if all(t.get(name) is None for t in table.values())}
    assert unset <= set(presets.UNSET_KNOBS), unset - set(presets.UNSET_KNOBS)
    assert presets.check_knob("02", "archs", ("cnn-s",)) == ["cnn-s"]
    assert presets.check_knob("05", "sweep_dir", "out/sweep") == "out/sweep"
    for notebook, name, bad in (("02", "archs", "cnn-s"), ("03", "archs", []),
                                ("03", "archs", [1]), ("05", "sweep_dir", 3),
                                ("05", "sweep_dir", "")):
        with pytest.raises(TypeError, match=rf"notebook {notebook}: knob {name!r} = .*expected "
                                            r"a (non-empty list|folder path)"):
            presets.check_knob(notebook, name, bad)


def test_from_namespace_refuses_a_misspelled_papermill_parameter() -> None:
    """``papermill nb.ipynb out.ipynb -p sede 3`` only warns and runs with the default seed."""
    namespace = {"preset": "smoke", "out_dir": None, "seed": None, "sede": 3,
                 "In": [""], "Out": {}, "_i1": "x", "np": object()}
    with pytest.raises(ValueError, match=r"notebook 99: 'sede' = 3 \(did you mean 'seed'\?\) "
                                         r"is not a knob"):
        presets.from_namespace("99", namespace)
    del namespace["sede"]
    assert presets.from_namespace("99", namespace)["seed"] == 0  # IPython's own names are fine


def test_from_namespace_leaves_the_notebooks_own_variables_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rerunning the setup cell in Jupyter after later cells ran: their globals are not typos."""
    import nbformat

    from advlens import paths

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("preset = 'laptop'\nseed = None\nstray = None\n")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("%matplotlib inline"),
                nbformat.v4.new_code_cell("rows = []\nfor i in range(3):\n    rows.append(i)\n")]
    nbformat.write(nb, tmp_path / "99_fake.ipynb")
    monkeypatch.setattr(paths, "notebooks_dir", lambda: tmp_path)
    knobs = presets.from_namespace("99", {"seed": 4, "rows": [0, 1, 2], "i": 2})
    assert knobs["seed"] == 4
    with pytest.raises(ValueError, match="'stray' = 1"):  # the parameters cell is no excuse
        presets.from_namespace("99", {"seed": 4, "rows": [], "stray": 1})


@pytest.mark.parametrize("notebook, name, value, error, says", [
    # failed only after every attack ran (cell 12 of 02), as a pandas KeyError
    ("02", "transfer_targeted_metric", "top-5", ValueError, "choose one of success, top5"),
    ("02", "transfer_target_mode", "ll", ValueError, "choose one of least-likely"),
    ("02", "depth_pairs", [["resnet8"]], TypeError, "expected each item to be list of 2 items"),
    ("02", "family_models", [1], TypeError, "expected each item to be dict"),
    ("03", "datasets", ["clickMe"], ValueError, "each item must be one of digits, twin-cue"),
    ("03", "attacks", [], ValueError, "is empty"),  # was pandas' "No objects to concatenate"
    ("04", "experiments", [], ValueError, "is empty"),
    ("04", "seeds", ["0"], TypeError, "expected each item to be int"),
    ("05", "seeds", [0.5, 1.5], TypeError, "expected each item to be int"),  # ran seeds 0 and 1
    ("01", "robust_eps", [0.0, float("nan")], TypeError,
     "expected each item to be a finite float"),
])
def test_list_knob_items_are_checked(notebook: str, name: str, value: object,
                                     error: type[Exception], says: str) -> None:
    with pytest.raises(error) as err:
        presets.check_knob(notebook, name, value)
    assert str(err.value).startswith(f"notebook {notebook}: knob {name!r} = {value!r}"), err.value
    assert says in str(err.value), err.value


def test_list_knob_items_of_the_presets_kinds_pass() -> None:
    for notebook, tables in presets.PRESETS.items():  # every preset's own values
        for table in tables.values():
            for name, value in table.items():
                presets.check_knob(notebook, name, value)
    assert presets.check_knob("01", "robust_eps", [0, 0.5]) == [0, 0.5]  # ints for floats
    assert presets.check_knob("05", "sweep_notebooks", [1, "02"]) == [1, "02"]  # numbers as ints
    assert presets.check_knob("02", "target_modes", []) == []  # untargeted only (laptop)
    assert presets.check_knob("02", "depth_pairs", ()) == []  # no depth pair


def test_integral_floats_in_list_and_dict_knobs_reach_the_notebook_as_ints() -> None:
    """``-p a_target "[5.0, 6.0, 7.0, 8.0]"`` passed the check but stayed floats: notebook 04
    failed with "list indices must be integers or slices, not float"; b_archs epochs of 2.0
    gave its models another cache key than the preset's 2 (they were all retrained), and a
    str epoch count failed inside the notebook without naming the knob."""
    from advlens.zoo import ModelConfig

    a_target = presets.check_knob("04", "a_target", [5.0, 6.0, 7.0, 8.0])
    assert a_target == [5, 6, 7, 8] and all(type(c) is int for c in a_target)
    assert [type(s) for s in presets.check_knob("05", "seeds", (0.0, 1.0))] == [int, int]
    assert presets.check_knob("01", "robust_eps", [0, 0.5]) == [0, 0.5]  # floats stay floats
    b_archs = presets.check_knob("04", "b_archs", {"mlp-s": 2.0, "cnn-s": 3})
    assert b_archs == {"mlp-s": 2, "cnn-s": 3} and type(b_archs["mlp-s"]) is int
    assert ModelConfig("mlp-s", epochs=b_archs["mlp-s"]).hash == ModelConfig("mlp-s", epochs=2).hash
    with pytest.raises(TypeError, match=r"^notebook 04: knob 'b_archs' = \{'mlp-s': '2'\} "
                                        r"holds 'mlp-s': '2' \(str\); expected each value to "
                                        r"be int"):
        presets.check_knob("04", "b_archs", {"mlp-s": "2"})
    for bad in (2.5, True):
        with pytest.raises(TypeError, match="knob 'b_archs'"):
            presets.check_knob("04", "b_archs", {"mlp-s": bad})
    with pytest.raises(ValueError, match=r"b_archs\['mlp-s'\].* must be >= 1"):
        presets.check_knob("04", "b_archs", {"mlp-s": 0})


@pytest.mark.parametrize("notebook, name, value, repeated", [
    ("04", "seeds", [0, 0, 1], "0"),  # ran seed 0 twice: n_seeds 3, a t-interval of 3 "seeds"
    ("04", "experiments", ["A-digits", "B-digits", "A-digits"], "'A-digits'"),
    ("04", "b_target", (5, 6, 7, 7, 9), "7"),
    ("05", "seeds", [0, 1, 1], "1"),
    ("01", "robust_eps", [0, 0.5, 0.0], "0.0"),  # 0 and 0.0 are one radius
    ("03", "attacks", ["pgd", "pgd"], "'pgd'"),
    ("05", "sweep_notebooks", [1, "01"], "'01'"),  # one notebook in two spellings
    ("05", "sweep_notebooks", ["2", "02"], "'02'"),
])
def test_list_knobs_of_runs_refuse_a_repeated_item(notebook: str, name: str, value: object,
                                                   repeated: str) -> None:
    """A repeated seed or experiment ran twice and was counted twice (04's summary took seeds
    [0, 0, 1] for three seeds); class lists with a repeat failed only when the zoo was built."""
    with pytest.raises(ValueError, match=rf"knob {name!r} = .* repeats {re.escape(repeated)}; "
                                         r"give each item once"):
        presets.check_knob(notebook, name, value)
    assert presets.check_knob("02", "depth_pairs", [["a", "b"], ["a", "b"]])  # not a run list


def test_count_floor_follows_the_presets_smallest_value() -> None:
    """check_knob's rule: every preset >= 1 (a count): values below 1 are refused, 1 itself is
    fine, also where every preset is well above 1 (n_show: 3 and 6)."""
    assert {t["twin_epochs"] for t in presets.PRESETS["04"].values()} >= {1}
    with pytest.raises(ValueError, match="knob 'twin_epochs' = 0 must be >= 1"):
        presets.check_knob("04", "twin_epochs", 0)
    assert min(t["n_show"] for t in presets.PRESETS["01"].values()) > 1
    assert presets.check_knob("01", "n_show", 1) == 1


def test_a_long_value_is_cut_to_exactly_the_limit() -> None:
    text = presets._short("x" * 100)  # repr: a quote and 100 x's
    assert text == "'" + "x" * 68 + "…" and len(text) == 70
    assert presets._short("x" * 68) == "'" + "x" * 68 + "'"  # 70 characters: kept whole


def test_laptop_preset_is_the_one_the_committed_figures_record() -> None:
    """README's findings and `make verify` compare against figures/ (the laptop run): a laptop
    knob changed without rerunning its notebook would leave them describing another protocol.
    Every table's provenance records the knobs it was made with."""
    from advlens.paths import figures_dir

    for notebook in ("00", "01", "02", "03", "04"):
        records = sorted(figures_dir().glob(f"{notebook}_*/*.provenance.json"))
        assert records, f"no committed provenance for notebook {notebook}"
        for path in records:
            recorded = json.loads(path.read_text())["parameters"]
            assert recorded == presets.as_lists(presets.resolve(notebook, "laptop")), path.name


def test_paper_preset_is_the_published_protocol() -> None:
    """PROTOCOLS.md's published numbers (the paper preset's reason to exist)."""
    jones, su = presets.PRESETS["01"]["paper"], presets.PRESETS["02"]["paper"]
    liang = presets.PRESETS["04"]["paper"]
    # Jones et al.: 2000 iterations, step 1/8, batch 32; 9 ImageNet architectures; the
    # Salman et al. radii for ResNet18/50, WRN50-2/4
    assert (jones["iterations"], jones["step_size"], jones["batch_size"]) == (2000, 1 / 8, 32)
    assert len(jones["heatmap_archs"]) == 9 and jones["dataset"] == "imagenet"
    assert jones["robust_eps"] == [0, 0.01, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 3, 5]
    assert jones["robust_archs"] == ["resnet18", "resnet50", "wide_resnet50_2",
                                     "wide_resnet50_4"]
    # Su et al.: 1000 images; eps search from 0.02, at most 9 tries; I-FGSM 50 iterations;
    # C&W-L2 and EAD 9 binary steps from c = 0.01, 1000 iterations, C&W lr 0.001, EAD β 1e-3;
    # untargeted plus least-likely, top-2 and random targets
    assert (su["n_images"], su["search_start"], su["search_tries"], su["ifgsm_steps"]) == \
        (1000, 0.02, 9, 50)
    assert (su["cw_binary_steps"], su["cw_initial_const"], su["cw_steps"], su["cw_lr"]) == \
        (9, 0.01, 1000, 0.001)
    assert su["cw_adam_eps"] == "inside"  # l2_attack.py's Adam: the 1e-8 inside the root
    assert (su["ead_binary_steps"], su["ead_initial_const"], su["ead_steps"],
            su["ead_beta"]) == (9, 0.01, 1000, 1e-3)
    assert sorted(su["target_modes"]) == ["least-likely", "random", "top-2"]
    # Liang et al.: L∞ PGD, 50 steps of 0.1·eps, eps 0.1; a linear probe; five architectures
    assert (liang["alpha_attack"], liang["eps"], liang["steps"], liang["step_fraction"],
            liang["probe"]) == ("pgd", 0.1, 50, 0.1, "linear")
    assert list(liang["b_archs"]) == ["fcnet", "lenet", "alexnet", "resnet18-cifar",
                                      "resnet50-cifar"]
    # Linsley et al.: ClickMe images resized to 224, one image per class (their subset)
    linsley = presets.PRESETS["03"]["paper"]
    assert linsley["datasets"] == ["clickme"] and linsley["data_kw"]["size"] == 224
    assert linsley["data_kw"]["max_per_class"] == 1 and linsley["n_images"] == 1000


def test_every_preset_shows_whether_the_pixel_freeze_matters() -> None:
    """PROTOCOLS.md §1 on the `robustness` clamp quirk: "Offer both behaviours ..., state which
    is the default, and show in notebook 01 whether the choice changes the similarity
    conclusions." Notebook 01 says "We rerun the lowest and highest ε with
    `freeze_at_bounds=True` (the reference code run on current torch)"; the paper preset skipped
    it (an empty table, no squares), on the very models the reference code is written for."""
    assert {p: t["compare_freeze"] for p, t in presets.PRESETS["01"].items()} == \
        dict.fromkeys(presets.PRESET_NAMES, True)


def test_liang_paper_alpha_averages_over_every_correct_test_image() -> None:
    """Their image_exp/know2adv.py (experiment A) and adv2know.py (B) average α over the whole
    STL-10 test loader of the reference's classes, skipping only the images the reference gets
    wrong: ``for batch_idx,(images,labels) in enumerate(tqdm(testloader)): ... if
    ref_model(images).max(1, keepdim = True)[1].item()!= labels[0].item(): continue``. STL-10
    has 800 test images a class (its page: "800 test images per class"): 3,200 for A's four
    animals, 8,000 for B's ten. n_images caps the first correct ones, so the paper preset's
    1000 averaged over 31 % (A) and 12 % (B) of them, in file order."""
    from advlens.papers import liang2021

    knobs = presets.PRESETS["04"]["paper"]
    sizes = {e.name: 800 * len(e.reference.classes or range(10))
             for e in liang2021.paper_experiments(knobs)}
    assert sizes == {"A-cifar10-stl10": 3200, "B-cifar10-stl10": 8000}
    assert knobs["n_images"] >= max(sizes.values())


def test_su_paper_models_are_stated_as_they_are() -> None:
    """Notebook 02's paper preset compares every standard model of the paper zoo, not Su et al.'s
    18 TF-slim networks (306 ordered pairs, their abstract): the notebook and the preset's comment
    must give the zoo's own count and pair count, as the zoo has them."""
    from advlens.paths import notebooks_dir
    from advlens.zoo.paper import published_configs

    su = presets.PRESETS["02"]["paper"]
    assert su["archs"] is None and su["zoo"] == "paper"  # every standard model of the zoo
    n = sum(c.dataset == su["dataset"] and c.regime == "standard" for c in published_configs())
    path = next(notebooks_dir().glob("02_*.ipynb"))
    text = " ".join(" ".join("".join(c["source"]).split())
                    for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
    stated = re.search(r"`paper` preset takes the (\d+) standard ImageNet classifiers", text)
    pairs = re.search(r"transfer matrix has (\d+) ordered pairs, not 306", text)
    assert stated and pairs, "notebook 02 no longer says which models its paper preset compares"
    assert (int(stated.group(1)), int(pairs.group(1))) == (n, n * (n - 1))
    comment = " ".join(Path(presets.__file__).read_text().split())
    assert f"every standard model of the paper zoo ({n}:" in comment
    assert f"{n * (n - 1)} ordered transfer pairs, not 306" in comment


@pytest.mark.parametrize(("notebook", "knob", "given", "kept"), [
    ("01", "data_kw", {"root": "/data/imagenet"}, {"size": 224, "max_per_class": 2}),
    ("03", "data_kw", {"path": "/data/clickme"}, {"split": "val", "size": 224}),
    ("04", "cifar_kw", {"root": "/data/cifar"}, {})])
def test_a_loader_options_override_is_merged_into_the_presets(notebook: str, knob: str,
                                                              given: dict, kept: dict) -> None:
    """The missing-data message advises data_kw={'root': '/path'}; that replaced the paper
    preset's whole dict, dropping size=224 (ImageNet's images of many sizes then failed after
    the zoo's evaluation) and ClickMe's split and max_per_class (another protocol, silently)."""
    preset = presets.resolve(notebook, "paper")[knob]
    merged = presets.resolve(notebook, "paper", **{knob: given})[knob]
    assert merged == {**preset, **given} and kept.items() <= merged.items()
    # a key given as None drops that option (the loader's default); {} clears them all (the
    # only way to run 02 on digits, or 03 on the stand-ins, at the paper preset)
    assert "size" not in presets.resolve(notebook, "paper", **{knob: {**given, "size": None}})[
        knob]
    assert presets.resolve(notebook, "paper", **{knob: {}})[knob] == {}


@pytest.mark.parametrize(("notebook", "name", "value", "says"), [
    ("04", "n_boot", 1, "must be >= 20"), ("01", "n_boot", 5, "must be >= 20"),
    ("04", "eps", 2.0, "must be <= 1.0"), ("02", "transfer_eps", 5.0, "must be <= 1.0"),
    ("02", "search_start", 2.0, "must be <= 1.0"), ("01", "n_pairs", 2, "must be >= 4"),
    ("01", "robust_pairs", 3, "must be >= 4"), ("01", "twin_pairs", 1, "must be >= 4")])
def test_knobs_with_bounds_of_their_own(notebook: str, name: str, value: float,
                                        says: str) -> None:
    """n_boot 1 ran, its "95 % CI" [0.460, 0.460] without its estimate 0.597; L∞ radii of
    [0, 1] images above 1 ran unbounded attacks. Every preset's value is within the bounds."""
    with pytest.raises(ValueError, match=f"knob '{name}' = {value!r} {says}"):
        presets.check_knob(notebook, name, value)
    for preset in presets.PRESET_NAMES:
        presets.resolve(notebook, preset)[name]  # noqa: B018 (present in every preset)
        assert presets.check_knob(notebook, name, presets.PRESETS[notebook][preset][name]) \
            == presets.PRESETS[notebook][preset][name]


@pytest.mark.parametrize(("notebook", "name", "value", "says"), [
    ("04", "experiments", ["A-digit"], "holds 'A-digit'; each item must be one of A-digits, "
                                       "A-twin-cue, B-digits, A-cifar10-stl10, B-cifar10-stl10"),
    ("05", "seeds", [0], "needs at least 2 items"),
    ("05", "sweep_notebooks", [], "is empty")])
def test_list_knobs_refused_before_the_kernel_starts(notebook: str, name: str, value: list,
                                                     says: str) -> None:
    """These passed the up-front check and failed 20-35 s later inside the notebook (04:
    "unknown experiment(s)", 05: "a sweep needs at least two distinct ...", "none of the
    notebooks [] exists")."""
    with pytest.raises(ValueError, match=f"knob '{name}' = .*{says}"):
        presets.check_knob(notebook, name, value)


def test_the_experiments_offered_are_the_ones_notebook_04_runs() -> None:
    import inspect

    from advlens.papers import liang2021

    assert liang2021.EXPERIMENTS == presets.LIANG_EXPERIMENTS
    source = inspect.getsource(liang2021)
    assert all(f'"{name}"' in source for names in presets.LIANG_EXPERIMENTS.values()
               for name in names)
    for preset in presets.PRESET_NAMES:
        knobs = presets.resolve("04", preset)
        assert set(knobs["experiments"]) <= set(presets.LIANG_EXPERIMENTS[knobs["liang_data"]])


@pytest.mark.parametrize(("notebook", "dataset", "split"), [
    ("01", "digits", "val"), ("02", "digits", "tset"), ("01", "twin-cue", "all")])
def test_a_split_the_dataset_lacks_is_refused_naming_the_knob(notebook: str, dataset: str,
                                                             split: str) -> None:
    """The loader's own error came at the data cell, after the zoo was built, naming no knob."""
    with pytest.raises(ValueError, match=r"knob 'data_split' = '\w+' is not a split of") as err:
        presets.resolve(notebook, "laptop", dataset=dataset, data_split=split)
    assert str(list(advlens.data.registry.SPLITS[dataset])) in str(err.value)


@pytest.mark.parametrize(("dataset", "split"), [
    ("digits", "all"), ("Twin_Cue", "train"), ("imagenet", "val2"), ("clickme", "anything")])
def test_a_split_the_dataset_has_or_any_folder_name_is_taken(dataset: str, split: str) -> None:
    knobs = presets.resolve("02", "laptop", dataset=dataset, data_split=split)
    assert knobs["data_split"] == split


@pytest.mark.parametrize("name", sorted(advlens.data.registry.SPLITS))
def test_the_splits_named_are_the_loaders_own(name: str) -> None:
    """SPLITS is what each loader takes: a name outside it is refused by the loader itself (before
    any file is looked for), so the knob check cannot refuse a split that loads."""
    loader = advlens.data.registry.LOADERS[name]
    for bad in ("val", "Train", "tests"):
        with pytest.raises(ValueError, match=f"split must be .*got {bad!r}"):
            loader(split=bad)
    if name == "digits":
        assert [len(loader(split=s)) for s in advlens.data.registry.SPLITS[name]] == [
            1400, 397, 1797]
