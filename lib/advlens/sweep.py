"""Seed sweeps: the numbered notebooks rerun over seeds, and their findings aggregated.

A sweep runs the chosen notebooks once per seed ``s`` through :func:`advlens.runner.run_grid`
(papermill batch reruns, one folder per parameter set), with the notebooks' data/pair seed
``seed = s`` and, where a notebook declares it, the model-zoo seed ``zoo_seed = s``
(:mod:`advlens.zoo.seeds`: every model retrained from another seed). Each notebook writes a
findings table ``<NN>_findings.csv`` (:mod:`advlens.findings`) whose optional ``statistics``
column holds the finding's headline numbers as a JSON object; :func:`collect` reads every run's
tables, :func:`headline_summary` gives each number's mean and between-seed spread and
:func:`hold_counts` in how many seeds each finding holds. No prose is parsed.

CLI: ``python -m advlens.sweep --preset smoke --seeds 0 1 2 --notebooks 01 02 --out DIR``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from advlens import runner
from advlens.findings import STATISTICS, check_table, decode_statistics, verdict
from advlens.io import atomic_write_json, read_json

SEED_KNOBS = ("seed", "zoo_seed")


def available(notebooks: Sequence[str], directory: Path | None = None) -> list[str]:
    """The numbers of ``notebooks`` that exist (a sweep list may name notebooks not yet
    written, e.g. 03 and 04 while they are being built)."""
    found = {p.name[:2] for p in runner.discover(None, directory)}
    return [str(n).zfill(2) for n in notebooks if str(n).zfill(2) in found]


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
              progress: bool = False) -> SweepRun:
    """Run ``notebooks`` (those that exist) once per seed into ``out``; see the module doc.

    Parameters: ``seeds`` (distinct non-negative integers), ``preset``, ``notebooks`` (numbers),
    ``out`` (folder of the runs), ``directory`` (notebooks folder, default the repository's).
    Returns: a :class:`SweepRun`; ``out/sweep.json`` records it.
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"a sweep needs at least two distinct non-negative seeds; got {seeds}.")
    only = available(notebooks, directory)
    if not only:
        raise ValueError(f"none of the notebooks {list(notebooks)} exists.")
    declared = set().union(*(runner.notebook_parameters(p)
                             for p in runner.discover(only, directory)))
    knobs = [k for k in SEED_KNOBS if k in declared]
    if not knobs:
        raise ValueError(f"notebooks {only} declare none of the seed knobs {SEED_KNOBS}.")
    out = Path(out).resolve()
    started, rows = time.perf_counter(), []
    for s in seeds:
        ((_, results),) = runner.run_grid({k: [s] for k in knobs}, preset, only=only,
                                              out=out, progress=progress, notebooks=directory)
        rows += [{"seed": s, "notebook": r.notebook, "folder": str(r.out_dir),
                  "wall_time_s": r.wall_time_s} for r in results]
    wall = time.perf_counter() - started
    runs = pd.DataFrame(rows)
    atomic_write_json(out / "sweep.json", {"preset": preset, "notebooks": only, "seeds": seeds,
                                           "knobs": knobs, "wall_time_s": wall,
                                           "runs": rows})
    return SweepRun(out, only, seeds, wall, runs)


def collect(out: str | Path) -> pd.DataFrame:
    """Every findings table of every run under ``out``, one row per (run, finding), with the
    run's ``preset``, its seed knobs, ``notebook`` and ``verdict`` (holds / does not hold /
    not testable here)."""
    frames = []
    for stamp in sorted(Path(out).glob("*/params.json")):
        record = read_json(stamp)
        for csv in sorted(stamp.parent.glob("*/*_findings.csv")):
            table = pd.read_csv(csv, keep_default_na=False)
            check_table(table, str(csv))
            table = table.assign(run=stamp.parent.name, preset=record["preset"],
                                 notebook=csv.parent.name, **record["params"])
            frames.append(table.assign(verdict=[verdict(h) for h in table["holds"]]))
    if not frames:
        raise FileNotFoundError(f"no <run>/<notebook>/*_findings.csv under {out}; run the "
                                "sweep first.")
    found = pd.concat(frames, ignore_index=True)
    if STATISTICS not in found:
        found[STATISTICS] = ""
    return found


def headline_summary(collected: pd.DataFrame) -> pd.DataFrame:
    """Per (notebook, finding, statistic): number of runs, mean, between-seed s.d. (ddof 1),
    min and max of the statistic over the runs (NaN values are left out and counted)."""
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
        out.append({"notebook": nb, "finding": finding, "statistic": stat,
                    "n_runs": len(v), "n_nan": int(len(v) - len(ok)),
                    "mean": float(ok.mean()) if len(ok) else float("nan"),
                    "sd": float(ok.std(ddof=1)) if len(ok) > 1 else float("nan"),
                    "min": float(ok.min()) if len(ok) else float("nan"),
                    "max": float(ok.max()) if len(ok) else float("nan")})
    return pd.DataFrame(out)


def hold_counts(collected: pd.DataFrame) -> pd.DataFrame:
    """Per (notebook, finding): runs, and in how many the finding holds, does not hold, or
    could not be tested."""
    rows = []
    for (nb, finding), group in collected.groupby(["notebook", "finding"], sort=False):
        words = group["verdict"].tolist()
        rows.append({"notebook": nb, "finding": finding, "n_runs": len(words),
                     "holds": words.count("holds"),
                     "does_not_hold": words.count("does not hold"),
                     "not_testable": words.count("not testable here")})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m advlens.sweep``: run a sweep and print its hold counts."""
    parser = argparse.ArgumentParser(prog="python -m advlens.sweep",
                                     description="Rerun notebooks over seeds.")
    parser.add_argument("--preset", default="laptop", choices=runner.PRESET_NAMES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--notebooks", nargs="+", default=["01", "02", "03", "04"])
    parser.add_argument("--out", default="out/sweep")
    args = parser.parse_args(argv)
    done = run_sweep(args.seeds, preset=args.preset, notebooks=args.notebooks, out=args.out)
    print(f"sweep of {done.notebooks} over seeds {done.seeds}: {done.wall_time_s:.0f} s")
    print(hold_counts(collect(done.out)).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def markdown(counts: pd.DataFrame, headline: pd.DataFrame) -> str:
    """One bullet per finding: in how many seeds it holds, with each headline number's mean ±
    between-seed s.d. (the prose of the sweep's summary, computed from its tables)."""
    lines = []
    for rec in counts.to_dict("records"):
        numbers = headline[(headline["notebook"] == rec["notebook"])
                           & (headline["finding"] == rec["finding"])]
        shown = "; ".join(f"{r.statistic} {r.mean:.3g} ± {r.sd:.2g}"
                          for r in numbers.itertuples() if np.isfinite(r.mean))
        untested = f", not testable in {rec['not_testable']}" if rec["not_testable"] else ""
        lines.append(f"- **{rec['notebook'][:2]} {rec['finding']}** — holds in {rec['holds']} of "
                     f"{rec['n_runs']} seeds{untested}" + (f" ({shown})" if shown else "") + ".")
    return "\n".join(lines) + "\n"
