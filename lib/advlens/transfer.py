"""Transferability of adversarial examples between models.

:func:`transfer_matrix` — Su et al.: every ordered pair (source, target) of a set of models;
the source's adversarial examples are evaluated on the target, skipping images the target
misclassifies clean. Untargeted success = the target's prediction changes; targeted success =
the target class is the target model's top-1 (and top-5) prediction.

(Liang et al.'s α₁ / α₂ adversarial-transferability metrics belong in this module too.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens import attacks
from advlens.attacks.core import tqdm_disabled
from advlens.attacks.result import AttackResult
from advlens.attacks.targets import TARGET_MODES
from advlens.checks import as_tensor, check_images, check_labels
from advlens.features import predict

# attack(model, x, y, targets=None) -> AttackResult
TransferAttack = Callable[..., AttackResult]


def ifgsm(eps: float = 0.1, steps: int = 50) -> TransferAttack:
    """Su et al.'s I-FGSM at a fixed L∞ budget: ``steps`` steps of eps/steps, no random start."""
    return partial(attacks.pgd, eps=eps, norm="linf", steps=steps, step_size=eps / steps)


def transfer_matrix(models: Mapping[str, nn.Module], x: Tensor, y: Tensor, *,
                    attack: TransferAttack | None = None, targeted: bool | str = False,
                    generator: torch.Generator | None = None, only_successful: bool = True,
                    batch_size: int = 256, progress: bool | None = None) -> pd.DataFrame:
    """Success of each source's adversarial examples on each target, for every ordered pair.

    ``attack(model, x, y, targets=...)`` crafts the examples on the source (default:
    :func:`ifgsm` with eps 0.1). ``targeted``: False (untargeted) or a target mode of
    :func:`advlens.attacks.choose_targets` ("least-likely"/"top-2" ranked by the source;
    "random" drawn once with ``generator`` and shared by all sources). Evaluated for a pair:
    images the target classifies correctly clean, and (``only_successful``) whose example
    fooled the source. The diagonal (source = target) is the white-box rate.

    Returns a long DataFrame: source, target, n (images evaluated), success (rate; untargeted:
    the target's prediction changed; targeted: top-1 = target class) and, if targeted, top5.
    """
    if len(models) < 1:
        raise ValueError("transfer_matrix needs at least one model.")
    if targeted not in (False, True, *TARGET_MODES):
        raise ValueError(f"targeted must be False or one of {TARGET_MODES}; got {targeted!r}.")
    mode = "random" if targeted is True else targeted
    x = check_images(as_tensor(x, "x"), "x")
    y = check_labels(y, x.shape[0], "y")
    attack = ifgsm() if attack is None else attack
    clean = {name: predict(m, x, batch_size=batch_size).argmax(1) for name, m in models.items()}
    shared_targets = None
    if mode == "random":
        first = next(iter(models.values()))
        shared_targets = attacks.choose_targets(first, x, y, "random", generator)
    rows = []
    names = list(models)
    for source in tqdm(names, desc="transfer sources", disable=tqdm_disabled(progress),
                       leave=False):
        targets = None
        if mode:
            targets = shared_targets if mode == "random" else attacks.choose_targets(
                models[source], x, y, mode)
        result = attacks.run_batched(attack, models[source], x, y, batch_size=batch_size,
                                     targets=targets)
        for target in names:
            logits = predict(models[target], result.adv, batch_size=batch_size)
            keep = clean[target] == y
            if only_successful:
                keep &= result.success.cpu()
            rows.append({"source": source, "target": target, "n": int(keep.sum()),
                         **_rates(logits[keep], y[keep], None if targets is None
                                  else targets.cpu()[keep])})
    return pd.DataFrame(rows)


def _rates(logits: Tensor, y: Tensor, targets: Tensor | None) -> dict[str, float]:
    if logits.shape[0] == 0:
        nan = float("nan")
        return {"success": nan} if targets is None else {"success": nan, "top5": nan}
    if targets is None:
        return {"success": float((logits.argmax(1) != y).float().mean())}
    k = min(5, logits.shape[1])
    top5 = (logits.topk(k, dim=1).indices == targets[:, None]).any(1)
    return {"success": float((logits.argmax(1) == targets).float().mean()),
            "top5": float(top5.float().mean())}


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
        m = m.loc[order, order]
    return m
