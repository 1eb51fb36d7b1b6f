"""The Dask path against the serial one on the smoke zoo: same results, wall-time ratio with a
2-worker LocalCluster, and a worker killed mid-run that loses nothing.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_parallel.py [--scale K]
Per-model work (what a notebook does with one model): representation of 128 test images,
inversion of 32 pairs (40·K iterations), minimal-L2 attack on 32 images (budget 60·K). Models go
to the workers as ModelConfigs and are loaded there from the shared zoo cache. At K = 1 a model's
work takes well under a second, so the ratio mostly measures Dask's overhead; a larger K shows
how the two workers share real work.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import threading
import time

import torch

from advlens import attacks, zoo
from advlens.data import digits
from advlens.features import representation
from advlens.inversion import draw_pairs, invert
from advlens.parallel import local_cluster, map_models


def per_model_work(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   seeds: torch.Tensor, targets: torch.Tensor, s_lab: torch.Tensor,
                   t_lab: torch.Tensor, *, scale: int = 1) -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    inv = invert(model, seeds, targets, seed_labels=s_lab, target_labels=t_lab,
                 iterations=40 * scale, progress=False)
    adv = attacks.minimal_l2(model, x[:32], y[:32], budget=60 * scale, progress=False)
    return {"rep": representation(model, x), "inverted": inv.images, "norms": adv.norms}


def same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(
        torch.equal(a[m][k], b[m][k]) for m in a for k in a[m])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1,
                        help="multiplies the inversion iterations and the attack budget")
    scale = parser.parse_args().scale
    work = functools.partial(per_model_work, scale=scale)
    torch.set_num_threads(1)
    configs = [c for c in zoo.spec("smoke") if c.dataset == "digits" and c.regime == "standard"]
    built = zoo.build(configs, progress=False)  # cached once, shared by every worker
    test = digits("test")
    x, y = test.images[:128], test.labels[:128]
    s, t = draw_pairs(test.labels, 32, seed=0)
    args = (x, y, test.images[s], test.images[t], test.labels[s], test.labels[t])
    models = {c.name: c for c in configs}
    start = time.perf_counter()
    serial = map_models(work, {e.name: e.model for e in built}, *args, progress=False)
    serial_s = time.perf_counter() - start
    with local_cluster(2) as client:
        map_models(work, {k: models[k] for k in list(models)[:2]}, *args,
                   client=client, progress=False)  # warm the workers (imports)
        start = time.perf_counter()
        dask = map_models(work, models, *args, client=client, progress=False)
        dask_s = time.perf_counter() - start
        pids = list(client.run(os.getpid).values())

        def kill_one() -> None:
            time.sleep(max(1.0, dask_s / 4))
            os.kill(pids[0], signal.SIGKILL)

        killer = threading.Thread(target=kill_one)
        killer.start()
        start = time.perf_counter()
        killed = map_models(work, models, *args, client=client, progress=False)
        killed_s = time.perf_counter() - start
        killer.join()
        alive = list(client.run(os.getpid).values())
    print(f"{len(models)} smoke models, scale {scale}; serial {serial_s:.1f} s, "
          f"2-worker LocalCluster {dask_s:.1f} s (ratio serial/dask {serial_s / dask_s:.2f})")
    print(f"dask results identical to serial (torch.equal, every tensor): {same(serial, dask)}")
    print(f"worker {pids[0]} killed mid-run: results identical to serial: "
          f"{same(serial, killed)} ({killed_s:.1f} s; workers now {alive})")


if __name__ == "__main__":
    main()
