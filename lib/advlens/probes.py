"""Knowledge transfer: a source model's accuracy on a target task after retraining its head.

- :func:`linear_probe` — Liang et al.'s protocol: replace the last linear layer, train only it.
  Every BatchNorm stays in eval mode, so its running statistics are the source's. (Their code
  left the network in train mode while probing, so BatchNorm statistics drifted to the target
  data and the "frozen" features changed during the probe; we do not reproduce that.)
- :func:`fine_tune` — the option: train every parameter (BatchNorm in eval mode by default).
- :func:`train_val_split` — a stratified validation split carved out of the target's training
  data; the epoch is chosen on it, and the test split is used once, for the reported accuracy
  (their code selected on the test set).

Both train with AdamW at a constant rate by default; ``recipe="lbfgs"`` (the linear probe
only) fits the head as a multinomial logistic regression on the standardised features, full
batch, by L-BFGS to convergence, its weight decay chosen on the validation split
(:data:`LBFGS_WEIGHT_DECAYS`): a probe whose accuracy is the features', not how far a fixed
number of steps got (at laptop scale AdamW's 50 epochs left every source of notebook 04 short
of it, by up to 0.28 in accuracy); ``recipe="liang"`` is their ``transfer.py``'s optimiser:
SGD with momentum 0.9 and weight decay 1e-4, the rate annealed by a
cosine to 0 over the epochs (stepped per epoch), batches of 64. (Their random crop and flip of
the target images are not applied: the probe's features are computed once. Their new head is
a fresh ``nn.Linear``, bias included, as ours; only their earlier ``exp1/transfer.py`` re-drew
the weight and kept the source's bias.)
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlens.accel import unwrap
from advlens.checks import (
    as_tensor,
    check_bool,
    check_count,
    check_images,
    check_labels,
    check_positive_int,
    eval_mode,
    images_for,
    model_device,
    one_number,
)
from advlens.features import final_linear, predict, representation
from advlens.rng import seeded


@dataclass
class ProbeResult:
    """The retrained model (a copy; the source is untouched), its best validation accuracy,
    the epoch it came from, and the per-epoch history (train_loss, val_acc). ``recipe="lbfgs"``:
    ``best_epoch`` is the L-BFGS iterations of the chosen fit, ``history`` one entry per weight
    decay tried, ``weight_decay`` the one chosen and ``converged`` whether its fit converged
    (None for the other recipes)."""

    model: nn.Module
    val_acc: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    weight_decay: float | None = None
    converged: bool | None = None


def train_val_split(y: Tensor, val_fraction: float = 0.2, *,
                    seed: int = 0) -> tuple[Tensor, Tensor]:
    """Disjoint (train, validation) indices, stratified: ``val_fraction`` of each class
    (at least one image of every class with two or more) goes to validation."""
    if not 0.0 < one_number("val_fraction", val_fraction) < 1.0:  # (a string failed on "<")
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}.")
    seed = check_positive_int(seed, "seed", least=0)
    y = check_labels(y, len(y), "y")  # a list of ints too, as everywhere labels are taken
    if y.numel() == 0:
        raise ValueError("y is empty: no labels to split.")
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in torch.unique(y):
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = min(len(idx) - 1, max(1, round(val_fraction * len(idx))))
        val.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def replace_head(model: nn.Module, num_classes: int, *, seed: int = 0) -> tuple[nn.Module, str]:
    """A deep copy of ``model`` whose last ``nn.Linear`` is a fresh one with ``num_classes``
    outputs and a bias, whether or not the old head had one (Liang et al.'s ``transfer.py``: a
    new ``nn.Linear``; PyTorch's default initialisation, drawn from ``seed``); returns (copy,
    head name)."""
    # (2.0 failed inside nn.Linear; a seed of 2.5 or "3" was read as 2 or 3)
    num_classes = check_positive_int(num_classes, "num_classes", least=2)
    seed = check_positive_int(seed, "seed", least=0)
    name, old = final_linear(model)
    new_model = copy.deepcopy(model)
    with seeded(seed):
        head = nn.Linear(old.in_features, num_classes)
    head = head.to(device=old.weight.device, dtype=old.weight.dtype)
    parent_name, _, attr = name.rpartition(".")
    parent = new_model.get_submodule(parent_name) if parent_name else new_model
    setattr(parent, attr, head)
    return new_model, name


def _num_classes(y_train: Tensor, y_val: Tensor, num_classes: int | None) -> int:
    """``num_classes``, or the largest label of either split + 1 (each split non-empty); the
    training split must hold two classes or more, and without ``num_classes`` the splits
    together every label of 0..k-1 (labels such as {3, 7} built an 8-way head, and a task of
    one class labelled 2 read validation accuracy 1.0)."""
    # (lists of ints too, as everywhere labels are taken; their length is checked against the
    # images by _check_data)
    labels = [check_labels(y, len(y), f"y_{name}")
              for name, y in (("train", y_train), ("val", y_val))]
    for name, y in zip(("train", "val"), labels, strict=True):
        if y.numel() == 0:
            raise ValueError(f"the {name} split is empty (no labels); with train_val_split, "
                             "every class needs two or more images to put one in each split.")
    present = torch.unique(labels[0])
    if len(present) < 2:
        raise ValueError(f"the training split holds one class ({present.tolist()}); a probe "
                         "needs two or more to tell apart.")
    k = check_count(num_classes, "num_classes", least=2, none="")
    if k is not None:
        return k
    k = max(int(y.max()) for y in labels) + 1
    seen = set(torch.cat(labels).tolist())
    absent = sorted(set(range(k)) - seen)
    if min(seen) >= 0 and absent:
        raise ValueError(f"the labels skip class(es) {absent[:5]} of 0..{k - 1}; "
                         "relabel the target classes 0..k-1 (e.g. with torch.unique(y, "
                         "return_inverse=True)), or pass num_classes if they are meant to be "
                         "absent.")
    return k


def _check_data(x: Tensor, y: Tensor, name: str, num_classes: int) -> tuple[Tensor, Tensor]:
    x = check_images(as_tensor(x, f"x_{name}"), f"x_{name}")
    y = check_labels(y, x.shape[0], f"y_{name}")
    if x.shape[0] == 0:
        raise ValueError(f"the {name} split is empty.")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"y_{name} must lie in 0..{num_classes - 1} (num_classes); got "
                         f"{int(y.min())}..{int(y.max())}. Relabel the target classes 0..k-1.")
    return x, y


def _check_output_layer(model: nn.Module, new_model: nn.Module, name: str, x: Tensor) -> None:
    """Refuse a model whose last ``nn.Linear`` (``name``) is not its output layer: ``new_model``'s
    logits on a few images must be its new head applied to ``model``'s features. Both run
    without :func:`advlens.accel.prepare`'s wrappers: under bf16 autocast the head's logits
    differ from its float32 output by far more than the tolerance."""
    device = model_device(model)
    head = new_model.get_submodule(name)
    problem = (f"{type(model).__name__}: the last nn.Linear ({name!r}) is not the output layer, "
               "so it cannot be replaced by a new head. Pass a model whose last registered "
               "nn.Linear computes its logits.")
    try:
        logits = predict(unwrap(new_model), x[:4], dtype=None).to(device)
    except RuntimeError as error:  # the new head's outputs do not fit what follows it
        predict(unwrap(model), x[:4])  # a source failing by itself raises its own error
        raise ValueError(problem) from error
    feats = representation(unwrap(model), x[:4], device=device).to(device, head.weight.dtype)
    with torch.no_grad():
        if logits.shape != (feats.shape[0], head.out_features) or not torch.allclose(
                logits, head(feats), rtol=1e-4, atol=1e-4):
            raise ValueError(problem)


State = dict[str, Tensor]
Recipe = Literal["adamw", "liang", "lbfgs"]
RECIPES: tuple[str, ...] = ("adamw", "liang", "lbfgs")
# the "lbfgs" probe's weight decays λ (of the mean cross-entropy + λ/2·‖W‖², the bias free, on
# features standardised on the training split), strongest first: a tie on the validation split
# keeps the stronger; sklearn's LogisticRegression(C) is λ = 1 / (C · n_train)
LBFGS_WEIGHT_DECAYS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
# its convergence: the largest |gradient| of the penalised mean loss at the end
LBFGS_GRADIENT_TOLERANCE = 1e-5
# Liang et al.'s transfer.py: SGD(momentum 0.9, weight decay 1e-4), CosineAnnealingLR(T_max =
# epochs, eta_min 0) stepped once per epoch, batch size 64
LIANG_RECIPE = {"momentum": 0.9, "weight_decay": 1e-4, "batch_size": 64}


def _number(value: object, name: str) -> float:
    """``value`` as a float if it is a real number (NumPy's and 0-dim tensors included); a
    string, a bool or anything else is refused by name (it failed inside the training loop)."""
    if isinstance(value, bool | str | bytes):
        number = None
    else:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, RuntimeError):
            number = None
    if number is None:
        raise TypeError(f"{name} must be a number; got {value!r} ({type(value).__name__}).")
    return number


def _recipe(recipe: str, weight_decay: float | None, batch_size: int | None, *, epochs: int,
            lr: float) -> tuple[float, int, int, float]:
    """(weight decay, batch size, epochs, lr): those given, else ``recipe``'s, checked before
    any work (a string or a fraction failed in the loop with an error naming neither)."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}; got {recipe!r}.")
    # (lbfgs: full batch, and its linear_probe chooses a weight decay given as None)
    defaults = {"adamw": {"weight_decay": 0.0, "batch_size": 128}, "liang": LIANG_RECIPE,
                "lbfgs": {"weight_decay": 0.0, "batch_size": 1}}[recipe]
    weight_decay = _number(defaults["weight_decay"] if weight_decay is None else weight_decay,
                           "weight_decay")
    if not 0.0 <= weight_decay < math.inf:
        raise ValueError(f"weight_decay must be finite and >= 0; got {weight_decay!r}.")
    lr = _number(lr, "lr")
    if not 0.0 < lr < math.inf:
        raise ValueError(f"lr must be finite and > 0; got {lr!r}.")
    size = defaults["batch_size"] if batch_size is None else batch_size
    return (weight_decay, check_positive_int(size, "batch_size"),
            check_positive_int(epochs, "epochs"), lr)


def _fit(params: list[nn.Parameter], loss_of: Callable[[Tensor], Tensor],
         accuracy_of: Callable[[], float], n: int, *, snapshot: Callable[[], State],
         epochs: int, lr: float, weight_decay: float, batch_size: int, seed: int,
         recipe: str = "adamw") -> tuple[float, int, list[dict[str, float]], State]:
    """AdamW (``recipe="liang"``: SGD with momentum, cosine-annealed per epoch) over shuffled
    minibatches (a lone last image joins the batch before it); after each epoch the validation
    accuracy; returns the best (val_acc, epoch, history, state) — the earliest epoch of the
    best accuracy."""
    schedule = None  # (the settings were checked by _recipe)
    if recipe == "liang":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=lr, momentum=LIANG_RECIPE["momentum"], weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=0.0)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    best: tuple[float, int, State] = (-1.0, 0, {})
    history = []
    for epoch in range(1, epochs + 1):
        total = 0.0
        batches = list(torch.randperm(n, generator=g).split(batch_size))
        if len(batches) > 1 and len(batches[-1]) == 1:  # BatchNorm cannot train on one image
            batches[-2:] = [torch.cat(batches[-2:])]
        for idx in batches:
            opt.zero_grad(set_to_none=True)
            loss = loss_of(idx)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if schedule is not None:
            schedule.step()
        val_acc = accuracy_of()
        history.append({"epoch": epoch, "train_loss": total / n, "val_acc": val_acc})
        if val_acc > best[0]:
            best = (val_acc, epoch, snapshot())
    return best[0], best[1], history, best[2]


def _lbfgs_fit(z: Tensor, y: Tensor, k: int, decay: float, max_iter: int
               ) -> tuple[Tensor, Tensor, float, int]:
    """(weight, bias, loss, iterations) of L-BFGS from zero on the mean cross-entropy of
    ``z @ weight.T + bias`` + decay/2·‖weight‖²; the gradients of the returned loss are left
    in ``weight.grad`` and ``bias.grad``."""
    weight = torch.zeros(k, z.shape[1], dtype=torch.float64, device=z.device,
                         requires_grad=True)
    bias = torch.zeros(k, dtype=torch.float64, device=z.device, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=LBFGS_GRADIENT_TOLERANCE / 10,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(z @ weight.T + bias, y) + decay / 2 * (weight * weight).sum()
        loss.backward()
        return loss

    opt.step(closure)
    loss = float(closure().detach())
    return weight, bias, loss, int(opt.state[weight]["n_iter"])


def _lbfgs_head(f_train: Tensor, y_train: Tensor, f_val: Tensor, y_val: Tensor, k: int, *,
                max_iter: int, weight_decays: tuple[float, ...]
                ) -> tuple[Tensor, Tensor, float, int, list[dict[str, float]], float, bool]:
    """A multinomial logistic regression of ``y_train`` on ``f_train``, fitted by full-batch
    L-BFGS (strong Wolfe line search, float64, from zero) for each weight decay λ of the mean
    cross-entropy + λ/2·‖W‖² on the features standardised with the training split's mean and
    standard deviation; the λ of the best validation accuracy is kept (the first on a tie).

    Returns (weight (k, d), bias (k,) of the head on the raw features, val_acc, iterations,
    history, λ, converged), converged meaning the largest |gradient| ended at most
    :data:`LBFGS_GRADIENT_TOLERANCE`."""
    train = f_train.double()
    mean, std = train.mean(0), train.std(0, unbiased=False)
    std = torch.where(std > 1e-12 * std.max().clamp_min(1e-300), std, torch.ones_like(std))
    z_train, z_val = (train - mean) / std, (f_val.double() - mean) / std
    best: tuple | None = None
    history = []
    for decay in weight_decays:
        weight, bias, loss, iterations = _lbfgs_fit(z_train, y_train, k, decay, max_iter)
        gradient = max(float(weight.grad.abs().max()), float(bias.grad.abs().max()))
        with torch.no_grad():
            val_acc = float((z_val @ weight.T + bias).argmax(1).eq(y_val).double().mean())
        converged = gradient <= LBFGS_GRADIENT_TOLERANCE
        history.append({"weight_decay": decay, "iterations": iterations,
                        "train_loss": float(loss), "val_acc": val_acc,
                        "converged": float(converged)})
        if best is None or val_acc > best[0]:
            best = (val_acc, iterations, decay, converged, weight.detach(), bias.detach())
    assert best is not None  # (weight_decays is never empty)
    val_acc, iterations, decay, converged, weight, bias = best
    raw_weight = weight / std  # the head on raw features: W (f - μ)/σ + b = (W/σ) f + b'
    return raw_weight, bias - raw_weight @ mean, val_acc, iterations, history, decay, converged


def _trains(fit: Callable[..., ProbeResult]) -> Callable[..., ProbeResult]:
    """Run ``fit`` with gradients on, also inside a caller's ``torch.no_grad()`` or
    ``torch.inference_mode()`` (its backward failed there with "element 0 of tensors does not
    require grad"); tensors made in it (the new model's included) are ordinary ones."""
    return torch.enable_grad()(torch.inference_mode(False)(fit))


@_trains
def linear_probe(model: nn.Module, x_train: Tensor, y_train: Tensor, x_val: Tensor,
                 y_val: Tensor, *, num_classes: int | None = None, epochs: int = 30,
                 lr: float = 1e-2, weight_decay: float | None = None,
                 batch_size: int | None = None, seed: int = 0,
                 recipe: Recipe = "adamw") -> ProbeResult:
    """Replace ``model``'s last linear layer and train only that layer on the target data.

    Parameters
    ----------
    model: the source model; left untouched (the result holds a copy).
    x_train, y_train / x_val, y_val: target images in [0, 1] and labels 0..k-1; the epoch with
        the best validation accuracy is kept (validation is not the test split).
    num_classes: k (default: max label + 1 over both splits).
    recipe: ``"adamw"`` (AdamW, constant ``lr``; weight decay 0 and batches of 128 unless
        given), ``"liang"`` (their SGD with momentum and cosine annealing; weight decay 1e-4
        and batches of 64 unless given; see the module's docstring) or ``"lbfgs"`` (a logistic
        regression fitted to convergence, full batch: ``epochs`` is the most L-BFGS
        iterations, ``lr`` and ``batch_size`` are unused and ``weight_decay`` None picks one of
        :data:`LBFGS_WEIGHT_DECAYS` on the validation split; a fit that does not converge in
        ``epochs`` iterations is kept with a warning; ``seed`` does not matter: the fit is
        the unique minimum).

    Returns
    -------
    :class:`ProbeResult`. The body runs in eval mode throughout: the head's inputs are the
    source's penultimate features, computed once, and no BatchNorm statistic changes.
    """
    chosen_decay = weight_decay
    weight_decay, batch_size, epochs, lr = _recipe(recipe, weight_decay, batch_size,
                                                   epochs=epochs, lr=lr)
    k = _num_classes(y_train, y_val, num_classes)
    x_train, y_train = _check_data(x_train, y_train, "train", k)
    x_val, y_val = _check_data(x_val, y_val, "val", k)
    new_model, name = replace_head(model, k, seed=seed)
    head = new_model.get_submodule(name)
    device = model_device(model)
    _check_output_layer(model, new_model, name, x_val)
    f_train = representation(model, x_train, device=device).to(device, head.weight.dtype)
    f_val = representation(model, x_val, device=device).to(device, head.weight.dtype)
    if recipe == "lbfgs":
        decays = LBFGS_WEIGHT_DECAYS if chosen_decay is None else (weight_decay,)
        # on the CPU: float64 everywhere (MPS has none), and the features are small (n × d)
        weight, bias, val_acc, iterations, history, decay, converged = _lbfgs_head(
            f_train.cpu(), y_train.cpu(), f_val.cpu(), y_val.cpu(), k, max_iter=epochs,
            weight_decays=decays)
        if not converged:
            warnings.warn(f"the L-BFGS probe did not converge in {epochs} iterations (weight "
                          f"decay {decay:g}); give it more (epochs, notebook 04's "
                          "probe_epochs).", RuntimeWarning, stacklevel=4)  # (_trains: 2)
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        new_model.eval()
        return ProbeResult(new_model, val_acc, iterations, history, decay, converged)
    y_train_d, y_val_d = y_train.to(device), y_val.to(device)
    for p in head.parameters():
        p.requires_grad_(True)

    def loss_of(idx: Tensor) -> Tensor:
        return F.cross_entropy(head(f_train[idx]), y_train_d[idx])

    @torch.no_grad()
    def accuracy_of() -> float:
        return float((head(f_val).argmax(1) == y_val_d).float().mean())

    def snapshot() -> State:
        return {k_: v.detach().clone() for k_, v in head.state_dict().items()}

    val_acc, epoch, history, state = _fit(
        list(head.parameters()), loss_of, accuracy_of, len(y_train), snapshot=snapshot,
        epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed,
        recipe=recipe)
    head.load_state_dict(state)
    new_model.eval()
    return ProbeResult(new_model, val_acc, epoch, history)


@_trains
def fine_tune(model: nn.Module, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor,
              *, num_classes: int | None = None, epochs: int = 10, lr: float = 1e-3,
              weight_decay: float | None = None, batch_size: int | None = None, seed: int = 0,
              batchnorm_eval: bool = True, recipe: Recipe = "adamw") -> ProbeResult:
    """Replace the last linear layer and train every parameter (the fine-tuning option).

    ``batchnorm_eval=True`` keeps every BatchNorm in eval mode (source statistics, as in
    :func:`linear_probe`); False lets them adapt to the target data (train mode). Dropout is
    off either way. Same arguments and result as :func:`linear_probe`.
    """
    batchnorm_eval = check_bool(batchnorm_eval, "batchnorm_eval")
    if recipe == "lbfgs":
        raise ValueError("recipe 'lbfgs' fits a linear probe (a logistic regression on fixed "
                         "features); fine-tuning every layer takes 'adamw' or 'liang'.")
    weight_decay, batch_size, epochs, lr = _recipe(recipe, weight_decay, batch_size,
                                                   epochs=epochs, lr=lr)
    k = _num_classes(y_train, y_val, num_classes)
    x_train, y_train = _check_data(x_train, y_train, "train", k)
    x_val, y_val = _check_data(x_val, y_val, "val", k)
    new_model, name = replace_head(model, k, seed=seed)
    _check_output_layer(model, new_model, name, x_val)
    device = model_device(new_model)
    params = list(new_model.parameters())
    for p in params:
        p.requires_grad_(True)
    norms = [m for m in new_model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    x_train = images_for(new_model, x_train)

    def loss_of(idx: Tensor) -> Tensor:
        new_model.eval()
        for m in norms:
            m.train(not batchnorm_eval)
        return F.cross_entropy(new_model(x_train[idx].to(device)), y_train[idx].to(device))

    def accuracy_of() -> float:
        with eval_mode(new_model):
            return float((predict(new_model, x_val).argmax(1) == y_val.cpu()).float().mean())

    def snapshot() -> State:
        return {k_: v.detach().clone() for k_, v in new_model.state_dict().items()}

    val_acc, epoch, history, state = _fit(
        params, loss_of, accuracy_of, len(y_train), snapshot=snapshot, epochs=epochs, lr=lr,
        weight_decay=weight_decay, batch_size=batch_size, seed=seed, recipe=recipe)
    new_model.load_state_dict(state)
    new_model.eval()
    return ProbeResult(new_model, val_acc, epoch, history)
