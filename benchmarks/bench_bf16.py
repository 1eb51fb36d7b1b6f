"""bf16 autocast vs fp32 on the CPU: how much it changes inversion losses, minimal adversarial
norms and CKA on laptop-zoo models (the tolerance check behind advlens.accel.BF16_DEFAULT).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bf16.py [--n 64] [--iterations 200]
Prints one markdown row per model and measure; every difference is fp32 vs CPU-bf16 on the
same inputs (no GPU: bf16 kernels on a GPU round differently, but to the same precision).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from advlens import attacks, cka, zoo
from advlens.accel import BF16_TOLERANCE, Autocast
from advlens.data import digits
from advlens.features import representation
from advlens.inversion import draw_pairs, invert

ARCHS = ("cnn-m", "resnet8-xs", "vit-xs", "mlp-m")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    test = digits("test")
    entries = [e for e in zoo.build([c for c in zoo.spec("laptop") if c.arch in ARCHS
                                     and c.regime == "standard" and c.seed == 0
                                     and c.dataset == "digits"], progress=False)]
    x, y = test.images[:args.n], test.labels[:args.n]
    s_idx, t_idx = draw_pairs(test.labels, args.n, seed=0)
    rows, reps32, reps16 = [], {}, {}
    for e in entries:
        m32, m16 = e.model, Autocast(e.model, torch.bfloat16)
        reps32[e.config.arch] = representation(m32, x).double()
        reps16[e.config.arch] = representation(m16, x).double()
        kw = {"iterations": args.iterations, "seed_labels": test.labels[s_idx],
              "target_labels": test.labels[t_idx], "progress": False}
        inv32 = invert(m32, test.images[s_idx], test.images[t_idx], **kw)
        inv16 = invert(m32, test.images[s_idx], test.images[t_idx], autocast=torch.bfloat16, **kw)
        loss_rel = abs(inv16.mean_loss - inv32.mean_loss) / inv32.mean_loss
        a32 = attacks.minimal_l2(m32, x, y, budget=100, progress=False)
        a16 = attacks.minimal_l2(m16, x, y, budget=100, progress=False)
        # images both attacks broke, skipping those misclassified already (norm 0)
        ok = (np.isfinite(a32.norms.numpy()) & np.isfinite(a16.norms.numpy())
              & (a32.norms.numpy() > 0) & (a16.norms.numpy() > 0))
        n32, n16 = float(a32.norms[ok].mean()), float(a16.norms[ok].mean())
        per_image = float((np.abs(a16.norms.numpy()[ok] - a32.norms.numpy()[ok])
                           / a32.norms.numpy()[ok]).mean())
        rows.append((e.config.arch, inv32.mean_loss, inv16.mean_loss, loss_rel, n32, n16,
                     abs(n16 - n32) / n32, per_image))
    print(f"tolerance {BF16_TOLERANCE}; n={args.n}, {args.iterations} inversion iterations\n")
    print("| model | inversion loss fp32 | bf16 | rel. diff | mean min-L2 fp32 | bf16 | "
          "rel. diff (means) | mean per-image rel. diff |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:.2%} | {r[4]:.4f} | {r[5]:.4f} | "
              f"{r[6]:.2%} | {r[7]:.2%} |")
    names = list(reps32)
    diffs = [abs(cka.linear_cka(reps32[a], reps32[b]) - cka.linear_cka(reps16[a], reps16[b]))
             for i, a in enumerate(names) for b in names[i + 1:]]
    self_cka = [cka.linear_cka(reps32[a], reps16[a]) for a in names]
    print(f"\nlinear CKA between models, fp32 vs bf16 representations: max |diff| "
          f"{max(diffs):.2e}, mean {np.mean(diffs):.2e} over {len(diffs)} pairs; CKA(fp32, "
          f"bf16) of one model with itself: min {min(self_cka):.6f}")


if __name__ == "__main__":
    main()
