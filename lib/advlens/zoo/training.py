"""Training one zoo model, deterministically for a seed.

Optimiser: AdamW (default; decoupled weight decay) or SGD with Nesterov momentum 0.9; the
learning rate warms up linearly over ``warmup_frac`` of the steps then follows a cosine decay to
0 — one schedule for every family (ViTs included), with no per-family tuning beyond ``lr``.
How many epochs it needs is measured, not assumed: the laptop zoo's digits models train at
:data:`advlens.presets.DIGITS_EPOCHS` (``benchmarks/bench_epochs.py``: far fewer left the small
CNNs and the adversarially trained models well short of their plateau).

Determinism: the weights are initialised from ``config.seed`` (:func:`build_model`), and one
private ``torch.Generator`` seeded with ``config.seed`` drives shuffling and the adversarial
random starts; the loop runs inside :func:`advlens.rng.seeded` with ``config.seed`` too, so
anything drawing from the global RNG is reproducible and the caller's RNG state is untouched.
On a CPU with a fixed thread count, the same config gives bit-identical weights.
``$ADVLENS_DEVICE`` (default ``cpu``) selects the training device (e.g. ``cuda`` for the paper-scale
CIFAR-10 / STL-10 models); the trained model is returned on the CPU.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from advlens import accel
from advlens.data import ImageSet
from advlens.rng import seeded
from advlens.zoo.architectures import ZooNet, build_model
from advlens.zoo.augment import augment
from advlens.zoo.config import OPTIMIZERS, ModelConfig
from advlens.zoo.regimes import (
    Batch,
    check_trainable,
    importance_maps,
    training_inputs,
    training_loss,
)

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """A trained model (in eval mode), its per-epoch history and its cost."""

    model: ZooNet
    history: list[dict[str, float]] = field(default_factory=list)
    train_time_s: float = 0.0
    cpu_time_s: float = 0.0


def training_device() -> torch.device:
    """Where zoo models train: ``$ADVLENS_DEVICE`` (e.g. ``cuda``; default ``cpu``). Trained
    models are returned on the CPU either way (the cache and every caller expect that)."""
    return accel.env_device() or torch.device("cpu")


def make_optimizer(model: nn.Module, config: ModelConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov momentum 0.9) at ``config.lr`` / ``config.weight_decay``."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                               weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {config.optimizer!r}.")


def lr_factor(step: int, total: int, warmup_frac: float) -> float:
    """Linear warm-up over ``warmup_frac · total`` steps, then cosine decay to 0."""
    warmup = max(1, round(warmup_frac * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < 2:  # BatchNorm cannot train on one image
        chunks.pop()
    return chunks


def train(config: ModelConfig, data: ImageSet, *, progress: bool = True) -> TrainResult:
    """Train ``config``'s model on ``data`` (its training split); returns it in eval mode."""
    check_trainable(config)
    if len(data) < 2:
        raise ValueError(f"cannot train {config.name} on {len(data)} image(s); need at least 2.")
    wall, cpu = time.perf_counter(), time.process_time()
    model = build_model(config.arch, config.dataset, seed=config.seed,
                        num_classes=config.num_classes)
    model.normalize.set_stats(data.images)
    device = training_device()
    model.to(device)
    images, labels = data.images.to(device), data.labels.to(device)
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = len(_batches(len(data), config.batch_size, torch.Generator()))
    total = config.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, config.warmup_frac))
    history: list[dict[str, float]] = []
    maps = importance_maps(config, data)
    bar = tqdm(total=total, desc=config.name, disable=not progress, leave=False, unit="step",
               mininterval=1.0)
    with seeded(config.seed):
        model.train()
        for epoch in range(config.epochs):
            start, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
            for idx in _batches(len(data), config.batch_size, generator):
                masks = None if data.masks is None else data.masks[idx].to(device)
                batch = Batch(augment(images[idx], config.augment, generator), labels[idx],
                              masks, None if maps is None else maps[idx].to(device))
                inputs = training_inputs(model, batch, config, generator)
                optimizer.zero_grad(set_to_none=True)
                loss, logits = training_loss(model, batch, inputs, config)
                loss.backward()
                optimizer.step()
                schedule.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(1) == batch.y).sum())
                seen += len(idx)
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.3f}", refresh=False)
            record = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": correct / seen,
                      "lr": optimizer.param_groups[0]["lr"],
                      "seconds": time.perf_counter() - start}
            history.append(record)
            logger.info("%s epoch %d/%d loss %.4f train-acc %.3f (%.1fs)", config.name,
                        epoch + 1, config.epochs, record["loss"], record["train_acc"],
                        record["seconds"])
    bar.close()
    optimizer.zero_grad(set_to_none=True)
    model.cpu().eval()
    return TrainResult(model, history, time.perf_counter() - wall, time.process_time() - cpu)
