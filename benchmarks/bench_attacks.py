"""Benchmark advlens' minimal-norm attacks against foolbox 3.3.4 and adv-lib 0.2.8.

Models: laptop-zoo digits models (``advlens.zoo``), standard and L2-adversarially trained
(ε = 1.0), of several families (default: mlp-l, cnn-m, vgg-xs); "twin-cue:<arch>/<regime>" names
models of the same kinds trained on twin-cue images (3 × 32 × 32, 12× the digits' 256 inputs);
images: the first ``--n`` correctly classified test images of each model (``--n-large`` for
budgets ≥ 5000).

Part 1 — strength at equal cost, L2 then L∞. For each pass budget B (default 100, 1000), every
attack gets B forward+backward passes (ours: ``result.cost`` = passes + forward-only passes ≤ B;
the peers: ``steps = B``, not counting their own extra forwards). Peers: foolbox DDN / FMN-L2 /
FMN-L∞, adv-lib ALMA (defaults: P2 penalty, lr 0.1) / DDN (``levels=None``: no 8-bit
quantisation, like ours) / FMN-L2 / FMN-L∞; and peers whose iterations cost other than one
pass, given as many iterations as fit in B passes counted by ``PassCounter`` (see ``ITERATED``;
the count is asserted): adv-lib FAB (untargeted, 1 restart) and FAB-T1 (targeted at the most
likely other class), DeepFool (adv-lib and foolbox), trust region (default and adaptive), PDPGD,
PDGD (L2), C&W-L2 and C&W-L∞ (the latter stopped when its B passes are spent), all otherwise
with their defaults. Reported per attack: median norm of the returned adversarial (failures
count as +inf; recomputed here with an independent forward pass), success rate (also with each
image recomputed alone: ``success_alone``), wall and CPU time
(``time.process_time``; median over ``--repeats``). Attacks run interleaved (round-robin, peers
and ours alternating, order reversed every other repeat) so that load from other processes on
the shared CPU hits all of them alike, each on the model with its parameters frozen (ours freezes
them itself; foolbox's ``loss.backward()`` would otherwise compute the weights' gradients too).
Part 2 — throughput: each of our attacks as a fraction of the model's raw speed at the same batch
(raw forward+backward for the input gradient, parameters frozen, and raw forward for the
forward-only checks); each attack is timed right after its own raw runs (median ratio over
repeats), so load drift cancels. The gap to 1 is the attack's own overhead.

Run (the machine is shared: one thread):
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_attacks.py
Options: --budgets 100 1000, --models mlp-l/std cnn-m/at1.0 ..., --repeats 1, --n 100, --n-large
50, --threads 1, --tag (suffix of the CSV names), --peers (only these), --norms-dir (also save
every attack's per-image norms per cell, for ``attack_cells.py``: image by image and a bootstrap
interval of each median ratio). Prints tables and writes CSVs to benchmarks/results/. Peers come
from .peers (appended to sys.path after site-packages); adv-lib imports ``visdom`` for its optional
plots only, so a stub module stands in for it here.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from _model_clock import ModelClock
from advlens import attacks, zoo
from advlens.checks import frozen
from advlens.data import digits, twin_cue
from advlens.features import predict

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.append(str(ROOT / ".peers"))
sys.modules.setdefault("visdom", types.ModuleType("visdom"))  # adv-lib: optional plots only


# the regimes a benchmark model name spells short ("at<eps>" aside)
REGIMES = {"std": "standard", "harm": "harmonized"}


def zoo_model(name: str) -> tuple[nn.Module, float]:
    """A laptop-zoo digits model by "arch/std", "arch/harm" (harmonized) or "arch/at<eps>"
    (seed 0; "/s<seed>" appended for another seed, e.g. "vgg-xs/std/s1"), and its test accuracy
    (built and cached by advlens.zoo if missing). "twin-cue:arch/..." names the same kinds of
    model trained on twin-cue "both" images (3 × 32 × 32, :func:`twin_cue_config`)."""
    dataset, _, short = name.rpartition(":")
    if dataset not in ("", "digits", "twin-cue"):
        raise ValueError(f"no benchmark data set {dataset!r} in {name!r} (digits or twin-cue).")
    arch, regime, *rest = short.split("/")
    seed = int(rest[0].removeprefix("s")) if rest else 0
    if dataset == "twin-cue":
        entry = zoo.load(twin_cue_config(arch, regime, seed), progress=False)
        return entry.model.eval(), float(entry.meta["test_acc"])
    for config in zoo.spec("laptop"):
        if (config.dataset, config.arch, config.seed) != ("digits", arch, seed):
            continue
        if REGIMES.get(regime) == config.regime or (
                config.regime == "l2-at" and regime == f"at{config.eps}"):
            entry = zoo.load(config, progress=False)
            return entry.model.eval(), float(entry.meta["test_acc"])
    raise ValueError(f"no laptop-zoo digits model {name!r} (arch/std, arch/harm or arch/at<eps>, "
                     "optionally /s<seed>; twin-cue:arch/... for twin-cue models).")


def twin_cue_config(arch: str, regime: str, seed: int = 0) -> zoo.ModelConfig:
    """A twin-cue "both" model: the laptop zoo's own where it has one ("std", "harm"), else
    trained as its twin-cue models are (7 epochs) — "at<eps>" by L2 adversarial training as its
    digits models are (3 PGD steps of radius eps) — for benchmarks at 3,072 input dimensions."""
    for config in zoo.spec("laptop"):
        if ((config.dataset, config.variant, config.arch, config.seed, config.regime)
                == ("twin-cue", "both", arch, seed, REGIMES.get(regime))):
            return config
    if regime == "std":
        return zoo.ModelConfig(arch, dataset="twin-cue", variant="both", seed=seed, epochs=7)
    if regime.startswith("at"):
        return zoo.ModelConfig(arch, dataset="twin-cue", variant="both", seed=seed, epochs=7,
                               regime="l2-at", eps=float(regime.removeprefix("at")),
                               attack_steps=3)
    raise ValueError(f"no twin-cue benchmark model {arch}/{regime} (std, harm or at<eps>).")


def model_dataset(name: str) -> str:
    """The data set a :func:`zoo_model` name's model was trained on."""
    return name.rpartition(":")[0] or "digits"


def benchmark_images(model: nn.Module, n: int, dataset: str = "digits") -> tuple[Tensor, Tensor]:
    """The first ``n`` correctly classified test images (twin-cue: its "both" test split)."""
    test = digits("test") if dataset == "digits" else twin_cue("test", variant="both")
    x, y = test.images, test.labels
    keep = (predict(model, x).argmax(1) == y).nonzero().flatten()[:n]
    return x[keep], y[keep]


# ------------------------------------------------------------------------------------ attacks
Runner = Callable[[nn.Module, Tensor, Tensor, int], Tensor]


def ours(method: str, norm: str = "l2") -> Runner:
    entry = attacks.minimal_l2 if norm == "l2" else attacks.minimal_linf

    def run(model: nn.Module, x: Tensor, y: Tensor, budget: int) -> Tensor:
        r = entry(model, x, y, method=method, budget=budget)
        assert r.cost <= budget, (method, r.cost, budget)
        return r.adv
    return run


def foolbox_runner(name: str) -> Runner:
    def run(model: nn.Module, x: Tensor, y: Tensor, budget: int) -> Tensor:
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        attack = {"ddn": fb.attacks.DDNAttack, "fmn": fb.attacks.L2FMNAttack,
                  "fmn-linf": fb.attacks.LInfFMNAttack}[name](steps=budget)
        raw, _, _ = attack(fmodel, x, y, epsilons=None)
        return raw
    return run


def advlib_runner(name: str) -> Runner:
    def run(model: nn.Module, x: Tensor, y: Tensor, budget: int) -> Tensor:
        import adv_lib.attacks as al

        if name == "alma":
            return al.alma(model, x, y, num_steps=budget)
        if name == "ddn":
            return al.ddn(model, x, y, steps=budget, levels=None)
        return al.fmn(model, x, y, norm=2 if name == "fmn" else float("inf"), steps=budget)
    return run


class BudgetSpent(Exception):
    """Raised by ``PassCounter`` before a forward that would exceed its limit."""


class PassCounter(nn.Module):
    """The model, counting the passes of any one image: a forward call counts one pass, or one
    per backward sweep through its output (a Jacobian of k logit differences from one forward:
    k passes); a call on more images than ``batch`` counts ceil(len / batch) times. An upper bound
    for each image (attacks that drop finished images run later calls on fewer). With ``limit``,
    raises ``BudgetSpent`` before a forward that would take the count past it."""

    def __init__(self, model: nn.Module, batch: int, limit: int | None = None) -> None:
        super().__init__()
        self.model, self.batch, self.limit = model, batch, limit
        self.calls: list[list[int]] = []  # per forward call: [multiplicity, backward sweeps]

    @property
    def passes(self) -> int:
        return sum(m * max(1, sweeps) for m, sweeps in self.calls)

    def forward(self, x: Tensor) -> Tensor:
        call = [-(-len(x) // self.batch), 0]
        if self.limit is not None and self.passes + call[0] > self.limit:
            raise BudgetSpent
        out = self.model(x)
        self.calls.append(call)
        if out.requires_grad:
            def sweep(_: Tensor) -> None:
                call[1] += 1
            out.register_hook(sweep)
        return out


# Peers whose iterations cost more or less than one pass: name -> (norms, attack(model, x, y,
# norm, iterations), fixed passes a, passes per iteration b as a function of the number of
# classes K), counted with ``PassCounter`` on small runs; the runner asserts the count:
# ``iterations = (budget - a) // b``. FAB: one forward and K - 1 backward sweeps (all logit
# differences) plus one forward check per iteration, one forward first; FAB-T1: FAB targeted
# at the most likely other class (``targeted_restarts=True, restarts=1``), one forward+backward
# and one check per iteration, two forwards first; DeepFool: K - 1 sweeps per iteration
# (foolbox: K - 1 separate forward+backward passes, one forward first and one check of the
# result); trust region: K forwards+sweeps to pick the target class, then a forward check and
# a forward+backward per iteration (adaptive: one more forward); PDGD / PDPGD: one pass per
# step; C&W-L2: ``binary_search_steps`` (9) × ``max_iterations``.
Attack = Callable[[nn.Module, Tensor, Tensor, float, int], Tensor]


def _fab(targeted: bool) -> Attack:
    def run(m: nn.Module, x: Tensor, y: Tensor, p: float, it: int) -> Tensor:
        import adv_lib.attacks as al

        if targeted:
            return al.fab(m, x, y, norm=p, n_iter=it, targeted_restarts=True, restarts=1)
        return al.fab(m, x, y, norm=p, n_iter=it)
    return run


def _advlib(name: str, **kw: object) -> Attack:
    def run(m: nn.Module, x: Tensor, y: Tensor, p: float, it: int) -> Tensor:
        import adv_lib.attacks as al

        if name == "df":
            return al.df(m, x, y, norm=p, steps=it, **kw)
        if name == "tr":
            return al.tr(m, x, y, p=p, iter=it, **kw)
        if name == "pdpgd":
            return al.pdpgd(m, x, y, norm=p, num_steps=it)
        if name == "pdgd":
            return al.pdgd(m, x, y, num_steps=it)
        # below 10 iterations (90 passes) adv-lib's abort check divides by it // 10 = 0
        return al.carlini_wagner_l2(m, x, y, max_iterations=it, abort_early=it >= 10)
    return run


def _foolbox_deepfool(m: nn.Module, x: Tensor, y: Tensor, p: float, it: int) -> Tensor:
    import foolbox as fb

    cls = fb.attacks.L2DeepFoolAttack if p == 2 else fb.attacks.LinfDeepFoolAttack
    raw, _, _ = cls(steps=it)(fb.PyTorchModel(m, bounds=(0, 1)), x, y, epsilons=None)
    return raw


PerIteration = Callable[[int], int]
ITERATED: dict[str, tuple[tuple[str, ...], Attack, int | PerIteration, PerIteration]] = {
    "adv-lib FAB": (("l2", "linf"), _fab(False), 1, lambda k: k),
    "adv-lib FAB-T1": (("l2", "linf"), _fab(True), 2, lambda k: 2),
    "adv-lib DeepFool": (("l2", "linf"), _advlib("df"), 0, lambda k: k - 1),
    "foolbox DeepFool": (("l2", "linf"), _foolbox_deepfool, 2, lambda k: k - 1),
    "adv-lib TR": (("l2", "linf"), _advlib("tr"), lambda k: min(k - 1, 9) + 1, lambda k: 2),
    "adv-lib TR-adaptive": (("l2", "linf"), _advlib("tr", adaptive=True),
                            lambda k: min(k - 1, 9) + 1, lambda k: 3),
    "adv-lib PDPGD": (("l2", "linf"), _advlib("pdpgd"), 0, lambda k: 1),
    "adv-lib PDGD": (("l2",), _advlib("pdgd"), 0, lambda k: 1),
    "adv-lib C&W-L2": (("l2",), _advlib("cw-l2"), 0, lambda k: 9),
}


def iterated_runner(norm: str, attack: Attack, fixed: int | PerIteration,
                    per_iteration: PerIteration) -> Runner:
    """A peer given ``(budget - fixed) // per_iteration`` iterations; asserts its counted passes
    (``PassCounter``) stay within the budget."""
    p = 2.0 if norm == "l2" else float("inf")

    def run(model: nn.Module, x: Tensor, y: Tensor, budget: int) -> Tensor:
        with torch.no_grad():
            k = model(x[:1]).shape[1]
        a = fixed(k) if callable(fixed) else fixed
        iterations = (budget - a) // per_iteration(k)
        counter = PassCounter(model, len(x)).eval()
        # a copy: trust region sets requires_grad on its inputs and detaches them in place
        adv = attack(counter, x.clone(), y, p, iterations)
        assert 0 < counter.passes <= budget, (counter.passes, budget)
        return adv
    return run


def cw_linf(model: nn.Module, x: Tensor, y: Tensor, budget: int) -> Tensor:
    """adv-lib's C&W-L∞ with its defaults, stopped before the forward that would exceed the budget
    (its number of passes depends on the data); returns its best so far, merged as the attack
    itself merges at the end of each outer loop."""
    import adv_lib.attacks as al

    counter = PassCounter(model, len(x), limit=budget).eval()
    try:
        return al.carlini_wagner_linf(counter, x, y)
    except BudgetSpent as stop:
        tb = stop.__traceback__
        while tb is not None and tb.tb_frame.f_code is not al.carlini_wagner_linf.__code__:
            tb = tb.tb_next
        assert tb is not None
        v = tb.tb_frame.f_locals
        best, found, inner = v["o_best_adv"].clone(), v["adv_found"], v["best_adv"]
        view = found.view(-1, *[1] * (x.ndim - 1))
        best[v["to_optimize"]] = torch.where(view, inner, best[v["to_optimize"]])
        return best
    finally:
        assert counter.passes <= budget, (counter.passes, budget)


def peers_available(norm: str) -> dict[str, Runner]:
    found: dict[str, Runner] = {}
    libraries = set()
    try:
        import foolbox  # noqa: F401

        libraries.add("foolbox")
        if norm == "l2":
            found["foolbox DDN"] = foolbox_runner("ddn")
            found["foolbox FMN-L2"] = foolbox_runner("fmn")
        else:
            found["foolbox FMN-Linf"] = foolbox_runner("fmn-linf")
    except ImportError:
        print("foolbox not found in .peers; skipping it")
    try:
        import adv_lib.attacks  # noqa: F401 - imported here, not inside the first timed run

        libraries.add("adv-lib")
        if norm == "l2":
            found["adv-lib ALMA"] = advlib_runner("alma")
            found["adv-lib DDN"] = advlib_runner("ddn")
            found["adv-lib FMN-L2"] = advlib_runner("fmn")
        else:
            found["adv-lib FMN-Linf"] = advlib_runner("fmn-linf")
            found["adv-lib C&W-Linf"] = cw_linf
    except ImportError:
        print("adv-lib not found in .peers (make peers); skipping it")
    for name, (norms, attack, fixed, per_iteration) in ITERATED.items():
        if norm in norms and name.split()[0] in libraries:
            found[name] = iterated_runner(norm, attack, fixed, per_iteration)
    return found


def measured_norms(model: nn.Module, x: Tensor, y: Tensor, adv: Tensor, norm: str,
                   targets: Tensor | None = None) -> tuple[np.ndarray, float, float]:
    """Independent check: norm of each returned example, +inf where it is not adversarial (with
    ``targets``: not in its target class); the success rate; and the success rate when each
    example is recomputed alone (batch of 1: other float rounding), which points right at the
    boundary may fail."""
    def success(pred: Tensor) -> Tensor:
        return pred != y if targets is None else pred == targets

    with torch.no_grad():
        fooled = success(model(adv).argmax(1))
        alone = success(torch.cat([model(a[None]).argmax(1) for a in adv]))
    inside = (adv.min() >= 0) and (adv.max() <= 1)
    assert inside, "an attack returned pixels outside [0, 1]"
    d = (adv - x).flatten(1)
    size = d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)
    size = torch.where(fooled, size, torch.full_like(size, float("inf")))
    return size.numpy(), float(fooled.float().mean()), float(alone.float().mean())


def norms_file(folder: Path, model_name: str, norm: str, budget: int, attack: str) -> Path:
    """Where ``--norms-dir`` keeps one cell's per-image norms of one attack (read by
    ``attack_cells.py``)."""
    safe = model_name.replace("/", "_") + f"__{norm}__{budget}__" + attack.replace(" ", "_")
    return folder / f"{safe}.npy"


def save_norms(path: Path, norms: np.ndarray) -> None:
    """Write atomically: an interrupted run leaves no half-written file to be read later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.npy")
    np.save(partial, norms)
    partial.replace(path)


def strength(model_name: str, model: nn.Module, x: Tensor, y: Tensor, budgets: list[int],
             repeats: int, methods: list[str], norm: str, n_large: int,
             only_peers: list[str] | None = None,
             norms_dir: Path | None = None) -> pd.DataFrame:
    """Every contender at every budget on (x, y) (the first ``n_large`` images for budgets of
    5000 passes and more); one row per (budget, attack). ``only_peers``: peer names to keep;
    ``norms_dir``: also save each attack's per-image norms there (:func:`norms_file`)."""
    contenders: dict[str, Runner] = {}
    peers = peers_available(norm)
    if only_peers is not None:
        peers = {k: v for k, v in peers.items() if k in only_peers}
    ours_ = {f"advlens {m}": ours(m, norm) for m in methods}
    # alternate ours and peers in the round-robin order
    names_o, names_p = list(ours_), list(peers)
    for i in range(max(len(names_o), len(names_p))):
        if i < len(names_o):
            contenders[names_o[i]] = ours_[names_o[i]]
        if i < len(names_p):
            contenders[names_p[i]] = peers[names_p[i]]
    rows = []
    for budget in budgets:
        xb, yb = (x[:n_large], y[:n_large]) if budget >= 5000 else (x, y)
        times: dict[str, list[float]] = {k: [] for k in contenders}
        cpu: dict[str, list[float]] = {k: [] for k in contenders}
        norms: dict[str, np.ndarray] = {}
        rates: dict[str, float] = {}
        alone: dict[str, float] = {}
        for rep in range(repeats):
            order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
            for name in order:
                # every contender on the frozen model (as ours freezes it itself): with trainable
                # parameters foolbox's loss.backward() also computes the weights' gradients
                with frozen(model):
                    t0, c0 = time.perf_counter(), time.process_time()
                    adv = contenders[name](model, xb, yb, budget)
                    times[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
                norms[name], rates[name], alone[name] = measured_norms(model, xb, yb,
                                                                       adv.detach(), norm)
        for name in contenders:
            if norms_dir is not None:
                save_norms(norms_file(norms_dir, model_name, norm, budget, name), norms[name])
            rows.append({"model": model_name, "norm": norm, "budget": budget, "n": len(xb),
                         "attack": name, "median": float(np.median(norms[name])),
                         "mean_successful": float(norms[name][np.isfinite(norms[name])].mean()),
                         "success": rates[name], "success_alone": alone[name],
                         "wall_s": statistics.median(times[name]),
                         "cpu_s": statistics.median(cpu[name])})
        print(pd.DataFrame([r for r in rows if r["budget"] == budget]).to_string(
            index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    return pd.DataFrame(rows)


def raw_pass(model: nn.Module, x: Tensor, passes: int) -> None:
    """The cheapest forward+backward for an input gradient: parameters frozen (as the attacks
    run them), so no weight gradient is computed either way."""
    target = torch.zeros(len(x), dtype=torch.long)
    with frozen(model):
        for _ in range(passes):
            xi = x.detach().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(xi), target, reduction="sum")
            torch.autograd.grad(loss, xi)


@torch.no_grad()
def raw_forward(model: nn.Module, x: Tensor, passes: int) -> None:
    for _ in range(passes):
        model(x)


class Clock:
    """Wall time and this process's CPU time (``time.process_time``) since construction; with
    one thread the CPU time does not count what other processes on a shared machine take."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


THROUGHPUT_PEERS = ("adv-lib DDN", "adv-lib ALMA", "adv-lib FMN-L2", "adv-lib FMN-Linf",
                    "adv-lib FAB", "foolbox DDN", "foolbox FMN-L2", "foolbox FMN-Linf")


def median(values: list[float]) -> float:
    """The median; NaN for no values (a peer has no interleaved ratio)."""
    return statistics.median(values) if values else float("nan")


def throughput(model: nn.Module, x: Tensor, y: Tensor, repeats: int, steps: int = 100
               ) -> pd.DataFrame:
    """Throughput of each attack as a fraction of the model's raw speed, measured two ways.

    *Interleaved* (wall and CPU time): the time the model's own passes would take at raw speed
    (forward+backward passes × raw pass time + forward-only passes × raw forward time, both
    measured right before the attack) over the attack's time. On a shared machine the raw speed
    drifts between the timed runs (±0.05 here).

    *In-run* (CPU time): the model is wrapped in a :class:`ModelClock`, which clocks the time spent
    inside its own forward and backward passes during the attack; the fraction is that time,
    scaled by the raw loop's own total/model-time ratio (its loss, autograd set-up), over the
    attack's CPU time. Both times come from the same run, so drift cancels (±0.01 here). Also
    reported: the attack's CPU time per pass beyond what the raw loop spends (its own
    bookkeeping), in µs.

    The peers in ``THROUGHPUT_PEERS`` run at the same number of steps, in-run fraction only,
    on the model as the raw loop runs it (eval mode, parameters frozen); ours from train mode
    with trainable parameters (each attack switches itself). Median over repeats."""
    clocked = ModelClock(model)
    runs: dict[str, Callable[[], attacks.AttackResult | Tensor]] = {
        "ddn": lambda: attacks.ddn(clocked, x, y, steps=steps),
        "fmn-l2": lambda: attacks.fmn(clocked, x, y, steps=steps),
        "fmn-linf": lambda: attacks.fmn(clocked, x, y, norm="linf", steps=steps),
        "alma": lambda: attacks.alma(clocked, x, y, steps=steps),
        "fab-linf": lambda: attacks.fab(clocked, x, y, steps=steps),
        "minimal-l2 auto (3x budget)": lambda: attacks.minimal_l2(clocked, x, y,
                                                                  budget=3 * steps),
        "minimal-linf auto (3x budget)": lambda: attacks.minimal_linf(clocked, x, y,
                                                                      budget=3 * steps),
        "cw-l2": lambda: attacks.cw_l2(clocked, x, y, steps=steps // 2, binary_steps=2,
                                       abort_early=False),
        "ead": lambda: attacks.ead(clocked, x, y, steps=steps // 2, binary_steps=2,
                                   abort_early=False),
        "pgd-l2": lambda: attacks.pgd(clocked, x, y, eps=1.0, steps=steps),
        "ifgsm-search": lambda: attacks.ifgsm_search(clocked, x, y, steps=10, tries=9),
    }
    # the peers' counterparts at the same number of steps (FAB: of passes; in-run fraction
    # only: the interleaved one needs each run's pass count; the L∞ FAB)
    peers = {**peers_available("l2"), **peers_available("linf")}
    for name in THROUGHPUT_PEERS:
        if name in peers:
            runs[name] = functools.partial(peers[name], clocked, x, y, steps)
    clocks = ("wall", "cpu")
    ratios = {(k, c): [] for k in [*runs, *(f"{r} in-run" for r in runs)] for c in clocks}
    own_us: dict[str, list[float]] = {k: [] for k in runs}
    raw_rates: dict[str, list[float]] = {c: [] for c in clocks}
    for _ in range(repeats):
        for name, fn in runs.items():
            clocked.reset()
            clock = Clock()
            raw_pass(clocked, x, steps)
            raw_elapsed = clock.elapsed()
            t_pass = [t / steps for t in raw_elapsed]
            raw_overhead = raw_elapsed[1] / clocked.seconds  # total over model CPU time
            clock = Clock()
            raw_forward(model, x, steps)
            t_forward = [t / steps for t in clock.elapsed()]
            with contextlib.ExitStack() as stack:
                if name in THROUGHPUT_PEERS:  # as the raw loop runs: eval, parameters frozen
                    stack.enter_context(frozen(model))
                else:
                    model.train()  # ours must switch to eval and freeze the parameters itself
                clocked.reset()
                clock = Clock()
                r = fn()
                elapsed = clock.elapsed()
            model.eval()
            ratios[f"{name} in-run", "cpu"].append(clocked.seconds * raw_overhead / elapsed[1])
            if not isinstance(r, attacks.AttackResult):  # a peer
                continue
            for k, c in enumerate(clocks):
                # the model's own compute for this run, at the raw speed just measured
                ideal = r.passes * t_pass[k] + r.forwards * t_forward[k]
                ratios[name, c].append(ideal / elapsed[k])
                raw_rates[c].append(1 / t_pass[k])
            beyond_raw = elapsed[1] - clocked.seconds * raw_overhead
            own_us[name].append(beyond_raw / (r.passes + r.forwards) * 1e6)
    # passes_per_s of an attack: forward-only passes converted at their measured relative cost
    raw = {c: statistics.median(raw_rates[c]) for c in clocks}
    rows = [{"attack": "raw forward+backward", "passes_per_s_wall": raw["wall"],
             "passes_per_s_cpu": raw["cpu"], "fraction_of_raw_wall": 1.0,
             "fraction_of_raw_cpu": 1.0, "fraction_of_raw_cpu_in_run": 1.0}]
    for name in runs:
        row: dict[str, str | float] = {"attack": name}
        for c in clocks:
            row[f"passes_per_s_{c}"] = median(ratios[name, c]) * raw[c]
        for c in clocks:
            row[f"fraction_of_raw_{c}"] = median(ratios[name, c])
        row["fraction_of_raw_cpu_in_run"] = median(ratios[f"{name} in-run", "cpu"])
        row["extra_cpu_us_per_pass"] = median(own_us[name])
        rows.append(row)
    df = pd.DataFrame(rows)
    print(f"throughput: batch {len(x)}, {steps} passes per run, median of {repeats} repeats",
          flush=True)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"), flush=True)
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--models", nargs="+",
                        default=["mlp-l/std", "cnn-m/std", "vgg-xs/std", "mlp-l/at1.0",
                                 "cnn-m/at1.0", "vgg-xs/at1.0"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--n-large", type=int, default=50,
                        help="images for budgets >= 5000")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["auto", "ddn"],
                        help="our L2 methods of minimal_l2")
    parser.add_argument("--linf-methods", nargs="+", default=["auto"])
    parser.add_argument("--skip-linf", action="store_true")
    parser.add_argument("--skip-l2", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-strength", action="store_true")
    parser.add_argument("--tag", default="", help="suffix of the CSV file names")
    parser.add_argument("--peers", nargs="+", default=None,
                        help='only these peers, e.g. "adv-lib ALMA" "adv-lib DDN" ("none": ours '
                             'alone)')
    parser.add_argument("--norms-dir", type=Path, default=None,
                        help="also save every attack's per-image norms there, one .npy per "
                             "cell and attack (image by image and bootstrap: attack_cells.py)")
    args = parser.parse_args()
    if args.peers is not None:  # a misspelt name would silently drop that peer from the verdict
        known = {*peers_available("l2"), *peers_available("linf"), "none"}
        unknown = [p for p in args.peers if p not in known]
        if unknown:
            parser.error(f"unknown --peers {unknown}; the peers are {sorted(known)}")
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} thread(s); interleaved round-robin, {args.repeats} repeats",
          flush=True)
    frames = []
    for name in args.models:
        model, acc = zoo_model(name)
        x, y = benchmark_images(model, args.n, model_dataset(name))
        print(f"{name}: test accuracy {acc:.4f}; {len(x)} correctly classified images",
              flush=True)
        if not args.skip_strength:
            if not args.skip_l2:
                frames.append(strength(name, model, x, y, args.budgets, args.repeats,
                                       args.methods, "l2", args.n_large, args.peers,
                                       args.norms_dir))
            if not args.skip_linf:
                frames.append(strength(name, model, x, y, args.budgets, args.repeats,
                                       args.linf_methods, "linf", args.n_large, args.peers,
                                       args.norms_dir))
            pd.concat(frames).to_csv(RESULTS / f"bench_attacks_strength{args.tag}.csv",
                                     index=False)
        if not args.skip_throughput and name == args.models[0]:
            tp = throughput(model, x, y, args.repeats)
            tp.to_csv(RESULTS / f"bench_attacks_throughput{args.tag}.csv", index=False)
    print(f"wrote CSVs to {RESULTS}")


if __name__ == "__main__":
    main()
