"""Seed sweeps: the numbered notebooks rerun over seeds, and their findings aggregated.

A sweep runs the chosen notebooks once per seed ``s`` through :func:`advlens.runner.run_grid`
(papermill batch reruns, one folder per parameter set), with the notebooks' data/pair seed
``seed = s`` and, where a notebook declares it, the model-zoo seed ``zoo_seed = s``
(:mod:`advlens.zoo.seeds`: every model retrained from another seed; 03, without the knob,
keeps its models and varies the data seed only). Notebook 04 is not swept by default: its
``seed`` draws only its bootstrap (its α images are the reference's first correct test images,
its models are trained over its own ``seeds``), so its reruns repeat the same α and transfer
numbers. Each notebook writes a findings
table ``<NN>_findings.csv`` (:mod:`advlens.findings`) whose optional ``statistics`` column holds
the finding's headline numbers as a JSON object; :func:`collect` reads the tables of the runs
``sweep.json`` lists whose notebooks completed, :func:`headline_summary` gives each number's
mean and between-seed spread and :func:`hold_counts` in how many seeds each finding holds. No
prose is parsed.

CLI: ``python -m advlens.sweep --preset smoke --seeds 0 1 2 --notebooks 01 02 --out DIR``.
"""

from __future__ import annotations

import argparse
import operator
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from advlens import provenance, runner
from advlens.findings import STATISTICS, check_table, decode_statistics, verdict
from advlens.io import atomic_write_json, read_json
from advlens.presets import PRESETS

SEED_KNOBS = ("seed", "zoo_seed")
SWEEP_RECORD = "sweep.json"


# the notebooks that write a <nn>_findings.csv (00 prepares data; 05 summarises a sweep)
_FINDINGS_NOTEBOOKS = ("01", "02", "03", "04")


def available(notebooks: Sequence[str], directory: Path | None = None) -> list[str]:
    """The numbers of ``notebooks`` that exist (a sweep list may name notebooks not yet
    written, e.g. 03 and 04 while they are being built)."""
    found = {p.name[:2] for p in runner.discover(None, directory)}
    return [n for n in runner.notebook_numbers(notebooks) if n in found]


def _whole(seed: object) -> bool:
    """Whether ``seed`` is a whole number: an int (NumPy's included, not a bool) or a float
    with no fractional part (Python's or NumPy's)."""
    if isinstance(seed, bool | np.bool_):
        return False
    if isinstance(seed, float | np.floating):
        return bool(np.isfinite(seed)) and float(seed).is_integer()
    try:
        operator.index(seed)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class SweepRun:
    """Where a sweep wrote its runs, which notebooks and seeds, and its wall time."""

    out: Path
    notebooks: list[str]
    seeds: list[int]
    wall_time_s: float
    runs: pd.DataFrame  # one row per (seed, notebook): folder, wall_time_s


def run_sweep(seeds: Sequence[int], *, preset: str, notebooks: Sequence[str],
              out: str | Path, directory: Path | None = None,
              progress: bool = False, force: bool = False) -> SweepRun:
    """Run ``notebooks`` (those that exist) once per seed into ``out``; see the module doc.

    Parameters: ``seeds`` (distinct non-negative integers), ``preset``, ``notebooks`` (numbers),
    ``out`` (folder of the runs), ``directory`` (notebooks folder, default the repository's),
    ``force``: rerun seeds whose runs completed before (by default they are kept: an interrupted
    sweep resumes; after a code change, pass ``force=True`` or another ``out``; every seed's
    earlier runs are dropped first, so a forced sweep that stops resumes without ``force``).
    Returns: a :class:`SweepRun`; ``out/sweep.json`` records it.
    """
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Iterable):
        # a string is iterable: "12" ran seeds 1 and 2; an int failed with "not iterable"
        raise ValueError(f"seeds must be a list of whole numbers, e.g. [0, 1, 2]; got "
                         f"{seeds!r}.")
    seeds = list(seeds)
    if not all(_whole(s) for s in seeds):
        # int() would quietly run seed 0 for 0.5 or "0" (and seed 1 for True)
        raise ValueError(f"seeds must be whole numbers; got {seeds}.")
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"a sweep needs at least two distinct non-negative seeds; got {seeds}.")
    numbers = runner.notebook_numbers(notebooks)
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"notebooks {list(notebooks)} name a notebook twice ({numbers}); name "
                         "each once.")
    only = available(notebooks, directory)
    if not only:
        raise ValueError(f"none of the notebooks {list(notebooks)} exists.")
    if not set(only) & set(_FINDINGS_NOTEBOOKS):  # (it ran every seed, then said so)
        raise ValueError(f"notebooks {only} write no findings table, and a sweep counts "
                         "verdicts over seeds: sweep notebooks that do "
                         f"({', '.join(_FINDINGS_NOTEBOOKS)}).")
    declared = {p.stem: runner.notebook_parameters(p) for p in runner.discover(only, directory)}
    knobs = [k for k in SEED_KNOBS if any(k in names for names in declared.values())]
    if not knobs:
        raise ValueError(f"notebooks {only} declare none of the seed knobs {SEED_KNOBS}.")
    # the runner passes a notebook only the knobs it declares: 03 and 04 get no zoo_seed
    received = {stem: [k for k in knobs if k in names] for stem, names in declared.items()}
    unseeded = [stem for stem, given in received.items() if not given]
    if unseeded:  # each seed would rerun them unchanged (05: a whole sweep of its own per seed)
        raise ValueError(f"notebooks {unseeded} declare none of the seed knobs {SEED_KNOBS}: "
                         "every seed would rerun them with the same parameters; leave them out "
                         "of the sweep's notebooks.")
    out = Path(out).resolve()
    try:  # a file in the way is the caller's to fix (it failed with a bare errno, or a traceback)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot make the sweep's folder {out} ({err.strerror}: "
                         f"{err.filename}); choose another --out (notebook 05: sweep_dir).") \
            from None
    record = {"preset": preset, "notebooks": only, "seeds": seeds, "knobs": knobs,
              "notebook_knobs": received}
    # written first, and again after each seed with the seeds finished: a sweep that stops
    # half-way, even killed where no handler runs, must not leave a previous sweep's record or
    # one from which a seed it never reached reads as done
    started, rows = time.perf_counter(), []
    atomic_write_json(out / SWEEP_RECORD, {**record, "status": "running", "runs": rows})
    if force:  # every seed's earlier runs are dropped before any seed reruns: a forced sweep
        # stopped half-way, then resumed without force, must not keep the runs (of before a
        # code change) of the seeds it never reached
        names = [p.name for p in runner.discover(only, directory)]
        for s in seeds:
            runner.forget_done(out / runner.grid_folder({"preset": preset,
                                                         **{k: s for k in knobs}}), names)
    try:
        for s in seeds:
            ((_, results),) = runner.run_grid({k: [s] for k in knobs}, preset, only=only,
                                              out=out, progress=progress, notebooks=directory,
                                              force=force)
            rows += [{"seed": s, "notebook": r.notebook, "folder": str(r.out_dir),
                      "seed_knobs": received[r.out_dir.name], "wall_time_s": r.wall_time_s}
                     for r in results]
            atomic_write_json(out / SWEEP_RECORD, {**record, "status": "running", "runs": rows})
    except BaseException as err:
        status = "failed" if isinstance(err, Exception) else "interrupted"
        atomic_write_json(out / SWEEP_RECORD, {**record, "status": status, "runs": rows,
                                               "error": f"{type(err).__name__}: {err}"})
        raise
    wall = time.perf_counter() - started
    runs = pd.DataFrame(rows)
    atomic_write_json(out / SWEEP_RECORD, {**record, "status": "completed", "wall_time_s": wall,
                                           "runs": rows})
    return SweepRun(out, only, seeds, wall, runs)


def _received(folder: Path, fallback: Sequence[str] | None) -> list[str] | None:
    """The seed knobs the notebook run in ``folder`` was given: from its ``run.json``, else the
    parameters papermill recorded in the executed notebook, else ``fallback``."""
    record = provenance.run_record(folder)
    params = record.get("params") if record else None
    if not isinstance(params, dict):
        executed = folder / f"{folder.name}.ipynb"
        if executed.exists():
            try:
                params = read_json(executed)["metadata"]["papermill"]["parameters"]
            except (KeyError, TypeError, ValueError):
                params = None
    if isinstance(params, dict):
        return [k for k in SEED_KNOBS if k in params]
    return None if fallback is None else list(fallback)


def _runs_of(out: Path) -> tuple[list[Path], dict[str, Any], list[str], list[str]]:
    """The run folders of the sweep in ``out`` (those its ``sweep.json`` lists), the record,
    what was left out and why, and the names of every run the sweep meant (one per seed,
    whether it ran or not)."""
    found = sorted(stamp.parent for stamp in out.glob("*/params.json"))
    record_path = out / SWEEP_RECORD
    if not record_path.exists():  # a plain run_grid folder, or a sweep from before sweep.json
        return found, {}, ([f"no {SWEEP_RECORD}, so every run folder under it is collected "
                            "(whichever sweep wrote it)"] if found else []), \
            [f.name for f in found]
    record = read_json(record_path)
    skipped = []
    if record.get("status", "completed") != "completed":
        skipped.append(f"{SWEEP_RECORD} says the sweep is {record['status']!r}"
                       + (f" ({record['error']})" if record.get("error") else "")
                       + "; only its completed notebook runs are collected")
    # a sweep that stopped lists only the seeds it finished: a folder of another seed may be
    # an earlier sweep's
    done = ({int(row["seed"]) for row in record["runs"]} if "runs" in record
            else set(record["seeds"]))
    wanted = {s: out / runner.grid_folder({"preset": record["preset"],
                                           **{k: s for k in record["knobs"]}})
              for s in record["seeds"]}
    skipped += [f"{folder.name} left out: not one of this sweep's runs (seeds "
                f"{record['seeds']})" for folder in found if folder not in wanted.values()]
    skipped += [f"{folder.name} left out: seed {s} did not complete in this sweep"
                for s, folder in wanted.items()
                if s not in done and (folder / "params.json").exists()]
    skipped += [f"{folder.name} missing: seed {s} did not run"
                for s, folder in wanted.items() if not (folder / "params.json").exists()]
    return ([f for s, f in wanted.items() if s in done and (f / "params.json").exists()],
            record, skipped, [f.name for f in wanted.values()])


def _code_version(csv: Path) -> str | None:
    """The ``git_commit`` the provenance record beside a findings table names (None without
    a readable one: a toy notebook's table, a legacy run)."""
    try:
        commit = read_json(csv.parent / f"{csv.stem}.provenance.json").get("git_commit")
    except (OSError, ValueError, AttributeError):
        return None
    return commit if isinstance(commit, str) and commit else None


def collect(out: str | Path) -> pd.DataFrame:
    """Every findings table of the sweep in ``out``, one row per (run, finding), with the run's
    ``preset``, its seed knobs, ``notebook`` and ``verdict`` (holds / does not hold / not
    testable here).

    Only the runs ``out/sweep.json`` lists (its seeds and notebooks) are read, and only
    notebook runs whose ``run.json`` (where there is one) says ``completed``; what was left out
    is warned about and listed in ``result.attrs["skipped"]``; ``result.attrs["runs"]`` names
    every run of the sweep (one per seed), collected or not. A notebook whose seeds' tables
    were written by different code (``git_commit`` of their provenance records: a resumed sweep
    keeps the runs of before a code change) is collected but warned about. A seed knob a
    notebook does not declare (03 and 04 have no ``zoo_seed``: their models are the same in
    every run) is NA in its rows; ``seed_knobs`` names the knobs that notebook was given.
    """
    out = Path(out)
    folders, record, skipped, meant = _runs_of(out)
    notebooks = record.get("notebooks")
    frames: list[pd.DataFrame] = []
    commits: dict[str, dict[str, list[str]]] = {}  # notebook -> git commit -> its runs
    for run in folders:
        stamp = read_json(run / "params.json")
        params = dict(stamp["params"])
        # a notebook of the sweep that writes findings (01-04) but whose table is gone from this
        # run: counted silently, its finding read "holds in 1 of 1 seeds" with a seed missing
        tables = sorted(run.glob("*/*_findings.csv"))
        found = {csv.parent.name[:2] for csv in tables}
        missing = sorted(set(notebooks or ()) & set(_FINDINGS_NOTEBOOKS) - found)
        if missing:
            skipped.append(f"{run.name} holds no findings table of notebook(s) "
                           f"{', '.join(missing)} (deleted since it ran?): its seed counts as "
                           "missing for their findings; rerun the sweep (it reruns what is "
                           "missing)")
        for csv in tables:
            folder = csv.parent
            if notebooks is not None and folder.name[:2] not in notebooks:
                skipped.append(f"{run.name}/{folder.name} left out: not one of this sweep's "
                               f"notebooks {notebooks}")
                continue
            status = provenance.run_status(folder)
            if status not in (None, provenance.COMPLETED):
                skipped.append(f"{run.name}/{folder.name} left out: its run.json says "
                               f"{status!r}, not 'completed' (its findings are partial or "
                               "stale)")
                continue
            given = _received(folder, record.get("notebook_knobs", {}).get(folder.name))
            if given is None:  # no record of what it got: the run's knobs, as before
                given = [k for k in SEED_KNOBS if k in params]
            table = pd.read_csv(csv, keep_default_na=False)
            check_table(table, str(csv))
            commit = _code_version(csv)
            if commit is not None:
                commits.setdefault(folder.name, {}).setdefault(commit, []).append(run.name)
            labels = {k: (v if k in given or k not in SEED_KNOBS else None)
                      for k, v in params.items()}
            table = table.assign(run=run.name, preset=stamp["preset"], notebook=folder.name,
                                 seed_knobs=", ".join(given), **labels)
            frames.append(table.assign(verdict=[verdict(h) for h in table["holds"]]))
    notes = list(skipped)
    for name, versions in commits.items():  # its between-seed spread would mix in the change
        if len(versions) > 1:
            notes.append(f"{name}'s findings tables were written by different code (git commit "
                         + "; ".join(f"{c} in {', '.join(runs)}" for c, runs in versions.items())
                         + "): rerun its seeds on one version (force=True, --force)")
    if notes:
        warnings.warn(f"sweep {out}: " + "; ".join(notes), stacklevel=2)
    if not frames:
        # runs that completed but hold no table: their notebooks write none (00 does not)
        hint = ("its notebooks write no findings table; sweep notebooks that do (01-04)"
                if folders and not skipped else "run the sweep first")
        raise FileNotFoundError(f"no completed <run>/<notebook>/*_findings.csv of the sweep in "
                                f"{out}; {hint}."
                                + (f" ({'; '.join(skipped)})" if skipped else ""))
    found = pd.concat(frames, ignore_index=True)
    for knob in SEED_KNOBS:
        if knob in found:
            found[knob] = found[knob].astype("Int64")  # NA: not a knob of that notebook
    if STATISTICS not in found:
        found[STATISTICS] = ""
    found.attrs["skipped"] = skipped
    # every run of the sweep, collected or not: the n of "holds in k of n seeds"
    found.attrs["runs"] = meant
    return found


def _runs_per_notebook(collected: pd.DataFrame) -> dict[str, int]:
    """The sweep's runs of each notebook: every run it meant (``attrs["runs"]`` of
    :func:`collect`), else those collected. A seed whose notebook failed or whose findings
    table is gone counts (it dropped out: "holds in 2 of 2 seeds" in a sweep of 3)."""
    collected_runs = collected.groupby("notebook", sort=False)["run"].nunique()
    meant = collected.attrs.get("runs")
    return {nb: max(len(meant), int(n)) if meant else int(n)
            for nb, n in collected_runs.items()}


def headline_summary(collected: pd.DataFrame) -> pd.DataFrame:
    """Per (notebook, finding, statistic): number of runs (``n_runs``: the sweep's runs of the
    notebook, :func:`_runs_per_notebook`), how many gave no finite value (``n_nan``: NaN, the
    statistic or the finding not written, the notebook's table missing), and mean,
    between-seed s.d. (ddof 1), min and max of the finite values."""
    per_notebook = _runs_per_notebook(collected)
    rows = []
    for rec in collected.to_dict("records"):
        for name, value in decode_statistics(rec[STATISTICS]).items():
            rows.append({"notebook": rec["notebook"], "finding": rec["finding"],
                         "statistic": name, "run": rec["run"], "value": value})
    if not rows:
        return pd.DataFrame(columns=["notebook", "finding", "statistic", "n_runs", "n_nan",
                                     "mean", "sd", "min", "max"])
    long = pd.DataFrame(rows)
    out = []
    for (nb, finding, stat), group in long.groupby(["notebook", "finding", "statistic"],
                                                   sort=False):
        v = group["value"].to_numpy(np.float64)
        ok = v[np.isfinite(v)]
        # a seed that wrote no value (an untestable finding writes {}) is a NaN, not no seed
        n = max(per_notebook.get(nb, len(v)), len(v))
        out.append({"notebook": nb, "finding": finding, "statistic": stat,
                    "n_runs": n, "n_nan": int(n - len(ok)),
                    "mean": float(ok.mean()) if len(ok) else float("nan"),
                    "sd": float(ok.std(ddof=1)) if len(ok) > 1 else float("nan"),
                    "min": float(ok.min()) if len(ok) else float("nan"),
                    "max": float(ok.max()) if len(ok) else float("nan")})
    return pd.DataFrame(out)


def _knobs_of(group: pd.DataFrame) -> str:
    if "seed_knobs" not in group:
        return ""
    names = {k for text in group["seed_knobs"] for k in str(text).split(", ") if k}
    return ", ".join(k for k in SEED_KNOBS if k in names)


def hold_counts(collected: pd.DataFrame) -> pd.DataFrame:
    """Per (notebook, finding): runs (``n_runs``: the sweep's runs of its notebook,
    :func:`_runs_per_notebook`), and in how many the finding holds, does not hold, could not be
    tested, is ``absent`` from the run's findings table, or has no table (``missing``: the
    seed did not run or the notebook failed there, or its table is gone); ``seed_knobs``: the
    seed knobs that varied between its runs."""
    # a finding missing from one seed's table read "holds in 2 of 2 seeds" in a sweep of 3
    runs = collected.groupby("notebook", sort=False)["run"].nunique()
    meant = _runs_per_notebook(collected)
    twice = collected[collected.duplicated(["notebook", "finding", "run"])]
    if not twice.empty:  # its verdicts would be counted twice: "holds in 3 of 3, absent from 1"
        raise ValueError("a findings table names a finding twice (one row per finding): "
                         + "; ".join(f"{r.finding!r} in {r.run}/{r.notebook}"
                                     for r in twice.drop_duplicates().itertuples())
                         + "; rename or drop the repeated row and collect again.")
    rows = []
    for (nb, finding), group in collected.groupby(["notebook", "finding"], sort=False):
        words = group["verdict"].tolist()
        rows.append({"notebook": nb, "finding": finding, "n_runs": meant[nb],
                     "holds": words.count("holds"),
                     "does_not_hold": words.count("does not hold"),
                     "not_testable": words.count("not testable here"),
                     "absent": int(runs[nb]) - group["run"].nunique(),
                     "missing": meant[nb] - int(runs[nb]),
                     "seed_knobs": _knobs_of(group)})
    return pd.DataFrame(rows)


def data_seed_only(counts: pd.DataFrame) -> list[str]:
    """The notebooks of ``counts`` whose runs varied the data seed but not the models
    (no ``zoo_seed``: every run uses the same trained models)."""
    if "seed_knobs" not in counts:
        return []
    return sorted({nb for nb, knobs in zip(counts["notebook"], counts["seed_knobs"], strict=True)
                   if knobs and "zoo_seed" not in str(knobs).split(", ")})


def _number(r: Any, runs: int) -> str:
    """One headline number as prose: mean ± s.d. (no s.d. from one value), and from how many
    of the finding's ``runs`` it comes when fewer (NaN or absent in the others)."""
    finite = int(r.n_runs - r.n_nan)
    return (f"{r.statistic} {r.mean:.3g}" + (f" ± {r.sd:.2g}" if np.isfinite(r.sd) else "")
            + (f" from {finite} of {runs} seeds" if finite < runs else ""))


def markdown(counts: pd.DataFrame, headline: pd.DataFrame, *, preset: str | None = None) -> str:
    """One bullet per finding: in how many seeds it holds, with each headline number's mean ±
    between-seed s.d. (the prose of the sweep's summary, computed from its tables; a finding
    absent from some of its notebook's tables, and a number defined in fewer of the finding's
    seeds, say in how many), which notebooks varied only
    the data seed, and at the ``paper`` ``preset`` that the published checkpoints did not vary
    (``zoo_seed`` cannot retrain them)."""
    fixed = data_seed_only(counts)
    lines = []
    for rec in counts.to_dict("records"):
        numbers = headline[(headline["notebook"] == rec["notebook"])
                           & (headline["finding"] == rec["finding"])]
        shown = "; ".join(_number(r, rec["n_runs"])
                          for r in numbers.itertuples() if np.isfinite(r.mean))
        untested = f", not testable in {rec['not_testable']}" if rec["not_testable"] else ""
        if rec.get("absent"):
            untested += f", absent from the findings table in {rec['absent']}"
        if rec.get("missing"):
            untested += (f", no findings table in {rec['missing']} (the seed did not run or "
                         "failed, or its table is gone)")
        seeds = "data seeds, same models" if rec["notebook"] in fixed else "seeds"
        lines.append(f"- **{rec['notebook'][:2]} {rec['finding']}** — holds in {rec['holds']} of "
                     f"{rec['n_runs']} {seeds}{untested}" + (f" ({shown})" if shown else "")
                     + ".")
    if fixed:
        names = ", ".join(nb[:2] for nb in fixed)
        which = f"Notebooks {names} declare" if len(fixed) > 1 else f"Notebook {names} declares"
        lines += ["", f"{which} no `zoo_seed`: between the runs only the data seed (`seed`) "
                  "varied and the models were the same, so their spread is the data's alone, "
                  "not the models'."]
    if preset == "paper":
        # only the notebooks given zoo_seed retrain anything (03 declares none: its twin-cue
        # models are the same in every run too)
        seeded = sorted(nb[:2] for nb, group in counts.groupby("notebook")
                        if "zoo_seed" in _knobs_of(group).split(", "))
        where = (f"in the notebook{'s' if len(seeded) > 1 else ''} given `zoo_seed` "
                 f"({', '.join(seeded)})" if seeded else
                 "and no notebook of this sweep was given `zoo_seed`")
        lines += ["", "At the `paper` preset the published checkpoints are the same in every "
                  "run: `zoo_seed` cannot retrain them and leaves them as they are; it retrains "
                  f"only the models this package trains, {where}. Where a number rests on "
                  "published models, its spread is the data's alone."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m advlens.sweep``: run a sweep and print its hold counts."""
    parser = argparse.ArgumentParser(prog="python -m advlens.sweep",
                                     description="Rerun notebooks over seeds.")
    parser.add_argument("--preset", default="laptop", choices=runner.PRESET_NAMES,
                        help="the preset of every rerun (default: laptop)")
    # the defaults are notebook 05's preset (what `make sweep` reruns; laptop: 0 1 2 and 01 02
    # 03, smoke: 0 1 and 01 02); not 04: its seed knob draws only its bootstrap (module doc)
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="seeds s: each reruns with seed (and zoo_seed) s (default: notebook "
                             "05's seeds at --preset; laptop: 0 1 2)")
    parser.add_argument("--notebooks", nargs="+", default=None,
                        help="notebook numbers (default: notebook 05's sweep_notebooks at "
                             "--preset; laptop: 01 02 03)")
    parser.add_argument("--out", default="out/sweep",
                        help="folder of the runs (default: out/sweep; `make sweep` keeps its "
                             "runs in out/sweep-<preset>/05_seed_sweep/runs)")
    parser.add_argument("--force", action="store_true",
                        help="rerun seeds that completed before (default: keep them, resume)")
    args = parser.parse_args(argv)
    knobs = PRESETS["05"][args.preset]
    args.seeds = knobs["seeds"] if args.seeds is None else args.seeds
    args.notebooks = knobs["sweep_notebooks"] if args.notebooks is None else args.notebooks
    try:
        with runner.sigterm_as_interrupt():  # a killed sweep's records say interrupted
            done = run_sweep(args.seeds, preset=args.preset, notebooks=args.notebooks,
                             out=args.out, force=args.force)
        print(f"sweep of {done.notebooks} over seeds {done.seeds}: {done.wall_time_s:.0f} s")
        counts = hold_counts(collect(done.out))  # raises when its runs hold no findings table
    except (ValueError, TypeError, FileNotFoundError, FileExistsError,
            runner.GridFailed) as err:  # the user's to fix: one line, as `python -m advlens`
        print(f"advlens.sweep: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # one line, not a traceback
        print("advlens.sweep: interrupted; rerun the same command to resume (completed seeds "
              "are kept)", file=sys.stderr)
        return 130
    print(counts.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
