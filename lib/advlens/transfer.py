"""Transferability of adversarial examples between models.

:func:`transfer_matrix` — Su et al.: every ordered pair (source, target) of a set of models;
the source's adversarial examples are evaluated on the target, skipping images the target
misclassifies clean. Untargeted success = the target's prediction changes; targeted success =
the target class is the target model's top-1 (and top-5) prediction.

Liang et al. (ICML 2021), adversarial transferability from a source S to a target (reference)
T, with δ_f(x) an adversarial perturbation made on model f and Δ_{S→f}(x) = f(x+δ_S(x)) − f(x)
the change of f's logits under S's perturbation:

- :func:`alpha1` — α₁ = E_x[ ‖Δ_{S→T}(x)‖₂ / ‖Δ_{T→T}(x)‖₂ ]: how far S's perturbation moves
  T's logits, relative to T's own (white-box) perturbation.
- :func:`alpha2` — α₂ = ‖E_x[ Δ̂_{S→S}(x) Δ̂_{S→T}(x)ᵀ ]‖_F (hat = unit vector): whether the
  directions in which S's perturbation moves S and T are consistent across images.
- :func:`alpha_combined` — ‖E_x[ α₁(x) · Δ̂_{S→S}(x) Δ̂_{S→T}(x)ᵀ ]‖_F, the product form their
  theory bounds.
- :class:`Perturbations` and :func:`alpha_table` — many (source, target) pairs on one image
  set, each model attacked once; the attack is made against the model's own prediction
  (:func:`liang_pgd`: L∞ PGD, random start, 50 steps of 0.1·eps, eps 0.1; :func:`liang_fgsm`).

Direction: the source is attacked and the reference read (S → T), as the protocol defines α₁
and α₂. Their image-experiment script for "adversarial → knowledge" (``adv2know.py``) attacks
the reference and reads the source instead (T → S; ``know2adv.py`` is S → T); for that
direction pass the pairs as (reference, source) to :func:`alpha_table`, on images chosen
beforehand as those the reference classifies correctly (as ``adv2know.py`` does: ``y`` would
keep those of each pair's second model, there the source). The two directions can rank sources
differently; :data:`ALPHA_DIRECTIONS` names them for the papers' settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens import attacks
from advlens.attacks.core import tqdm_disabled
from advlens.attacks.pgd import check_loss
from advlens.attacks.result import AttackResult
from advlens.attacks.targets import TARGET_MODES
from advlens.checks import (
    as_tensor,
    check_bool,
    check_images,
    check_labels,
    check_positive,
    check_positive_int,
    positive_number,
)
from advlens.features import predict
from advlens.resample import images_to_side, model_sides

# attack(model, x, y, targets=None) -> AttackResult
TransferAttack = Callable[..., AttackResult]

# whose perturbation is read on whom, in a source-vs-reference study: the source attacked and
# the reference read (S → T: the protocol; their know2adv.py), or the reverse (T → S: their
# adv2know.py, behind the α₁ published for experiment B)
ALPHA_DIRECTIONS: tuple[str, ...] = ("source-to-reference", "reference-to-source")


def ifgsm(eps: float = 0.1, steps: int = 50, loss: str = "ce") -> TransferAttack:
    """Su et al.'s I-FGSM at a fixed L∞ budget: ``steps`` steps of eps/steps, no random start,
    each up ``loss``: the cross-entropy (``"ce"``) or the raw logit (``"logit"``, −z_y or +z_t:
    Su et al.'s code, run with ``--use_zvalue``, as the suite's eps searches); see
    :func:`advlens.attacks.pgd`."""
    steps = check_positive_int(steps, "steps")  # (0 failed here as "float division by zero")
    check_positive("eps", eps, allow_zero=True)  # ("0.1" failed here naming neither)
    loss = check_loss(loss)  # here, not at the first source's attack
    return partial(attacks.pgd, eps=eps, norm="linf", steps=steps, step_size=eps / steps,
                   loss=loss)


def transfer_matrix(models: Mapping[str, nn.Module], x: Tensor, y: Tensor, *,
                    attack: TransferAttack | None = None, targeted: bool | str = False,
                    generator: torch.Generator | None = None, only_successful: bool = False,
                    batch_size: int = 256, progress: bool | None = None,
                    sides: Mapping[str, int | None] | None = None) -> pd.DataFrame:
    """Success of each source's adversarial examples on each target, for every ordered pair.

    ``attack(model, x, y, targets=...)`` crafts the examples on the source (default:
    :func:`ifgsm` with eps 0.1). ``targeted``: False (untargeted) or a target mode of
    :func:`advlens.attacks.choose_targets` ("least-likely"/"top-2" ranked by the source;
    "random" drawn once with ``generator`` and shared by all sources). Each source attacks only
    the images it classifies correctly (Su et al.'s protocol: an image it already gets wrong
    would count as fooled without any attack). Evaluated for a pair: those of them the target
    classifies correctly clean: every example, fooled the source or not, as Su et al.'s
    transfer code evaluates every saved example and PROTOCOLS §2 states the rule (the default;
    ``only_successful=True`` also drops the examples that did not fool the source: a
    transfer rate among the source's successes, up to twice the default's on weak attacks). The
    diagonal (source = target) is the white-box rate: every image the source attacked, with no
    ``only_successful`` filter (with it, the diagonal would read 1 by construction).

    ``sides`` (model name -> input side or None): a model with a side sees the images, and
    another source's examples, resampled to it (:mod:`advlens.resample`; Su et al.'s transfer
    code centre-crops or zero-pads an example of another size instead).

    Returns a long DataFrame: source, target, n (images evaluated), success (rate; untargeted:
    the target's prediction changed; targeted: top-1 = target class) and, if targeted, top5.
    """
    if len(models) < 1:
        raise ValueError("transfer_matrix needs at least one model.")
    if targeted not in (False, True, *TARGET_MODES):
        raise ValueError(f"targeted must be False or one of {TARGET_MODES}; got {targeted!r}.")
    mode = "random" if targeted is True else targeted
    only_successful = check_bool(only_successful, "only_successful")
    x = check_images(as_tensor(x, "x"), "x")
    y = check_labels(y, x.shape[0], "y").cpu()  # compared with predict's CPU logits
    attack = ifgsm() if attack is None else attack
    sides = model_sides(sides, models)
    clean = {name: predict(m, images_to_side(x, sides.get(name)),
                           batch_size=batch_size).argmax(1) for name, m in models.items()}
    shared_targets = None
    if mode == "random":
        first = next(iter(models))
        shared_targets = attacks.choose_targets(
            models[first], images_to_side(x, sides.get(first)), y, "random", generator)
    rows = []
    names = list(models)
    for source in tqdm(names, desc="transfer sources", disable=tqdm_disabled(progress),
                       leave=False):
        rows_of = (clean[source] == y).nonzero().flatten()
        xs, ys = images_to_side(x, sides.get(source))[rows_of], y[rows_of]
        if len(rows_of) == 0:  # the source gets every image wrong: nothing to attack or target
            rows += [{"source": source, "target": target, "n": 0,
                      **_rates(x.new_zeros(0, 1), ys, ys if mode else None)} for target in names]
            continue
        targets = None
        if mode == "random":
            targets = shared_targets.cpu()[rows_of]
        elif mode:
            targets = attacks.choose_targets(models[source], xs, ys, mode).cpu()
        result = attacks.run_batched(attack, models[source], xs, ys, batch_size=batch_size,
                                     targets=targets)
        for target in names:
            # at the target's side (the images' own where it has none)
            seen = images_to_side(result.adv, sides.get(target) or tuple(x.shape[-2:]))
            logits = predict(models[target], seen, batch_size=batch_size)
            keep = clean[target][rows_of] == ys
            if only_successful and target != source:  # the diagonal: the white-box rate
                keep &= result.success.cpu()
            rows.append({"source": source, "target": target, "n": int(keep.sum()),
                         **_rates(logits[keep], ys[keep], None if targets is None
                                  else targets[keep])})
    return pd.DataFrame(rows)


def _rates(logits: Tensor, y: Tensor, targets: Tensor | None) -> dict[str, float]:
    if logits.shape[0] == 0:
        nan = float("nan")
        return {"success": nan} if targets is None else {"success": nan, "top5": nan}
    if targets is None:
        return {"success": float((logits.argmax(1) != y).double().mean())}
    k = min(5, logits.shape[1])
    top5 = (logits.topk(k, dim=1).indices == targets[:, None]).any(1)
    return {"success": float((logits.argmax(1) == targets).double().mean()),
            "top5": float(top5.double().mean())}


def transfer_heatmap(table: pd.DataFrame, value: str = "success",
                     order: list[str] | None = None) -> pd.DataFrame:
    """The N×N matrix (rows = source, columns = target) of ``value`` from
    :func:`transfer_matrix`, in ``order`` (e.g. grouped by family)."""
    m = table.pivot(index="source", columns="target", values=value)
    if order is not None:
        missing = sorted(set(order) ^ set(m.index))
        if missing:
            raise ValueError(f"order must list exactly the models of the table; mismatch: "
                             f"{missing}.")
        repeated = sorted({name for name in order if order.count(name) > 1})
        if repeated:
            raise ValueError(f"order must list each model once; repeated: {repeated}.")
        m = m.loc[order, order]
    return m


# --- Liang et al. (2021): α₁, α₂ and their product --------------------------------------------

def liang_pgd(eps: float = 0.1, steps: int = 50, step_fraction: float = 0.1,
              generator: torch.Generator | None = None) -> TransferAttack:
    """Liang et al.'s attack: untargeted L∞ PGD with a random start, ``steps`` steps of
    ``step_fraction · eps`` (defaults: 50 steps of 0.01 at eps 0.1, pixels in [0, 1])."""
    check_positive("eps", eps, allow_zero=True)  # (a string failed here naming neither, NaN
    step_fraction = positive_number("step_fraction", step_fraction)  # was named step_size)
    return partial(attacks.pgd, eps=eps, norm="linf", steps=steps, step_size=step_fraction * eps,
                   random_start=True, generator=generator)


def liang_fgsm(eps: float = 0.1) -> TransferAttack:
    """The protocol's FGSM option: one L∞ step of size ``eps`` from x. (Their ``attack.py``
    with ``itr=1`` starts from a uniform random point of the ball, takes the gradient there and
    clips the step back to the ball: that is ``liang_pgd(eps, steps=1, step_fraction=1.0)``.)"""
    check_positive("eps", eps, allow_zero=True)
    return partial(attacks.fgsm, eps=eps, norm="linf")


class Perturbations:
    """Adversarial images of several models on one image set, each model attacked at most once.

    Parameters
    ----------
    models: name -> model; every model is attacked lazily, the first time it is needed.
    x: images (N, C, H, W) in [0, 1].
    attack: ``attack(model, x, y)`` -> :class:`AttackResult`, run against the model's own
        prediction ``y = argmax f(x)`` (default :func:`liang_pgd`).
    attack_for: instead of ``attack``, ``attack_for(name)`` gives each model its own attack —
        e.g. a random start drawn from a generator of its own, so that a model's perturbation
        does not depend on which other models were attacked before it.

    ``attacked[name]`` counts the attacks run per model (at most 1); logits are cached too.
    :meth:`change` returns Δ_{a→f}(x) = f(x + δ_a(x)) − f(x) in float64.
    """

    def __init__(self, models: Mapping[str, nn.Module], x: Tensor, *,
                 attack: TransferAttack | None = None,
                 attack_for: Callable[[str], TransferAttack] | None = None,
                 batch_size: int = 256, progress: bool | None = None) -> None:
        if not models:
            raise ValueError("Perturbations needs at least one model.")
        if attack is not None and attack_for is not None:
            raise ValueError("pass attack (one for every model) or attack_for (one per model "
                             "name), not both.")
        self.models = dict(models)
        self.x = check_images(as_tensor(x, "x"), "x")
        self.attack = liang_pgd() if attack is None else attack
        self.attack_for = attack_for
        self.batch_size = batch_size
        self.progress = progress
        self.attacked: dict[str, int] = dict.fromkeys(self.models, 0)
        self._adv: dict[str, Tensor] = {}
        self._clean: dict[str, Tensor] = {}
        self._logits: dict[tuple[str, str], Tensor] = {}

    def _model(self, name: str) -> nn.Module:
        if name not in self.models:
            raise KeyError(f"no model named {name!r}; models: {sorted(self.models)}.")
        return self.models[name]

    def clean_logits(self, name: str) -> Tensor:
        """Logits (N, K) of model ``name`` on the clean images, float64."""
        if name not in self._clean:
            model = self._model(name)
            logits = predict(model, self.x, batch_size=self.batch_size, dtype=None)
            self._clean[name] = logits.double()
        return self._clean[name]

    def adversarial(self, name: str) -> Tensor:
        """x + δ_name(x): the attack made on model ``name`` against its own prediction."""
        if name not in self._adv:
            own = self.clean_logits(name).argmax(1)
            attack = self.attack if self.attack_for is None else self.attack_for(name)
            result = attacks.run_batched(attack, self._model(name), self.x, own,
                                         batch_size=self.batch_size, progress=self.progress)
            self.attacked[name] += 1
            self._adv[name] = result.adv.detach().cpu()
        return self._adv[name]

    def change(self, attacked: str, evaluated: str) -> Tensor:
        """Δ_{attacked→evaluated}(x) (N, K): the evaluated model's logit change, float64."""
        key = (attacked, evaluated)
        if key not in self._logits:
            adv = self.adversarial(attacked)
            model = self._model(evaluated)
            logits = predict(model, adv, batch_size=self.batch_size, dtype=None)
            self._logits[key] = logits.double()
        return self._logits[key] - self.clean_logits(evaluated)


def _unit(d: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm; a zero row stays zero (a target that S's perturbation
    leaves unmoved contributes nothing to α₂; a zero row of S's own change is refused before,
    :func:`_mean_outer`)."""
    norm = d.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, d / norm.clamp_min(torch.finfo(d.dtype).tiny), 0.0)


def _check_changes(*changes: Tensor, names: tuple[str, ...]) -> tuple[Tensor, ...]:
    """The logit changes as tensors, refused unless (N, K) with one N and finite."""
    changes = tuple(as_tensor(c, name) for c, name in zip(changes, names, strict=True))
    n = {c.shape[0] if c.ndim else None for c in changes}  # (a 0-dim one failed on shape[0])
    if len(n) != 1 or any(c.ndim != 2 for c in changes):
        raise ValueError(f"logit changes must be (N, K) with one N; got shapes "
                         f"{[tuple(c.shape) for c in changes]}.")
    if n == {0}:
        raise ValueError("no images to average over (N = 0); did the reference model classify "
                         "any image correctly?")
    for c, name in zip(changes, names, strict=True):
        bad = int((~torch.isfinite(c)).any(dim=1).sum())
        if bad:
            raise ValueError(f"{name} holds NaN or inf on {bad} image(s); α is undefined there "
                             "(check the models' logits and the attack's output).")
    return changes


def alpha1_from_changes(d_source_target: Tensor, d_target_target: Tensor, *,
                        per_sample: bool = False) -> float | Tensor:
    """α₁ from logit changes: ‖Δ_{S→T}(x)‖₂ / ‖Δ_{T→T}(x)‖₂, averaged over x (or per sample).

    Parameters
    ----------
    d_source_target: (N, K_T) change of T's logits under S's perturbation.
    d_target_target: (N, K_T) change of T's logits under T's own perturbation.

    Returns
    -------
    The mean (float) or, with ``per_sample``, the (N,) float64 ratios.
    """
    per_sample = check_bool(per_sample, "per_sample")
    d_source_target, d_target_target = _check_changes(
        d_source_target, d_target_target, names=("d_source_target", "d_target_target"))
    if d_source_target.shape != d_target_target.shape:
        raise ValueError(f"d_source_target and d_target_target are both changes of the target's "
                         f"logits, so of one shape; got {tuple(d_source_target.shape)} and "
                         f"{tuple(d_target_target.shape)}.")
    num = d_source_target.double().norm(dim=1)
    den = d_target_target.double().norm(dim=1)
    zero = int((den == 0).sum())
    if zero:
        raise ValueError(f"the target's own attack left its logits unchanged on {zero} image(s); "
                         "α₁ is undefined there. Use a stronger attack (more steps, larger eps).")
    ratio = num / den
    return ratio if per_sample else float(ratio.mean())


def _mean_outer(d_source_source: Tensor, d_source_target: Tensor,
                weights: Tensor | None = None) -> Tensor:
    """E_x[w(x) · Δ̂_{S→S}(x) Δ̂_{S→T}(x)ᵀ] (K_S, K_T) in float64; refused where the source's
    own change is zero (its direction Δ̂_{S→S} undefined: counted as a zero matrix it scaled α₂
    down by the share of such images, while α₁ refuses its own zero denominators)."""
    zero = int((d_source_source == 0).all(dim=1).sum())
    if zero:
        raise ValueError(f"the source's own attack left its logits unchanged on {zero} "
                         "image(s); α₂ is undefined there (Δ̂_{S→S} has no direction). Use a "
                         "stronger attack (more steps, larger eps, a random start).")
    u, v = _unit(d_source_source.double()), _unit(d_source_target.double())
    if weights is not None:
        u = u * weights.double()[:, None]
    return u.T @ v / u.shape[0]


def alpha2_from_changes(d_source_source: Tensor, d_source_target: Tensor, *,
                        squared: bool = False) -> float:
    """α₂ = ‖E_x[Δ̂_{S→S}(x) Δ̂_{S→T}(x)ᵀ]‖_F from logit changes (hat = unit L2 vector).

    This is the definition of the paper (and of their synthetic-data code): the **unsquared**
    Frobenius norm, in [0, 1] (the norm of a mean of rank-one matrices of norm 1).
    ``squared=True`` returns its square, which their image-experiment code reported instead.

    Parameters
    ----------
    d_source_source: (N, K_S) change of S's logits under S's perturbation.
    d_source_target: (N, K_T) change of T's logits under S's perturbation.
    """
    squared = check_bool(squared, "squared")
    d_source_source, d_source_target = _check_changes(
        d_source_source, d_source_target, names=("d_source_source", "d_source_target"))
    value = float(torch.linalg.matrix_norm(_mean_outer(d_source_source, d_source_target)))
    return value**2 if squared else value


def alpha_combined_from_changes(d_source_source: Tensor, d_source_target: Tensor,
                                d_target_target: Tensor, *, squared: bool = False) -> float:
    """‖E_x[α₁(x) · Δ̂_{S→S}(x) Δ̂_{S→T}(x)ᵀ]‖_F: α₁ and α₂ in one number, per image (their
    "combined" adversarial transferability). ``squared=True`` returns its square, as their
    image-experiment code reported it (it squared α₂ and this number alike)."""
    squared = check_bool(squared, "squared")
    d_source_source, d_source_target, d_target_target = _check_changes(
        d_source_source, d_source_target, d_target_target,
        names=("d_source_source", "d_source_target", "d_target_target"))
    a1 = alpha1_from_changes(d_source_target, d_target_target, per_sample=True)
    assert isinstance(a1, Tensor)
    value = float(torch.linalg.matrix_norm(_mean_outer(d_source_source, d_source_target, a1)))
    return value**2 if squared else value


def _pair(source: nn.Module, target: nn.Module, x: Tensor, attack: TransferAttack | None,
          batch_size: int) -> tuple[Perturbations, str, str]:
    names = ("source", "source") if source is target else ("source", "target")
    models = {"source": source} if source is target else {"source": source, "target": target}
    return Perturbations(models, x, attack=attack, batch_size=batch_size), *names


def alpha1(source: nn.Module, target: nn.Module, x: Tensor, *,
           attack: TransferAttack | None = None, per_sample: bool = False,
           batch_size: int = 256) -> float | Tensor:
    """α₁ of ``source`` → ``target`` on images ``x`` (see :func:`alpha1_from_changes`).

    Each model is attacked against its own prediction with ``attack`` (default
    :func:`liang_pgd`); pass only images the target classifies correctly (the protocol).
    α₁(S, S) = 1 exactly: the same perturbation is used for numerator and denominator.
    """
    per_sample = check_bool(per_sample, "per_sample")  # before the attack, not after it
    p, s, t = _pair(source, target, x, attack, batch_size)
    return alpha1_from_changes(p.change(s, t), p.change(t, t), per_sample=per_sample)


def alpha2(source: nn.Module, target: nn.Module, x: Tensor, *,
           attack: TransferAttack | None = None, squared: bool = False,
           batch_size: int = 256) -> float:
    """α₂ of ``source`` → ``target`` on images ``x`` (see :func:`alpha2_from_changes`);
    only the source is attacked."""
    squared = check_bool(squared, "squared")  # before the attack, not after it
    p, s, t = _pair(source, target, x, attack, batch_size)
    return alpha2_from_changes(p.change(s, s), p.change(s, t), squared=squared)


def alpha_combined(source: nn.Module, target: nn.Module, x: Tensor, *,
                   attack: TransferAttack | None = None, squared: bool = False,
                   batch_size: int = 256) -> float:
    """The combined number of ``source`` → ``target`` (see
    :func:`alpha_combined_from_changes`)."""
    squared = check_bool(squared, "squared")  # before the attack, not after it
    p, s, t = _pair(source, target, x, attack, batch_size)
    return alpha_combined_from_changes(p.change(s, s), p.change(s, t), p.change(t, t),
                                       squared=squared)


def alpha_table(perturbations: Perturbations, pairs: Iterable[tuple[str, str]], *,
                y: Tensor | None = None, squared: bool = False) -> pd.DataFrame:
    """α₁, α₂ and the combined number for each (source, target) pair of model names (a list,
    or any iterable: a ``zip`` of sources and targets too).

    Each model is attacked once, on all images, however many pairs it takes part in. With
    labels ``y``, a pair is averaged over the images its target (second name) classifies
    correctly (the protocol: "only images the reference classifies correctly", in the S → T
    direction; for T → S pairs choose the reference's images beforehand instead); a pair whose
    target classifies none correctly has n = 0 and NaN values (as in :func:`transfer_matrix`).

    ``squared``: α₂ and the combined number squared, as their image-experiment code reported
    them (α₁ is a ratio of norms either way).

    Returns a DataFrame: source, target, n (images averaged), alpha1, alpha2, combined.
    """
    squared = check_bool(squared, "squared")  # before any attack, not after it
    pairs = list(pairs)  # an iterator (zip) would be used up by the checks: an empty table
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"pairs must be (source, target) name pairs; got {pair!r}.")
        for name in pair:
            perturbations._model(name)  # an unknown name is named before any attack runs
    if y is not None:
        y = check_labels(y, perturbations.x.shape[0], "y").cpu()
        for target in {target for _, target in pairs}:  # labels of each target's classes
            classes = perturbations.clean_logits(target).shape[1]
            if int(y.min()) < 0:  # (its images were dropped without a word)
                raise ValueError(f"y holds class {int(y.min())}; labels are class indices "
                                 f"0..{classes - 1}.")
            if int(y.max()) >= classes:
                raise ValueError(f"y holds class {int(y.max())}, but target {target!r} has "
                                 f"{classes} classes (0..{classes - 1}): pass labels in the "
                                 "targets' class space (for T → S pairs, choose the "
                                 "reference's images beforehand and pass no y).")
    rows = []
    for source, target in pairs:
        keep = torch.ones(perturbations.x.shape[0], dtype=torch.bool)
        if y is not None:
            keep = perturbations.clean_logits(target).argmax(1) == y
        if not keep.any():  # the target gets every image wrong: nothing to average, no attack
            nan = float("nan")
            rows.append({"source": source, "target": target, "n": 0, "alpha1": nan,
                         "alpha2": nan, "combined": nan})
            continue
        d_ss = perturbations.change(source, source)[keep]
        d_st = perturbations.change(source, target)[keep]
        d_tt = perturbations.change(target, target)[keep]
        rows.append({"source": source, "target": target, "n": int(keep.sum()),
                     "alpha1": alpha1_from_changes(d_st, d_tt),
                     "alpha2": alpha2_from_changes(d_ss, d_st, squared=squared),
                     "combined": alpha_combined_from_changes(d_ss, d_st, d_tt,
                                                             squared=squared)})
    return pd.DataFrame(rows)
