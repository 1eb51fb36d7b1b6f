"""Presets: the knobs of every notebook at three scales.

- ``smoke``: seconds per notebook on a CPU; the tests run every notebook with it.
- ``laptop`` (default): the real comparison on the embedded data, on a 2-core CPU.
- ``paper``: the published protocol and scale (real data and checkpoints, a GPU).

A notebook's ``parameters`` cell names every knob with ``None`` meaning "take it from the
preset"; :func:`resolve` merges the two.
"""

from __future__ import annotations

from typing import Any

PRESET_NAMES = ("smoke", "laptop", "paper")

# One table per notebook: knob -> value per preset. Each notebook owns its section.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # --- 00: data and zoo -------------------------------------------------------------------
    "00": {
        "smoke": {"seed": 0, "n_show": 4, "robust_eval_eps": 0.5, "robust_eval_n": 64,
                   "data_n": 300},
        "laptop": {"seed": 0, "n_show": 8, "robust_eval_eps": 0.5, "robust_eval_n": 500,
                   "data_n": 2000},
        "paper": {"seed": 0, "n_show": 8, "robust_eval_eps": 0.25, "robust_eval_n": 1000,
                   "data_n": 2000},
    },
    # --- 01: Jones et al. similarity on inverted data ----------------------------------------
    "01": {
        "smoke": {"seed": 0},
        "laptop": {"seed": 0},
        "paper": {"seed": 0},
    },
    # --- 02: Su et al. robustness vs accuracy -----------------------------------------------
    "02": {
        "smoke": {"seed": 0},
        "laptop": {"seed": 0},
        "paper": {"seed": 0},
    },
}


def resolve(notebook: str, preset: str, **overrides: Any) -> dict[str, Any]:
    """The knobs of ``notebook`` at ``preset``, with every non-``None`` override applied.

    Raises ValueError for an unknown preset, notebook or knob, naming the valid ones.
    """
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}.")
    if notebook not in PRESETS:
        raise ValueError(f"no presets for notebook {notebook!r}; known: {sorted(PRESETS)}.")
    knobs = dict(PRESETS[notebook][preset])
    unknown = sorted(set(overrides) - set(knobs) - {"preset"})
    if unknown:
        raise ValueError(f"notebook {notebook} has no knob(s) {unknown}; knobs: {sorted(knobs)}.")
    knobs.update({k: v for k, v in overrides.items() if v is not None and k != "preset"})
    knobs["preset"] = preset
    return knobs
