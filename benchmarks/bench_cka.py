"""Benchmark advlens.cka against torch-cka (AntixK/PyTorch-Model-Compare, package ``torch_cka``).

Part 1 — an M×M heatmap of penultimate-layer linear CKA for M models on the digits test set,
from models + images:
  ours   = M representation extractions (advlens.features.representation) + cka_matrix
           (full-data biased linear CKA, float64), and the same with MinibatchCKA (unbiased HSIC
           summed over the DataLoader's batches: torch_cka's estimator);
  theirs = one ``torch_cka.CKA(...).compare(loader)`` per unordered pair of distinct models
           (M(M−1)/2 calls; the diagonal is 1 and the matrix symmetric, so 36 calls for M = 9 is
           the cheapest full heatmap their API allows; M² = 81 calls would be 2.25× slower).
  torch_cka sums per-batch *unbiased* HSIC (Nguyen et al. 2021) on uncentred float32 Grams, so
  its numbers are compared with our MinibatchCKA over the same batches (same estimator); the
  full-data biased/debiased values are shown for context (a different estimator, not an error).
Part 2 — linear CKA at n = 10,000 (float32 activations): ours vs an independent float64 numpy
  reference, and the error of the float32 Gram-form computation most peer code does.

Run (the machine is shared: one thread):
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cka.py
Prints tables and writes CSVs to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advlens.cka import MinibatchCKA, cka_matrix, linear_cka
from advlens.features import representation

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.append(str(ROOT / ".peers"))  # after site-packages: peers never shadow our packages

ZOO_ARCHS = ["mlp-s", "mlp-l", "cnn-s", "cnn-m", "vgg-xs", "resnet8-xs", "resnet8", "vit-xs",
             "convmixer-xs"]


# ----------------------------------------------------------------------------------- inputs
def digits_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from advlens.data import digits

        data = digits(split)
        return data.images, data.labels
    except ImportError:  # before advlens.data existed: sklearn digits upsampled to 16×16
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.from_numpy(bunch.images.astype(np.float32) / 16).unsqueeze(1)
        x = nn.functional.interpolate(x, size=(16, 16), mode="bilinear").clamp(0, 1)
        y = torch.from_numpy(bunch.target).long()
        half = len(x) * 4 // 5
        return (x[:half], y[:half]) if split == "train" else (x[half:], y[half:])


def quick_train(models: dict[str, nn.Module], epochs: int) -> None:
    """A few epochs of Adam on the digits training split. Weights do not change the timing, but
    untrained conv nets give near-constant features (mean ≫ spread) on which torch_cka's float32
    unbiased HSIC of uncentred Grams turns negative and NaN; trained ones are the real use."""
    x, y = digits_split("train")
    g = torch.Generator().manual_seed(0)
    for model in models.values():
        if hasattr(model, "normalize") and hasattr(model.normalize, "set_stats"):
            model.normalize.set_stats(x)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        model.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=g).split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
        model.eval()


class _SmallNet(nn.Module):
    """Fallback model: ``features`` (ends in Flatten: the penultimate layer) then ``head``."""

    def __init__(self, width: int, conv: bool) -> None:
        super().__init__()
        if conv:
            self.features = nn.Sequential(
                nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                nn.Flatten())
            dim = 2 * width
        else:
            self.features = nn.Sequential(nn.Flatten(), nn.Linear(256, width), nn.ReLU(),
                                          nn.Linear(width, width), nn.ReLU())
            dim = width
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_models(zoo_preset: str | None) -> tuple[dict[str, nn.Module], str, str]:
    """Models, the module name whose *output* is the penultimate representation, and a label."""
    if zoo_preset:
        from advlens import zoo

        entries = zoo.build(zoo_preset).entries[:9]
        return {e.name: e.model for e in entries}, "body", f"zoo.build({zoo_preset!r})"
    try:
        from advlens.zoo.architectures import build_model

        models = {a: build_model(a, "digits", seed=i) for i, a in enumerate(ZOO_ARCHS)}
        return models, "body", "untrained zoo architectures (weights do not change timing)"
    except ImportError:
        models = {f"{'cnn' if c else 'mlp'}-{w}": _SmallNet(w, c) for c in (True, False)
                  for w in (8, 16, 32, 64, 128)}
        return dict(list(models.items())[:9]), "features", "untrained small CNNs/MLPs"


def check_layer(model: nn.Module, layer: str, x: torch.Tensor) -> None:
    """torch_cka hooks a module's output; make sure it is what advlens.features returns."""
    out: list[torch.Tensor] = []
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda _m, _i, o: out.append(o.detach().flatten(1).clone()))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    torch.testing.assert_close(out[0], representation(model, x))


# ------------------------------------------------------------------------------------ part 1
def ours_full(models: dict[str, nn.Module], x: torch.Tensor, batch: int) -> pd.DataFrame:
    reps = {name: representation(m, x, batch_size=batch) for name, m in models.items()}
    return cka_matrix(reps)


def ours_minibatch(models: dict[str, nn.Module], x: torch.Tensor, batch: int) -> pd.DataFrame:
    reps = {name: representation(m, x, batch_size=batch) for name, m in models.items()}
    mb = MinibatchCKA()
    for start in range(0, x.shape[0], batch):
        mb.update({name: r[start:start + batch] for name, r in reps.items()})
    return mb.compute()


def theirs(models: dict[str, nn.Module], layer: str, x: torch.Tensor, batch: int,
           all_ordered: bool, repeats: int = 1) -> tuple[pd.DataFrame, tuple[float, float], int]:
    """torch_cka's heatmap, timed best of ``repeats`` by CPU time, as ours are."""
    from torch_cka import CKA

    names = list(models)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=batch, shuffle=False)
    m = len(names)
    pairs = ([(i, j) for i in range(m) for j in range(m)] if all_ordered
             else [(i, j) for i in range(m) for j in range(i + 1, m)])
    # torch_cka never removes its hooks: give every call fresh copies (made outside the timer),
    # a set per repeat
    sets = [{p: (copy.deepcopy(models[names[p[0]]]), copy.deepcopy(models[names[p[1]]]))
             for p in pairs} for _ in range(repeats)]
    table = np.eye(len(names))

    def run() -> None:
        copies = sets.pop()
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            for (i, j), (m1, m2) in copies.items():
                cka = CKA(m1, m2, model1_name=names[i], model2_name=names[j],
                          model1_layers=[layer], model2_layers=[layer], device="cpu")
                try:
                    cka.compare(loader)
                except AssertionError:  # "HSIC computation resulted in NANs": keep the NaN
                    pass
                table[i, j] = float(cka.hsic_matrix[0, 0])
                if not all_ordered:
                    table[j, i] = table[i, j]

    _, wall, cpu = timed(run, repeats=repeats)
    return pd.DataFrame(table, index=names, columns=names), (wall, cpu), len(pairs)


def peer_math(reps: dict[str, torch.Tensor], batch: int, dtype: torch.dtype) -> pd.DataFrame:
    """torch_cka's ``compare`` loop without the forward passes: per unordered pair and batch,
    Grams with zeroed diagonal and its own ``CKA._HSIC`` three times. Fed float64, it separates
    its float32 rounding from any difference in the estimator; fed float32, it times its math."""
    import types

    from torch_cka import CKA

    peer = types.SimpleNamespace(device="cpu")
    names = list(reps)
    table = np.eye(len(names))
    n = len(next(iter(reps.values())))
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # its torch.ones(N, 1) follows the default dtype
    try:
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                h = np.zeros(3)
                for start in range(0, n, batch):
                    x = reps[names[i]][start:start + batch].to(dtype)
                    y = reps[names[j]][start:start + batch].to(dtype)
                    k, l = (x @ x.T).fill_diagonal_(0), (y @ y.T).fill_diagonal_(0)
                    h += [CKA._HSIC(peer, k, k), CKA._HSIC(peer, k, l), CKA._HSIC(peer, l, l)]
                table[i, j] = table[j, i] = h[1] / np.sqrt(h[0] * h[2])
    finally:
        torch.set_default_dtype(default)
    return pd.DataFrame(table, index=names, columns=names)


def ours_math(reps: dict[str, torch.Tensor], batch: int) -> pd.DataFrame:
    mb = MinibatchCKA()
    for start in range(0, len(next(iter(reps.values()))), batch):
        mb.update({name: r[start:start + batch] for name, r in reps.items()})
    return mb.compute()


def timed(fn, *args, repeats: int = 1):
    """(result, wall seconds, process CPU seconds), best of ``repeats`` by CPU time. CPU time is
    the robust measure on a shared machine (one thread: it counts only our own work)."""
    out, best = None, (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(*args)
        took = (time.perf_counter() - wall, time.process_time() - cpu)
        best = min(best, took, key=lambda t: t[1])
    return out, *best


def off_diagonal(a: pd.DataFrame) -> np.ndarray:
    v = a.to_numpy()
    return v[~np.eye(len(v), dtype=bool)]


def max_diff(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Max |a − b| over off-diagonal entries where both are finite."""
    diff = np.abs(off_diagonal(a) - off_diagonal(b))
    return float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")


def part1(args: argparse.Namespace) -> pd.DataFrame:
    x, _ = digits_split(args.split)
    models, layer, label = build_models(args.zoo)
    if args.train_epochs and not args.zoo:
        quick_train(models, args.train_epochs)
        label += f", trained {args.train_epochs} epochs"
    for m in models.values():
        check_layer(m, layer, x[:16])
    last = x.shape[0] % args.batch_size
    if 0 < last < 4:
        raise SystemExit(f"final batch of {last} images: torch_cka returns NaN; pick another size")
    full, *t_full = timed(ours_full, models, x, args.batch_size, repeats=args.repeats)
    mini, *t_mini = timed(ours_minibatch, models, x, args.batch_size, repeats=args.repeats)
    peer, t_peer, calls = theirs(models, layer, x, args.batch_size, args.peer_calls == "all",
                                 repeats=args.repeats)
    reps = {n: representation(m, x) for n, m in models.items()}
    debiased = cka_matrix(reps, debiased=True)
    peer64 = peer_math(reps, args.batch_size, torch.float64)
    _, *t_peer_math = timed(peer_math, reps, args.batch_size, torch.float32,
                            repeats=args.repeats)
    _, *t_full_math = timed(cka_matrix, reps, repeats=args.repeats)
    _, *t_mini_math = timed(ours_math, reps, args.batch_size, repeats=args.repeats)
    kind = "ordered pairs incl. diagonal" if args.peer_calls == "all" else "unordered pairs"
    print(f"\nPart 1: {len(models)} models ({label}), digits {args.split} n={x.shape[0]}, "
          f"batch {args.batch_size}, torch_cka calls: {calls} ({kind})")
    print("\ntorch_cka heatmap:\n" + peer.round(4).to_string())
    print("\nours (MinibatchCKA, same batches):\n" + mini.round(4).to_string())
    n_nan = int(np.isnan(peer.to_numpy()).sum()) // (1 if args.peer_calls == "all" else 2)
    print(f"torch_cka NaN pairs: {n_nan} of {calls}")
    rows = [
        ("ours: extract + cka_matrix (full-data biased, float64)", t_full, max_diff(full, peer)),
        ("ours: extract + MinibatchCKA (same batches as torch_cka)", t_mini, max_diff(mini, peer)),
        (f"torch_cka: {calls} CKA(...).compare(loader) calls ({n_nan} NaN)", t_peer, 0.0),
    ]
    table = pd.DataFrame([(m, *t, diff) for m, t, diff in rows],
                         columns=["method", "wall_s", "cpu_s", "max_abs_diff_vs_torch_cka"])
    table["speedup_cpu"] = t_peer[1] / table["cpu_s"]
    table["speedup_wall"] = t_peer[0] / table["wall_s"]
    math = pd.DataFrame([("ours: cka_matrix on extracted reps", *t_full_math),
                         ("ours: MinibatchCKA on extracted reps", *t_mini_math),
                         ("torch_cka's per-pair HSIC math on extracted reps, float32",
                          *t_peer_math)],
                        columns=["method", "wall_s", "cpu_s"])
    math["speedup_cpu"] = t_peer_math[1] / math["cpu_s"]
    math["speedup_wall"] = t_peer_math[0] / math["wall_s"]
    print("\nCKA math only (representations already extracted; M(M-1)/2 pairs):")
    print(math.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"(context: full-data debiased vs torch_cka minibatch, max |diff| = "
          f"{max_diff(debiased, peer):.3g}; biased full-data "
          f"mean off-diagonal {off_diagonal(full).mean():.3f} vs minibatch "
          f"{off_diagonal(mini).mean():.3f})")
    print(f"torch_cka's formula fed float64 reps vs our MinibatchCKA: max |diff| = "
          f"{max_diff(peer64, mini):.3g} (so any larger gap to torch_cka is its float32 rounding)")
    table.insert(0, "part", f"heatmap-{args.split}-{calls}calls")
    math.insert(0, "part", f"cka-math-{args.split}")
    return pd.concat([table, math], ignore_index=True)


# ------------------------------------------------------------------------------------ part 2
def reference_f64(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
    """Independent float64 numpy reference (feature space; unbiased HSIC of Song et al. 2012
    expanded for linear kernels). Features are centred first: both estimators are invariant to
    a shift of the features, and on uncentred data (mean ≫ spread) the expansion's terms cancel
    to ~1e-12, which the table would report as our error."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    n = x.shape[0]
    if not debiased:
        return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        da, db = (a * a).sum(1), (b * b).sum(1)
        trace = np.linalg.norm(a.T @ b) ** 2 - da @ db
        sa, sb = np.sum(a.sum(0) ** 2) - da.sum(), np.sum(b.sum(0) ** 2) - db.sum()
        ra, rb = a @ a.sum(0) - da, b @ b.sum(0) - db
        return (trace + sa * sb / ((n - 1) * (n - 2)) - 2 / (n - 2) * ra @ rb) / (n * (n - 3))

    return hsic(x, y) / np.sqrt(hsic(x, x) * hsic(y, y))


def gram_fp32(x: torch.Tensor, y: torch.Tensor, debiased: bool) -> float:
    """Float32 Gram-form CKA as peer code does it, evaluated in O(n²): biased on mean-centred
    Grams; debiased with torch_cka's unbiased-HSIC terms on uncentred Grams."""
    n = x.shape[0]

    def gram(z: torch.Tensor) -> torch.Tensor:
        k = z @ z.T
        if debiased:
            return k.fill_diagonal_(0)
        k -= k.mean(0, keepdim=True)
        return k - k.mean(1, keepdim=True)

    def hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        if not debiased:
            return (k * l).sum()
        return ((k * l).sum() + k.sum() * l.sum() / ((n - 1) * (n - 2))
                - 2 / (n - 2) * (k.sum(1) @ l.sum(1))) / (n * (n - 3))

    k, l = gram(x), gram(y)
    return float(hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l)))


def torch_cka_hsic_fp32(x: torch.Tensor, y: torch.Tensor) -> float:
    """torch_cka's own ``CKA._HSIC`` on one batch of n rows (float32, O(n³): trace(K @ L))."""
    import types

    from torch_cka import CKA

    peer = types.SimpleNamespace(device="cpu")
    k, l = x @ x.T, y @ y.T
    k.fill_diagonal_(0)
    l.fill_diagonal_(0)
    return CKA._HSIC(peer, k, l) / np.sqrt(CKA._HSIC(peer, k, k) * CKA._HSIC(peer, l, l))


def part2(args: argparse.Namespace) -> pd.DataFrame:
    n, d = args.n_large, 64
    tables = []
    # offset 0: ReLU features (mean ≈ spread); offset 10: mean ≫ spread, as global-average-pooled
    # conv features often are (measured here on zoo CNNs: mean/std ≈ 10)
    for offset in (0.0, 10.0):
        g = torch.Generator().manual_seed(0)
        z = torch.randn(n, d, generator=g)
        x = torch.relu(z @ torch.randn(d, d, generator=g) + 0.5) + offset
        y = torch.relu(z @ torch.randn(d, d, generator=g) + torch.randn(n, d, generator=g)
                       + 0.5) + offset
        xn, yn = x.numpy(), y.numpy()
        rows = []
        for debiased in (False, True):
            kind = "debiased" if debiased else "biased"
            ref, *t_ref = timed(reference_f64, xn, yn, debiased, repeats=args.repeats)
            ours, *t_ours = timed(linear_cka, x, y, debiased, repeats=args.repeats)
            fp32, *t_fp32 = timed(gram_fp32, x, y, debiased, repeats=args.repeats)
            rows += [(f"float64 numpy reference ({kind})", *t_ref, ref, 0.0),
                     (f"ours linear_cka ({kind}, fp32 in)", *t_ours, ours, abs(ours - ref)),
                     (f"float32 Gram form, O(n²) ({kind})", *t_fp32, fp32, abs(fp32 - ref))]
            if debiased and args.faithful:
                peer, *t_peer = timed(torch_cka_hsic_fp32, x, y)
                rows.append(("torch_cka CKA._HSIC, float32 (debiased)", *t_peer, peer,
                             abs(peer - ref)))
        table = pd.DataFrame(rows, columns=["method", "wall_s", "cpu_s", "cka",
                                            "abs_err_vs_float64_ref"])
        print(f"\nPart 2: one pair, n = {n}, d = {d}, float32 ReLU activations + {offset:g}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        table.insert(0, "part", f"n{n}-offset{offset:g}")
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="test", help="digits split (test: 397 images)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3,
                        help="best of N for every timing, ours and the peers' alike "
                             "(--faithful's O(n³) run: once)")
    parser.add_argument("--zoo", default=None, help="use advlens.zoo.build(PRESET) models")
    parser.add_argument("--n-large", type=int, default=10_000)
    parser.add_argument("--peer-calls", choices=["pairs", "all"], default="pairs",
                        help="torch_cka calls: unordered pairs M(M-1)/2, or all M² ordered")
    parser.add_argument("--parts", default="heatmap,large", help="which parts to run")
    parser.add_argument("--faithful", action="store_true",
                        help="also run torch_cka's own O(n³) _HSIC at n-large (minutes)")
    parser.add_argument("--out", default="bench_cka.csv", help="CSV name in benchmarks/results")
    parser.add_argument("--train-epochs", type=int, default=3,
                        help="quick training of the stand-in models (0: untrained)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    parts = args.parts.split(",")
    table = pd.concat(([part1(args)] if "heatmap" in parts else [])
                      + ([part2(args)] if "large" in parts else []), ignore_index=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / args.out
    table.to_csv(path, index=False)
    print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
