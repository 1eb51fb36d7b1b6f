"""The house rules the package's layout relies on: every module linted, kernels apart from the
paper code, one place for each fact."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import advlens

ROOT = Path(advlens.__file__).resolve().parents[2]
PACKAGE = ROOT / "lib" / "advlens"
LINTED = ("lib", "tests", "benchmarks", "notebooks")


# ---------------------------------------------------------------------------- lint coverage
def _python_files_in_git() -> set[Path]:
    """Tracked and untracked-but-not-ignored .py and .ipynb files under the linted folders."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot tell project files from ignored ones")
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z",
                          "--", *LINTED], cwd=ROOT, capture_output=True, text=True, check=True)
    return {(ROOT / p).resolve() for p in out.stdout.split("\0")
            if p.endswith((".py", ".ipynb")) and (ROOT / p).exists()}


def _files_ruff_checks() -> set[Path]:
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-files", *LINTED],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return {Path(line.strip()).resolve() for line in out.stdout.splitlines()
            if line.strip().endswith((".py", ".ipynb"))}


def test_ruff_lints_every_python_file() -> None:
    """An exclude pattern that matches too much (``data`` also matched ``lib/advlens/data``)
    silently drops modules from linting; compare what ruff checks with the files on disk (the
    notebooks' code cells too)."""
    on_disk = _python_files_in_git()
    assert any(p.parent.name == "data" for p in on_disk)  # the folder once excluded by mistake
    assert any(p.suffix == ".ipynb" for p in on_disk)
    unlinted = sorted(str(p.relative_to(ROOT)) for p in on_disk - _files_ruff_checks())
    assert not unlinted, f"ruff does not check {unlinted}; fix extend-exclude in pyproject.toml"


# ----------------------------------------------------------------------------- import graph
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """advlens modules that importing ``name`` may import (every import statement, also those
    inside functions; ``from a import b`` counts a.b when that is a module; a submodule brings
    its parent packages)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & known
    return found - {name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _chain_to_papers(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The import chain from ``start`` to an advlens.papers module, or None."""
    parent: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        current = queue.pop(0)
        if current == "advlens.papers" or current.startswith("advlens.papers."):
            chain = [current]
            while parent[chain[-1]] is not None:
                chain.append(parent[chain[-1]])
            return chain[::-1]
        for nxt in sorted(graph[current]):
            if nxt not in parent:
                parent[nxt] = current
                queue.append(nxt)
    return None


def _kernel_modules(graph: dict[str, set[str]]) -> list[str]:
    return [m for m in graph if m != "advlens.papers" and not m.startswith("advlens.papers.")]


def test_kernels_never_import_papers() -> None:
    """Kernels (everything under lib/advlens but papers/) must not import advlens.papers,
    directly or through another module."""
    graph = _graph()
    assert "advlens.papers.jones2022" in graph and "advlens.cka" in graph
    assert graph["advlens.papers.jones2022"] >= {"advlens.cka"}  # the walk sees real imports
    offenders = {m: chain for m in _kernel_modules(graph)
                 if (chain := _chain_to_papers(graph, m)) is not None}
    assert not offenders, "kernels import paper code: " + "; ".join(
        " -> ".join(chain) for chain in offenders.values())


def test_import_walk_finds_indirect_and_relative_imports(tmp_path: Path) -> None:
    """The walker itself: a transitive import through a function-level relative import."""
    graph = {"advlens.a": {"advlens.b"}, "advlens.b": {"advlens.papers.x"},
             "advlens.papers.x": set(), "advlens.c": set()}
    assert _chain_to_papers(graph, "advlens.a") == ["advlens.a", "advlens.b", "advlens.papers.x"]
    assert _chain_to_papers(graph, "advlens.c") is None
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from ..papers import jones2022\n")
    known = {"advlens", "advlens.papers", "advlens.papers.jones2022", "advlens.x"}
    assert _imports("advlens.x.mod", source, known) == known - {"advlens.x"}


def test_package_docstring_lists_every_module() -> None:
    """The package tree in advlens/__init__.py names every module (new modules update it)."""
    tree = advlens.__doc__ or ""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if path.name == "__init__.py":
            name = f"{relative.parent}/" if relative.parent != Path(".") else None
        else:
            name = path.name
        if name is not None and name not in tree:
            missing.append(str(relative))
    assert not missing, f"add {missing} to the package tree in lib/advlens/__init__.py"


# ------------------------------------------------------------------- docs of the benchmarks
def _mutate_default_modules() -> tuple[str, ...]:
    tree = ast.parse((ROOT / "benchmarks" / "mutate.py").read_text())
    return next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "KERNELS")


def test_docs_name_every_module_make_mutate_mutates() -> None:
    """The Makefile and benchmarks/README say which modules `make mutate` mutates: the defaults
    of benchmarks/mutate.py (they named four of its six)."""
    kernels = _mutate_default_modules()
    makefile = (ROOT / "Makefile").read_text()
    comment = makefile[makefile.index("# Mutation testing"):makefile.index("mutate:")]
    bench = (ROOT / "benchmarks" / "README.md").read_text()
    paragraph = bench[bench.index("`mutate.py` (`make mutate`"):]
    paragraph = paragraph[:paragraph.index("each run against")]
    for where, text, name in (("Makefile", comment, "{}"), ("benchmarks/README.md", paragraph,
                                                            "`{}.py`")):
        missing = [k for k in kernels if name.format(k) not in text]
        assert not missing, f"{where} does not name {missing} among make mutate's modules"


def test_benchmark_readme_says_which_scripts_write_a_csv() -> None:
    """benchmarks/README.md: every script writes a CSV to benchmarks/results/ except those it
    names as only printing."""
    bench = (ROOT / "benchmarks" / "README.md").read_text()
    intro = bench[:bench.index("| script |")]
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        writes = any(call in script.read_text() for call in ("to_csv(", "csv.writer("))
        named = f"`{script.name}`" in intro
        assert writes != named, (f"{script.name}: writes a CSV: {writes}; benchmarks/README "
                                 f"names it as only printing: {named}")


def _benchmark_module(name: str):
    """A benchmarks/ script imported as a module (sys.path restored: the scripts append .peers)."""
    import importlib

    saved = list(sys.path)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path[:] = saved


def test_bench_twin_cue_learnability_measures_the_design_asked_for(tmp_path, monkeypatch):
    """The bench could only train on the independent design (notebook 01 uses the latent one)
    and wrote generator version 3 whatever the data; each design gives its own rows now."""
    from advlens.data import twin_cue

    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path))
    bench = _benchmark_module("bench_twin_cue_learnability")
    seen = []

    def recording(split, variant, n, **kw):
        seen.append(kw.get("design", "independent"))
        return twin_cue(split, variant, n=n, **kw)

    monkeypatch.setattr(bench, "twin_cue", recording)
    for design, version in (("latent", "latent-1"), ("independent", "3")):
        seen.clear()
        rows = bench.run("a-only", 0, 1, 20, 10, design)
        assert seen == [design, design] and [r["generator"] for r in rows] == [version]


@pytest.mark.parametrize("debiased", [False, True])
def test_bench_cka_reference_is_exact_on_features_far_from_zero(debiased: bool) -> None:
    """bench_cka's float64 reference, the yardstick of its error column: on features whose mean
    is far above their spread (pooled conv features) it matches exact rational arithmetic on
    the same float inputs (its uncentred unbiased-HSIC expansion cancelled: 0.277 for 0.413
    here, and ~1e-12 at the benchmark's own offset of 10, reported as our error)."""
    from fractions import Fraction

    import numpy as np

    bench_cka = _benchmark_module("bench_cka")
    rng = np.random.default_rng(0)
    n, d = 60, 3
    x = rng.random((n, d)) + 1e3
    y = x @ rng.random((d, d)) + rng.random((n, d)) + 1e3

    def exact(a: np.ndarray, b: np.ndarray) -> Fraction:
        fa = [[Fraction(float(v)) for v in row] for row in a]
        fb = [[Fraction(float(v)) for v in row] for row in b]
        k = [[sum(p * q for p, q in zip(fa[i], fa[j], strict=True)) for j in range(n)]
             for i in range(n)]
        l = [[sum(p * q for p, q in zip(fb[i], fb[j], strict=True)) for j in range(n)]
             for i in range(n)]
        if not debiased:  # tr(HKH HLH)
            def centre(m: list[list[Fraction]]) -> list[list[Fraction]]:
                rows = [sum(r) / n for r in m]
                total = sum(rows) / n
                return [[m[i][j] - rows[i] - rows[j] + total for j in range(n)]
                        for i in range(n)]
            kc, lc = centre(k), centre(l)
            return sum(kc[i][j] * lc[i][j] for i in range(n) for j in range(n))
        for m in (k, l):
            for i in range(n):
                m[i][i] = Fraction(0)
        trace = sum(k[i][j] * l[i][j] for i in range(n) for j in range(n))
        sk, sl = sum(map(sum, k)), sum(map(sum, l))
        rows = sum(sum(k[i]) * sum(l[i]) for i in range(n))
        return (trace + sk * sl / ((n - 1) * (n - 2)) - Fraction(2, n - 2) * rows) / (
            n * (n - 3))

    xy, xx, yy = exact(x, y), exact(x, x), exact(y, y)
    truth = float(xy) / np.sqrt(float(xx) * float(yy))
    assert bench_cka.reference_f64(x, y, debiased) == pytest.approx(truth, rel=0, abs=1e-12)


def test_attack_tables_shows_every_attack_that_ran() -> None:
    """attack_tables kept only the attacks of its fixed column list: our other methods
    (``bench_attacks.py --linf-methods fmn``, as README's set-6 rerun runs) vanished from the
    table; each attack that ran is a column now, the verdict unchanged."""
    import pandas as pd

    tables = _benchmark_module("attack_tables")
    runs = {"advlens auto": 0.065, "advlens fmn": 0.072, "foolbox FMN-Linf": 0.0722,
            "adv-lib New": 0.07}
    df = pd.DataFrame([{"model": "m", "norm": "linf", "budget": 100, "n": 4, "attack": a,
                        "median": med, "success": 1.0, "success_alone": 1.0, "wall_s": 0.1,
                        "cpu_s": 0.1} for a, med in runs.items()])
    header, _, row = tables.table(df, "linf", 6)
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns == ["model", "budget", "n", "advlens auto", "foolbox FMN-Linf", "advlens fmn",
                       "adv-lib New", "ours ≤ best peer"]
    assert row.count("|") == header.count("|")
    assert row.endswith(f"yes ({100 * (0.065 / 0.07 - 1):+.3f}%) |")


def test_attack_cells_bootstrap_interval_and_saved_norms(tmp_path) -> None:
    """attack_cells' interval of median(ours) / best peer median: exact where every resample
    gives one ratio (ours a fixed multiple of the peer), the best peer chosen per resample (a
    peer lower on every image decides it), failures (+inf) carried; and the per-image norms
    bench_attacks --norms-dir writes are read back per cell; the resampled ratios as a plain loop
    computes them."""
    import numpy as np

    cells = _benchmark_module("attack_cells")
    bench = _benchmark_module("bench_attacks")
    peer = np.random.default_rng(1).uniform(0.5, 1.5, 150)
    for scale in (1.0, 0.9, 1.2):
        low, high = cells.median_ratio_interval(scale * peer, peer[None])
        assert low == pytest.approx(scale, rel=1e-12) and high == pytest.approx(scale, rel=1e-12)
    worse = 2 * peer  # never the lowest median: the interval is the one against `peer` alone
    both = cells.median_ratio_interval(0.9 * peer, np.stack([worse, peer]))
    assert both == pytest.approx((0.9, 0.9), rel=1e-12)
    noisy = peer * np.random.default_rng(2).uniform(0.8, 1.2, 150)
    low, high = cells.median_ratio_interval(noisy, peer[None])
    assert low < np.median(noisy) / np.median(peer) < high
    ours_fails = np.full(150, np.inf)
    assert cells.median_ratio_interval(ours_fails, peer[None]) == (np.inf, np.inf)
    with pytest.raises(ValueError, match=r"\(k, 150\)"):
        cells.median_ratio_interval(peer, peer[None, :10])
    runs = {"advlens auto": 0.95 * peer, "adv-lib FAB-T1": peer, "foolbox DDN": 1.1 * peer}
    for attack, norms in runs.items():
        bench.save_norms(bench.norms_file(tmp_path, "vgg-xs/std/s1", "l2", 100, attack), norms)
    read = cells.read_cells([tmp_path])
    assert list(read) == [("vgg-xs_std_s1", "l2", 100)]
    assert sorted(read[("vgg-xs_std_s1", "l2", 100)]) == sorted(runs)
    row = cells.compare(read, "advlens auto").iloc[0]
    assert (row.model, row.peer, row.lower, row.higher) == ("vgg-xs/std/s1", "adv-lib FAB-T1",
                                                            150, 0)
    assert row.ratio == pytest.approx(0.95) and row.ci_high == pytest.approx(0.95)
    summary = cells.summary(cells.compare(read, "advlens auto")).iloc[0]
    assert (summary.lost, summary.ours_lower_beyond_ci, summary.peer_lower_beyond_ci) == (0, 1, 0)
    assert row.p_lost == 0 and summary.sum_p_lost == 0
    flipped = cells.compare({("m", "l2", 100): {"advlens auto": 1.05 * peer, "p": peer}},
                            "advlens auto")
    assert flipped.p_lost.item() == 1 and flipped.ratio.item() == pytest.approx(1.05)
    level = cells.compare({("m", "l2", 100): {"advlens auto": peer, "p": peer}}, "advlens auto")
    assert level.p_lost.item() == 0  # a level median is not lost
    # against a plain loop on random data: two peers of the same median that take turns being the
    # lower one (so a best peer fixed once, or the per-image minimum of the peers, differs), some
    # failures shared by all, and both medians +inf in some resamples (a tie: ratio 1)
    gen = np.random.default_rng(3)
    n = 31
    difficulty = gen.lognormal(0, 0.4, n)
    mine, peers = difficulty * gen.lognormal(0, 0.2, n), difficulty * gen.lognormal(0, 0.2, (2, n))
    peers[1] *= np.median(peers[0]) / np.median(peers[1])
    mine[:13], peers[:, :13] = np.inf, np.inf
    draws = np.random.default_rng(5).integers(0, n, size=(400, n))
    expected = []
    for r in draws:
        mo, mp = np.median(mine[r]), min(np.median(peers[0][r]), np.median(peers[1][r]))
        expected.append(1.0 if mo == mp == np.inf else 0.0 if mp == np.inf else mo / mp)
    got = cells.resampled_ratios(mine, peers, resamples=400, seed=5)
    np.testing.assert_array_equal(got, expected)
    assert 0 < (got == 1).mean() < 1 and len(np.unique(got)) > 20
    ordered = np.sort(expected)
    assert cells.percentile_interval(got) == (ordered[9], ordered[389])  # ceil(400 q) - 1
    # (1 - 0.95) / 2 is a hair above 0.025 in floats: the lower end was the 51st of 2,000
    assert cells.percentile_interval(np.arange(1.0, 2001.0)) == (50.0, 1950.0)
    shared = cells.compare({("m", "l2", 100): {"advlens auto": mine, "a": peers[0],
                                               "b": peers[1]}}, "advlens auto").iloc[0]
    finite = np.isfinite(mine)
    assert shared.worst_image_vs_best_of_peers == pytest.approx(
        (mine[finite] / peers[:, finite].min(axis=0)).max())
    with pytest.raises(ValueError, match="image counts differ"):
        cells.compare({("m", "l2", 100): {"advlens auto": peer, "p": peer[:100]}}, "advlens auto")


def test_attack_cells_image_slice_selects_held_out_images() -> None:
    """attack_cells --images START:STOP compares only those images of every cell (a --n 300 run
    read as the protocol's first 150 and the held-out next 150); a malformed slice is refused, a
    cell with fewer images keeps those it has."""
    import numpy as np

    cells = _benchmark_module("attack_cells")
    first, rest = np.linspace(1.0, 2.0, 150), np.linspace(3.0, 4.0, 150)
    runs = {("m", "l2", 100): {"advlens auto": np.concatenate([0.9 * first, 1.1 * rest]),
                               "p": np.concatenate([first, rest])}}
    head = cells.compare(cells.select_images(runs, cells.image_slice(":150")), "advlens auto")
    tail = cells.compare(cells.select_images(runs, cells.image_slice("150:300")), "advlens auto")
    assert (head.n.item(), tail.n.item()) == (150, 150)
    assert head.ratio.item() == pytest.approx(0.9) and tail.ratio.item() == pytest.approx(1.1)
    assert (head.lower.item(), tail.higher.item()) == (150, 150)
    for bad in ("150", "a:b", "300:150", "-1:4"):
        with pytest.raises(ValueError, match="--images"):
            cells.image_slice(bad)
    short = cells.select_images(runs, cells.image_slice("200:400"))  # a model with fewer images
    assert cells.compare(short, "advlens auto").n.item() == 100
    assert cells.select_images(runs, cells.image_slice("300:400")) == {}
