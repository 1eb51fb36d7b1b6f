"""Mutation testing of the kernels, on demand (``make mutate``; never in CI).

Each mutant changes one operator or constant in one kernel module (``+``↔``-``, ``*``↔``/``,
``<``↔``<=``, ``>``↔``>=``, ``==``↔``!=``, ``and``↔``or``, ``True``↔``False``, an integer
``n``→``n+1``, a dropped unary minus, ``min``↔``max``). Mutants are written into a copy of
``lib/`` under a temporary folder (the checkout is never touched) and the module's fast tests run
against it (a fork of a process that imported torch once, with the copy first on ``sys.path``),
stopping at the first failure. A mutant is
*killed* when a test fails (or the run times out), *survives* when all pass. The score is
killed / (killed + survived). Survivors are listed so each can be read: some are equivalent
mutants (no behaviour change), the others are missing tests.

A module under a package is named with dots (``attacks.ddn``: lib/advlens/attacks/ddn.py).

Usage::

    python benchmarks/mutate.py [--modules cka inversion features stats alignment transfer]
                                [--per-module 40]
                                [--seed 0] [--timeout 180] [--out benchmarks/results/mutate.json]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# kernel module -> the fast tests that exercise it
TESTS = {
    "cka": ["tests/test_cka.py", "tests/test_cka_errors.py"],
    "inversion": ["tests/test_inversion.py", "tests/test_inversion_parity.py",
                  "tests/test_input_errors.py"],
    "features": ["tests/test_features.py", "tests/test_input_errors.py"],
    "probes": ["tests/test_probes.py", "tests/test_input_errors.py"],
    "stir": ["tests/test_stir.py", "tests/test_input_errors.py"],
    "io": ["tests/test_core.py", "tests/test_zoo_config_hash.py", "tests/test_data_cache.py",
           "tests/test_input_errors.py"],
    "stats": ["tests/test_core.py", "tests/test_su2018_scaling.py", "tests/test_stats.py"],
    "alignment": ["tests/test_alignment.py", "tests/test_linsley2023.py",
                  "tests/test_clickme_tf_parity.py", "tests/test_input_edges.py"],
    "transfer": ["tests/test_transfer.py", "tests/test_transfer_alpha.py"],
    # attack modules (dotted: lib/advlens/attacks/<name>.py); the fastest files first (-x)
    "attacks.norms": ["tests/test_attacks_units.py", "tests/test_attacks_pgd.py",
                      "tests/test_attacks_steps.py", "tests/test_attacks_contract.py",
                      "tests/test_attacks_closed_form.py"],
    "attacks.criterion": ["tests/test_attacks_units.py", "tests/test_attacks_margin_grad.py",
                          "tests/test_attacks_steps.py", "tests/test_attacks_contract.py"],
    "attacks.best": ["tests/test_attacks_units.py", "tests/test_attacks_steps.py",
                     "tests/test_attacks_contract.py", "tests/test_attacks_closed_form.py"],
    "attacks.ddn": ["tests/test_attacks_steps.py", "tests/test_attacks_contract.py",
                    "tests/test_attacks_closed_form.py"],
    "attacks.fmn": ["tests/test_attacks_steps.py", "tests/test_attacks_contract.py",
                    "tests/test_attacks_closed_form.py"],
    "attacks.core": ["tests/test_attacks_units.py", "tests/test_attacks_margin_grad.py",
                     "tests/test_attacks_steps.py", "tests/test_attacks_contract.py"],
    "attacks.targets": ["tests/test_attacks_paper.py", "tests/test_attacks_contract.py",
                        "tests/test_transfer.py"],
    # ALMA's own tests, not the (minutes-long) minimal-attack plans of test_attacks_alma.py
    "attacks.alma": ["tests/test_attacks_steps.py", "tests/test_attacks_closed_form.py",
                     "tests/test_attacks_contract.py",
                     *(f"tests/test_attacks_alma.py::test_{name}" for name in (
                         "p2_derivative_matches_autograd_and_the_penalty_is_c2",
                         "logit_ratio_is_scale_and_shift_invariant_and_signs_the_margin",
                         "logit_ratio_is_adv_libs_difference_of_logits_ratio",
                         "alma_follows_adv_libs_alma_step_for_step",
                         "alma_accepts_a_zero_tolerance",
                         "alma_within_budget_truthful_and_deterministic",
                         "alma_on_two_class_models_uses_the_plain_margin"))],
    "checks": ["tests/test_core.py", "tests/test_input_errors.py"],
    "verify": ["tests/test_verify.py"],
    "presets": ["tests/test_presets.py", "tests/test_runner_inputs.py",
                "tests/test_input_errors.py"],
    "findings": ["tests/test_prose.py", "tests/test_jones2022_claims.py", "tests/test_sweep.py",
                 "tests/test_book.py"],
    "sweep": ["tests/test_sweep.py"],
    # paper modules (dotted: lib/advlens/papers/<name>.py)
    "papers.su2018": ["tests/test_su2018_scaling.py", "tests/test_su2018_within_family.py",
                      "tests/test_su2018.py", "tests/test_input_errors.py"],
    "papers.linsley2023": ["tests/test_linsley2023.py", "tests/test_input_errors.py"],
    "papers.liang2021": ["tests/test_liang2021.py", "tests/test_transfer_alpha.py"],
    "papers.jones2022": ["tests/test_jones2022_claims.py", "tests/test_jones2022.py"],
}
# the default run; the attack, paper, verify, probes, stir, io, presets, findings and sweep
# modules run on request (--modules papers.su2018 io; make mutate MODULES='presets sweep')
KERNELS = ("cka", "inversion", "features", "stats", "alignment", "transfer")
SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And,
}


@dataclass
class Mutant:
    """One single-site change: where it is and what it does."""

    module: str
    index: int
    line: int
    change: str
    status: str = "pending"
    seconds: float = 0.0


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Every mutable site in ``tree`` (docstrings, annotations and f-strings are skipped)."""
    skip = _docstring_nodes(tree)
    for node in ast.walk(tree):  # annotations hold no behaviour
        for ann in (getattr(node, "annotation", None), getattr(node, "returns", None)):
            if ann is not None:
                skip |= {id(n) for n in ast.walk(ann)}
        if isinstance(node, ast.JoinedStr):
            skip |= {id(n) for n in ast.walk(node)}
    sites: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in SWAPS:
            sites.append((node, "op"))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAPS:
            sites.append((node, "cmp"))
        elif isinstance(node, ast.BoolOp) and type(node.op) in SWAPS:
            sites.append((node, "bool"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            sites.append((node, "bool-const"))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            sites.append((node, "int"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            sites.append((node, "neg"))
        elif isinstance(node, ast.Name) and node.id in ("min", "max"):
            sites.append((node, "minmax"))
    return sites


def _mutate(source: str, index: int) -> tuple[str, int, str]:
    """The source with site ``index`` mutated, its line and a description."""
    tree = ast.parse(source)
    node, kind = _sites(tree)[index]
    line = getattr(node, "lineno", 0)
    before = ast.unparse(node)
    if kind in ("op", "bool"):
        node.op = SWAPS[type(node.op)]()
    elif kind == "cmp":
        node.ops = [SWAPS[type(node.ops[0])]()]
    elif kind == "bool-const":
        node.value = not node.value
    elif kind == "int":
        node.value = node.value + 1
    elif kind == "neg":
        parent = next(p for p in ast.walk(tree) for c in ast.iter_child_nodes(p) if c is node)
        for field, value in ast.iter_fields(parent):
            if value is node:
                setattr(parent, field, node.operand)
            elif isinstance(value, list):
                setattr(parent, field, [node.operand if v is node else v for v in value])
        after = ast.unparse(node.operand)
        return ast.unparse(tree), line, f"{before}  ->  {after}"
    elif kind == "minmax":
        node.id = "max" if node.id == "min" else "min"
    return ast.unparse(tree), line, f"{before}  ->  {ast.unparse(node)}"


def _preload() -> None:
    """Import the heavy dependencies once; every test run is a fork of this process (advlens
    itself is imported only in the fork, from the mutated copy)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import matplotlib

    matplotlib.use("Agg")
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pytest  # noqa: F401
    import scipy.stats  # noqa: F401
    import torch

    torch.set_num_threads(1)
    assert "advlens" not in sys.modules, "advlens must be imported from the mutated copy only"


def _run_tests(copy_root: Path, tests: list[str], timeout: float) -> str:
    pid = os.fork()
    if pid == 0:  # the child: run the tests against the copy, report by exit code
        code = 3
        try:
            import pytest

            # no bytecode cache of the copy: a .pyc records its source's size and mtime to the
            # second, so a mutant of the same size written within a second of the last compile
            # was run as the code before it (same-size mutants such as 0 -> 1 "survived")
            sys.dont_write_bytecode = True
            sys.path.insert(0, str(copy_root / "lib"))
            os.chdir(ROOT)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                                    *tests]))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "killed (timeout)"
        time.sleep(0.05)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return "survived"
    if code == 1:
        return "killed"
    return f"error (pytest exit {code})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=list(KERNELS), choices=list(TESTS))
    parser.add_argument("--per-module", type=int, default=40,
                        help="mutants sampled per module (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mutate.json"))
    args = parser.parse_args(argv)

    _preload()
    work = Path(tempfile.mkdtemp(prefix="advlens-mutate-"))
    shutil.copytree(ROOT / "lib", work / "lib", ignore=shutil.ignore_patterns("*.egg-info",
                                                                              "__pycache__"))
    baseline = {m: _run_tests(work, TESTS[m], args.timeout) for m in args.modules}
    broken = [m for m, status in baseline.items() if status != "survived"]
    if broken:
        print(f"the unmutated tests fail for {broken}; fix them first.", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    mutants: list[Mutant] = []
    for module in args.modules:
        path = Path("lib", "advlens", *module.split(".")).with_suffix(".py")
        source = (ROOT / path).read_text()
        indices = list(range(len(_sites(ast.parse(source)))))
        if args.per_module:
            indices = sorted(rng.sample(indices, min(args.per_module, len(indices))))
        target = work / path
        for index in indices:
            mutated, line, change = _mutate(source, index)
            mutant = Mutant(module, index, line, change)
            target.write_text(mutated)
            started = time.perf_counter()
            mutant.status = _run_tests(work, TESTS[module], args.timeout)
            mutant.seconds = round(time.perf_counter() - started, 1)
            target.write_text(source)
            mutants.append(mutant)
            print(f"{module}:{line} {change[:70]!r}: {mutant.status} ({mutant.seconds} s)",
                  flush=True)
    shutil.rmtree(work, ignore_errors=True)
    killed = sum(m.status.startswith("killed") for m in mutants)
    survived = [m for m in mutants if m.status == "survived"]
    scored = killed + len(survived)
    per_module = {mod: {"killed": sum(m.status.startswith("killed") for m in mutants
                                      if m.module == mod),
                        "survived": sum(m.status == "survived" for m in mutants
                                        if m.module == mod)} for mod in args.modules}
    report = {"score": killed / scored if scored else float("nan"), "killed": killed,
              "survived": len(survived), "errors": len(mutants) - scored,
              "per_module": per_module, "seed": args.seed, "per_module_sample": args.per_module,
              "mutants": [asdict(m) for m in mutants]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nmutation score {report['score']:.1%}: {killed} killed, {len(survived)} survived, "
          f"{report['errors']} errors; per module {per_module}; report: {args.out}")
    for m in survived:
        print(f"  survived {m.module}:{m.line}  {m.change}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
