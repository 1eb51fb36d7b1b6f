"""Every benchmark cell from saved per-image norms: medians, image by image, and a bootstrap CI.

``bench_attacks.py --norms-dir DIR`` saves each attack's per-image norms of each (model, norm,
budget) cell. This script reads one or more such folders (a later folder's file of the same cell
and attack replaces an earlier one's) and compares ours (``--ours``, default ``advlens auto``)
with the peer of the lowest median in each cell, as ``attack_paired.py`` does for reruns: the
median ratio ours / best peer, the images ours finds lower / level (within 0.1 %) / higher, the
largest ratio of ours to the lowest peer norm of each image (images every contender fails left
out); and a paired bootstrap of the median ratio (:func:`resampled_ratios`: the images resampled
jointly for every contender, the best peer chosen again in each resample, so it carries the
choice of the best of several peers; where both medians are +inf the ratio counts as 1, level):
its 95 % percentile interval, and the share of resamples in which ours's median is above the
best peer's (``p_lost``). ``p_lost`` says how firmly the observed comparison holds when the
images are resampled (near 0 or 1: firm; near 1/2: a toss-up); it is not the probability that ours
loses on another draw of as many images (a new draw's own noise adds to this one's, so that
probability lies nearer 1/2, and the best-of-several choice biases it further), and its sum over
a budget's cells (``sum_p_lost``) is a rough count of near-lost cells, not an expected number of
medians lost. A cell whose interval lies wholly above 1 is one where a peer's median is lower
than the choice of images readily explains; wholly below 1, ours is. Approximate: where ours and
the best peer are truly level, about one cell in 40 gets an interval wholly above 1 by chance and
one in 40 wholly below (above more often when several peers are about as strong as the best: the
minimum over peers makes the bootstrap lean towards the peers); attack randomness is not
resampled.

Run: ``.venv/bin/python benchmarks/attack_cells.py DIR [DIR ...] [--ours NAME] [--norms l2 linf]
[--budgets 100 200] [--images 150:300] [--all] [--tag T]``; prints a line per lost cell
(``--all``: per cell) and a summary per norm and budget; writes
``benchmarks/results/bench_attacks_cells{T}.csv``. ``--images START:STOP`` compares only those
images of every cell (in the benchmark's order, the correctly classified test images): e.g. a run
of ``--n 300`` read as the first 150 (the protocol's images) and, held out, the next 150.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from attack_paired import paired
from bench_attacks import RESULTS


def read_cells(folders: list[Path]) -> dict[tuple[str, str, int], dict[str, np.ndarray]]:
    """{(model file stem, norm, budget): {attack: per-image norms}} from ``--norms-dir`` folders
    (a later folder's file replaces an earlier one's). Attack names come back with spaces."""
    cells: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
    for folder in folders:
        files = sorted(f for f in folder.glob("*.npy") if not f.name.endswith(".partial.npy"))
        if not files:
            raise FileNotFoundError(f"no per-image norms (*.npy) in {folder}: write them with "
                                    "bench_attacks.py --norms-dir")
        for f in files:
            parts = f.stem.split("__")
            if len(parts) != 4 or not parts[2].isdigit():
                raise ValueError(f"{f}: not a --norms-dir file (model__norm__budget__attack.npy)")
            model, norm, budget, attack = parts
            cells.setdefault((model, norm, int(budget)), {})[attack.replace("_", " ")] = np.load(f)
    return cells


def image_slice(text: str) -> slice:
    """``"START:STOP"`` (either may be empty) as a slice of each cell's images."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts if p.strip()):
        raise ValueError(f"--images must be START:STOP with non-negative integers (e.g. 150:300); "
                         f"got {text!r}.")
    start, stop = (int(p) if p.strip() else None for p in parts)
    if start is not None and stop is not None and stop <= start:
        raise ValueError(f"--images {text!r} selects no image: STOP must exceed START.")
    return slice(start, stop)


def select_images(cells: dict[tuple[str, str, int], dict[str, np.ndarray]],
                  images: slice) -> dict[tuple[str, str, int], dict[str, np.ndarray]]:
    """The same cells with only ``images`` of each attack's per-image norms (a model with fewer
    correctly classified test images than the slice's STOP keeps fewer: ``compare``'s ``n``
    says how many; a cell left with none is dropped)."""
    out = {}
    for key, runs in cells.items():
        kept = {attack: norms[images] for attack, norms in runs.items()}
        if all(len(v) for v in kept.values()):
            out[key] = kept
    return out


def resampled_ratios(ours: np.ndarray, peers: np.ndarray, *, resamples: int = 2000,
                     seed: int = 0) -> np.ndarray:
    """Paired bootstrap of median(ours) / min over peers of median(peer).

    Parameters
    ----------
    ours: (n,) per-image norms (+inf where nothing was found).
    peers: (k, n) the peers' norms of the same images.
    resamples, seed: bootstrap resamples (the images drawn with replacement, the same draw for
        every contender) and the generator's seed.

    Returns
    -------
    The ratio of each resample (``resamples`` of them): 1 (level) where both medians are +inf,
    0 where only the best peer's is, +inf where only ours's is.
    """
    n = ours.shape[0]
    if peers.ndim != 2 or peers.shape[1] != n:
        raise ValueError(f"peers must be (k, {n}) for {n} images; got {peers.shape}.")
    if np.isnan(ours).any() or np.isnan(peers).any():
        raise ValueError("NaN norms: a norm is finite, or +inf where the attack failed.")
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    return median_ratio(np.median(ours[rows], axis=1),
                        np.median(peers[:, rows], axis=2).min(axis=0))


def median_ratio(ours_median: np.ndarray, peer_median: np.ndarray) -> np.ndarray:
    """ours / peer medians, 1 (level) where both are +inf (both failed on most images)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.divide(ours_median, peer_median)
    return np.where(np.isinf(ours_median) & np.isinf(peer_median), 1.0, ratio)


def median_ratio_interval(ours: np.ndarray, peers: np.ndarray, *, resamples: int = 2000,
                          level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval (coverage ``level``) of :func:`resampled_ratios`."""
    return percentile_interval(resampled_ratios(ours, peers, resamples=resamples, seed=seed),
                               level)


def percentile_interval(ratios: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of resampled ratios; (NaN, NaN) for none."""
    if not ratios.size:
        return float("nan"), float("nan")
    # rounded: (1 - 0.95) / 2 is 0.025000000000000022 in floats, and 2000 x that is above 50,
    # so inverted_cdf took the 51st smallest of 2,000 for the lower end (94.95 % coverage)
    tail = round((1 - level) / 2, 12)
    low, high = np.quantile(ratios, [tail, 1 - tail], method="inverted_cdf")  # (inf kept)
    return float(low), float(high)


def compare(cells: dict[tuple[str, str, int], dict[str, np.ndarray]], ours: str,
            resamples: int = 2000) -> pd.DataFrame:
    """One row per cell that has ours and at least one peer (peers: every attack not named
    ``advlens ...``, and not ``ours``)."""
    rows = []
    for (model, norm, budget), runs in sorted(cells.items()):
        peers = {k: v for k, v in runs.items() if not k.startswith("advlens") and k != ours}
        if ours not in runs or not peers:
            continue
        mine = runs[ours]
        counts = {k: len(v) for k, v in runs.items()}
        if len(set(counts.values())) > 1:  # e.g. folders of runs with different --n
            raise ValueError(f"cell {model} {norm} {budget}: image counts differ {counts}")
        medians = {k: float(np.median(v)) for k, v in peers.items()}
        best = min(medians, key=medians.__getitem__)
        stacked = np.stack(list(peers.values()))
        ratios = resampled_ratios(mine, stacked, resamples=resamples)
        low, high = percentile_interval(ratios)
        per_image_best = stacked.min(axis=0)
        found = np.isfinite(mine) | np.isfinite(per_image_best)  # inf / inf: nothing to compare
        with np.errstate(divide="ignore"):
            ratios_found = mine[found] / per_image_best[found]
        worst = float(ratios_found.max()) if found.any() else float("nan")
        median_ours = float(np.median(mine))
        ratio = float(median_ratio(np.float64(median_ours), np.float64(medians[best])))
        rows.append({"model": model.replace("_", "/"), "norm": norm, "budget": budget,
                     "n": len(mine), "peer": best, "median_ours": median_ours,
                     "median_peer": medians[best], "ratio": ratio, "ci_low": low,
                     "ci_high": high, "p_lost": float((ratios > 1).mean()),
                     "worst_image_vs_best_of_peers": worst,
                     **paired(mine, peers[best])})
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per norm and budget: cells, medians lost, cells whose interval lies wholly above /
    below 1, the sum of ``p_lost``, geometric mean of the median ratios, images lower / higher."""
    rows = [{"norm": norm, "budget": budget, "cells": len(g), "lost": int((g.ratio > 1).sum()),
             "peer_lower_beyond_ci": int((g.ci_low > 1).sum()),
             "ours_lower_beyond_ci": int((g.ci_high < 1).sum()),
             "sum_p_lost": float(g.p_lost.sum()),
             "geo_mean_ratio": float(np.exp(np.log(g.ratio).mean())),
             "images_lower": int(g.lower.sum()), "images_higher": int(g.higher.sum())}
            for (norm, budget), g in df.groupby(["norm", "budget"])]
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--ours", default="advlens auto")
    parser.add_argument("--norms", nargs="+", choices=["l2", "linf"], default=["l2", "linf"])
    parser.add_argument("--budgets", nargs="+", type=int, default=None)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--images", type=image_slice, default=slice(None),
                        help="START:STOP: only these images of every cell (default: all)")
    parser.add_argument("--all", action="store_true", help="print every cell, not only lost ones")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    cells = {(model, norm, budget): runs
             for (model, norm, budget), runs in read_cells(args.folders).items()
             if norm in args.norms and (args.budgets is None or budget in args.budgets)}
    # the bootstrap only for the cells asked for
    df = compare(select_images(cells, args.images), args.ours, args.resamples)
    if df.empty:
        parser.error(f"no cell of the norms and budgets asked for holds both {args.ours!r} and "
                     "a peer")
    stop = args.images.stop
    short = df[df.n < (stop - (args.images.start or 0))] if stop is not None else df.iloc[:0]
    for r in short.itertuples():
        print(f"note: {r.norm} {r.budget} {r.model}: {r.n} images in "
              f"{args.images.start or 0}:{stop} (the model has fewer correctly classified test "
              "images)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / f"bench_attacks_cells{args.tag}.csv", index=False)
    shown = df if args.all else df[df.ratio > 1]
    for r in shown.itertuples():
        print(f"{r.norm} {r.budget} {r.model}: {r.median_ours:.5g} vs {r.peer} "
              f"{r.median_peer:.5g} ({100 * (r.ratio - 1):+.3f} %, 95 % CI "
              f"{r.ci_low:.4f}–{r.ci_high:.4f}); images lower / level / higher "
              f"{r.lower} / {r.level} / {r.higher}")
    print(summary(df).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
