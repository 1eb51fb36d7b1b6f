"""`ZooEntry` (one trained model with its config and metadata) and `Zoo` (a set of them)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd
from torch import nn

from advlens.zoo.config import ModelConfig

TABLE_COLUMNS = ("name", "family", "arch", "dataset", "variant", "regime", "eps", "seed",
                 "epochs", "params", "test_acc", "robust_acc", "robust_eps", "train_time_s",
                 "cached", "hash", "weights_sha256")


@dataclass
class ZooEntry:
    """A zoo model (in eval mode) with its config and metadata (``test_acc``, ``robust_acc``,
    ``robust_eval``, ``train_time_s``, ``hash``, ``sha256`` of its weights file, …); ``cached``
    says it was loaded, not trained."""

    name: str
    config: ModelConfig
    model: nn.Module
    meta: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def row(self) -> dict[str, Any]:
        """This entry as one row of :meth:`Zoo.table`."""
        c = self.config
        return {"name": self.name, "family": c.family, "arch": c.arch, "dataset": c.dataset,
                "variant": c.variant, "regime": c.regime, "eps": c.eps, "seed": c.seed,
                "epochs": c.epochs, "params": self.meta.get("n_params"),
                "test_acc": self.meta.get("test_acc"), "robust_acc": self.meta.get("robust_acc"),
                "robust_eps": self.meta.get("robust_eval", {}).get("eps"),
                "train_time_s": self.meta.get("train_time_s"), "cached": self.cached,
                "hash": self.meta.get("hash", c.hash),
                # which weights: one config trains bitwise other weights on another CPU
                # (its hash names the config, not the weights)
                "weights_sha256": (self.meta.get("sha256") or "")[:16] or None}


_CONFIG_FIELDS = {f.name for f in fields(ModelConfig)}


def _matches(value: Any, wanted: Any) -> bool:
    if callable(wanted):
        return bool(wanted(value))
    if isinstance(wanted, Collection) and not isinstance(wanted, str):
        return value in wanted
    return value == wanted


class Zoo:
    """An ordered set of :class:`ZooEntry`, indexable by name."""

    def __init__(self, entries: list[ZooEntry]) -> None:
        names = [e.name for e in entries]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"zoo entries must have unique names; repeated: {duplicates}.")
        self.entries = list(entries)
        self._by_name = {e.name: e for e in self.entries}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ZooEntry]:
        return iter(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> ZooEntry:
        if name not in self._by_name:
            raise KeyError(f"no zoo model named {name!r}; names: {self.names}")
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def table(self) -> pd.DataFrame:
        """One row per model: name, family, arch, dataset, regime, eps, seed, params,
        test_acc, robust_acc (with its attack's ``robust_eps``), train_time_s, hash, …"""
        return pd.DataFrame([e.row() for e in self.entries], columns=list(TABLE_COLUMNS))

    def select(self, **criteria: Any | Collection[Any] | Callable[[Any], bool]) -> list[ZooEntry]:
        """Entries whose config fields (or ``name``) match every criterion: a value (equality),
        a list/tuple/set (membership) or a predicate, e.g.
        ``zoo.select(dataset="digits", regime="l2-at", eps=lambda e: e >= 0.5)``."""
        unknown = sorted(set(criteria) - _CONFIG_FIELDS - {"name"})
        if unknown:
            raise ValueError(f"unknown selection key(s) {unknown}; use ModelConfig fields: "
                             f"{sorted(_CONFIG_FIELDS)} or 'name'.")
        return [e for e in self.entries
                if all(_matches(e.name if key == "name" else getattr(e.config, key), wanted)
                       for key, wanted in criteria.items())]
