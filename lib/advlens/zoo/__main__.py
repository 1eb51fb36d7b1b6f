"""Build (or load) a zoo preset from the command line and print its table.

``python -m advlens.zoo --preset laptop [--root DIR] [--robust-eval-eps 0.5] [--robust-eval-n 500]``
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

import pandas as pd

from advlens.io import atomic_write
from advlens.presets import PRESET_NAMES
from advlens.zoo import build
from advlens.zoo.evaluation import RobustEval


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advlens.zoo", description=__doc__)
    parser.add_argument("--preset", default="laptop", choices=PRESET_NAMES)
    parser.add_argument("--root", default=None, help="zoo folder (default: $ADVLENS_ZOO or "
                                                     "data/zoo)")
    default = RobustEval()  # the build's own defaults, named once
    parser.add_argument("--robust-eval-eps", type=float, default=None,
                        help=f"L2 radius of the robust-accuracy PGD (default {default.eps:g}; "
                             "0: clean accuracy only)")
    parser.add_argument("--robust-eval-n", type=int, default=None,
                        help=f"test images attacked for the robust accuracy (default "
                             f"{default.n})")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or epoch logs")
    args = parser.parse_args(argv)
    # refused now, not after a long build
    if args.csv and Path(args.csv).is_dir():
        parser.error(f"--csv {args.csv} is a folder; name the CSV file to write, e.g. "
                     f"{Path(args.csv) / 'zoo.csv'}.")
    if args.csv and not Path(args.csv).resolve().parent.is_dir():
        parser.error(f"--csv {args.csv}: its folder does not exist; create it or choose "
                     "another path.")
    if args.root and Path(args.root).expanduser().exists() \
            and not Path(args.root).expanduser().is_dir():
        parser.error(f"--root {args.root} is a file, not a folder; name the zoo folder.")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    wall = time.perf_counter()
    try:
        zoo = build(args.preset, root=args.root, progress=not args.quiet,
                    robust_eval_eps=args.robust_eval_eps, robust_eval_n=args.robust_eval_n)
    except (ValueError, TypeError, FileNotFoundError) as err:  # e.g. paper checkpoints missing
        print(f"advlens.zoo: {err}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - wall
    usage = resource.getrusage(resource.RUSAGE_SELF)
    table = zoo.table()
    with pd.option_context("display.width", 200, "display.max_rows", None,
                           "display.float_format", "{:.3f}".format):
        print(table.drop(columns=["hash"]).to_string(index=False))
    trained = int((~table["cached"]).sum())
    print(f"\n{len(table)} models ({trained} trained, {len(table) - trained} from cache): "
          f"wall {wall:.1f} s, process CPU {usage.ru_utime + usage.ru_stime:.1f} s, "
          f"sum of per-model train times {table['train_time_s'].sum():.1f} s")
    if args.csv:
        atomic_write(args.csv, lambda tmp: table.to_csv(tmp, index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
