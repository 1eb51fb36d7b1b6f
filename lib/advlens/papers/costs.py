"""``python -m advlens.papers.costs``: the README's GPU-hour table of the ``paper`` preset,
notebooks 00-04 (:mod:`advlens.cost` counts and measures; notebook 04's experiments come from
:func:`advlens.papers.liang2021.experiments_from_knobs`, which a kernel may not import)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from advlens import cost
from advlens.io import atomic_write
from advlens.papers import liang2021
from advlens.presets import PRESETS
from advlens.zoo.paper import published_configs

NOTEBOOKS = ("00", "01", "02", "03", "04")


def passes() -> pd.DataFrame:
    """The passes of every notebook at the ``paper`` knobs over the published zoo."""
    knobs = {nb: PRESETS[nb]["paper"] for nb in NOTEBOOKS}
    return cost.notebook_passes(knobs, published_configs(),
                                liang2021.paper_experiments(knobs["04"]))


def main(argv: list[str] | None = None) -> int:
    """``python -m advlens.papers.costs [--flops CSV] [--save CSV]``: the paper preset's
    GPU-hours (``--flops`` reuses FLOPs measured before, ``--save`` writes them)."""
    parser = argparse.ArgumentParser(prog="python -m advlens.papers.costs")
    parser.add_argument("--flops", help="reuse FLOPs measured before (CSV from --save)")
    parser.add_argument("--save", help="write the measured FLOPs to this CSV")
    args = parser.parse_args(argv)
    counted = passes()
    configs = counted.drop_duplicates("arch")["config"]
    flops = pd.read_csv(args.flops) if args.flops else cost.measure_flops(configs)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.save, lambda tmp: flops.to_csv(tmp, index=False))
    print(cost.markdown(cost.gpu_hours(counted, flops)))
    print(cost.flops_markdown(flops))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
