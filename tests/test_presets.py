"""Knob checking: presets.check_knob (type and allowed values) and presets.from_namespace (the
one line under every notebook's parameters cell)."""

from __future__ import annotations

import pytest

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
    ("seed", "abc", "number"),  # the reviewer's case: a string for a number
    ("lr", [1.0], "number"),
    ("flag", 1, "bool"),  # 1 is not a bool ...
    ("seed", True, "number"),  # ... and True is not a number
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
