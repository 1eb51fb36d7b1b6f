"""Markdown tables of ``bench_attacks.py`` strength CSVs, as in benchmarks/README.md.

Run: ``.venv/bin/python benchmarks/attack_tables.py benchmarks/results/<strength CSVs>``.
Each cell: median norm (success rate if below 100 %, "alone" rate if fewer stay adversarial
recomputed one image at a time) / CPU s / wall s; the last column compares ``advlens auto``
with the best peer's median ("–" where the cell lacks either). A later file's row of an attack
replaces an earlier one's (ours and the peers' alike); a cell whose rows come from different
numbers of images is refused.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

MODELS = ["mlp-l/std", "mlp-l/at1.0", "cnn-m/std", "cnn-m/at1.0", "vgg-xs/std", "vgg-xs/at1.0"]
ITERATED = ["adv-lib FAB", "adv-lib FAB-T1", "adv-lib DeepFool", "foolbox DeepFool", "adv-lib TR",
            "adv-lib TR-adaptive", "adv-lib PDPGD"]
COLUMNS = {"l2": ["advlens auto", "advlens ddn", "advlens fab", "foolbox DDN", "foolbox FMN-L2",
                  "adv-lib ALMA", "adv-lib DDN", "adv-lib FMN-L2", *ITERATED, "adv-lib PDGD",
                  "adv-lib C&W-L2"],
           "linf": ["advlens auto", "foolbox FMN-Linf", "adv-lib FMN-Linf", *ITERATED,
                    "adv-lib C&W-Linf"]}


def cell(row: pd.Series | None, digits: int) -> str:
    """One attack's result: median (notes) / CPU s / wall s, or "–" if it did not run."""
    if row is None:
        return "–"
    med = f"{row['median']:.{digits}f}" if np.isfinite(row["median"]) else "inf"
    notes = []
    if row["success"] < 1:
        notes.append(f"{100 * row['success']:.0f}%")
    if row["success_alone"] < row["success"]:
        notes.append(f"alone {100 * row['success_alone']:.0f}%")
    note = f" ({', '.join(notes)})" if notes else ""
    return f"{med}{note} / {row['cpu_s']:.1f} / {row['wall_s']:.1f}"


def verdict(ours: float | None, best: float | None) -> str:
    """Is ``advlens auto``'s median at or below the best peer's, and by how much; "–" without
    one of the two."""
    if ours is None or best is None:
        return "–"
    if ours == best == float("inf"):  # (no ratio)
        return "yes (both inf)"
    return ("yes" if ours <= best else "**no**") + f" ({100 * (ours / best - 1):+.3f}%)"


def table(df: pd.DataFrame, norm: str, digits: int) -> list[str]:
    """The markdown rows of one norm: a row per (model, budget) that was run, a column per
    attack that ran; a later row of the same (model, norm, budget, attack) replaces an earlier
    one."""
    df = df.drop_duplicates(["model", "norm", "budget", "attack"], keep="last")
    ran = set(df[df.norm == norm].attack)
    # the known columns in their order, then any other attack that ran (another of our methods,
    # e.g. --linf-methods fmn, or a peer added since): never dropped silently
    names = [a for a in COLUMNS[norm] if a in ran] + sorted(
        ran - set(COLUMNS[norm]), key=lambda a: (not a.startswith("advlens"), a))
    lines = ["| model | budget | n | " + " | ".join(names) + " | ours ≤ best peer |",
             "|" + "---|" * (len(names) + 4)]
    models = [m for m in MODELS if m in set(df.model)] + sorted(set(df.model) - set(MODELS))
    for model in models:
        for budget in sorted(df.budget.unique()):
            g = df[(df.model == model) & (df.norm == norm) & (df.budget == budget)]
            if g.empty:
                continue
            if g.n.nunique() > 1:
                sizes = ", ".join(f"{a} {n}" for a, n in zip(g.attack, g.n, strict=True))
                raise ValueError(
                    f"{model} {norm} at {budget} passes mixes runs on different numbers of images "
                    f"({sizes}): their medians are not comparable. Rerun them on the same images "
                    "or pass only CSVs of one n.")
            rows = {r["attack"]: r for _, r in g.iterrows()}
            peers = g[~g.attack.str.startswith("advlens")]["median"]
            ours = rows["advlens auto"]["median"] if "advlens auto" in rows else None
            best = peers.min() if len(peers) else None
            lines.append(f"| {model} | {budget} | {int(g.n.iloc[0])} | "
                         + " | ".join(cell(rows.get(a), digits) for a in names)
                         + f" | {verdict(ours, best)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", nargs="+")
    parser.add_argument("--models", nargs="+", default=None, help="only these models' rows")
    args = parser.parse_args()
    df = pd.concat([pd.read_csv(p) for p in args.csv])
    if args.models is not None:
        df = df[df.model.isin(args.models)]
    for norm, title, digits in (("l2", "L2", 4), ("linf", "L∞", 6)):
        print(f"{title} (median / CPU s / wall s):\n")
        print("\n".join(table(df, norm, digits)) + "\n")


if __name__ == "__main__":
    main()
