"""advlens.su2018: Su et al.'s attack suite over a model set and the findings' helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from advlens.papers.su2018 import (
    SuiteSettings,
    attack_suite,
    transfer_summary,
    variance_explained,
)
from attack_toys import affine_model, centre_images

TINY = SuiteSettings(search_tries=4, ifgsm_steps=5, cw_binary_steps=2, cw_steps=20, cw_lr=0.02,
                     ead_binary_steps=2, ead_steps=20, cw_initial_const=1.0,
                     ead_initial_const=1.0)


def test_attack_suite_rows_and_correct_images_only() -> None:
    a, b = affine_model(k=4, seed=1), affine_model(k=4, seed=1)
    with torch.no_grad():  # b: a related model that disagrees with a on some images
        b[1].weight.add_(affine_model(k=4, seed=2)[1].weight * 0.5)
    x = centre_images(16, spread=0.3)
    with torch.no_grad():
        y = a(x).argmax(1)
    table, results = attack_suite({"a": a, "b": b}, x, y, settings=TINY,
                                  target_modes=["top-2"], n_boot=50,
                                  generator=torch.Generator().manual_seed(0))
    assert len(table) == 2 * 4 * 2
    assert set(table["norm"]) == {"linf", "l2", "l1"}
    with torch.no_grad():
        b_correct = int((b(x).argmax(1) == y).sum())
    assert 0 < b_correct < 16
    assert (table[table.model == "b"]["attempts"] == b_correct).all()
    assert (table[table.model == "a"]["attempts"] == 16).all()
    r = results[("a", "cw", "untargeted")]
    ok = r.success
    assert table.set_index(["model", "attack", "mode"]).loc[("a", "cw", "untargeted"),
                                                             "distortion"] == pytest.approx(
        float(r.norms[ok].mean()))
    assert results[("a", "ifgsm", "top-2")].targets is not None


def test_variance_explained_against_manual_sums() -> None:
    df = pd.DataFrame({"family": ["x", "x", "y", "y"], "d": [1.0, 2.0, 5.0, 6.0],
                       "size": [1.0, 2.0, 3.0, 4.0]})
    # between-group SS: 2·(1.5 − 3.5)² + 2·(5.5 − 3.5)² = 16; total SS: 17
    assert variance_explained(df, "d", group="family") == pytest.approx(16 / 17)
    r = np.corrcoef(df["size"], df["d"])[0, 1]
    assert variance_explained(df, "d", covariate="size") == pytest.approx(r**2)
    with pytest.raises(ValueError, match="exactly one"):
        variance_explained(df, "d")


def test_transfer_summary_splits_within_and_across_families() -> None:
    m = pd.DataFrame([[1.0, 0.8, 0.2], [0.6, 1.0, 0.4], [0.1, 0.3, 1.0]],
                     index=["a1", "a2", "b"], columns=["a1", "a2", "b"])
    s = transfer_summary(m, {"a1": "a", "a2": "a", "b": "b"}).set_index("source")
    assert s.loc["a1", "within_family"] == 0.8 and s.loc["a1", "across_families"] == 0.2
    assert np.isnan(s.loc["b", "within_family"]) and s.loc["b", "across_families"] == 0.2
    assert s.loc["a2", "all_others"] == pytest.approx(0.5)


def test_pareto_front_by_brute_force() -> None:
    from advlens.papers.su2018 import pareto_front

    df = pd.DataFrame({"top1_error": [0.1, 0.2, 0.05, 0.3, 0.2],
                       "distortion": [1.0, 2.0, 0.5, 1.5, 2.5]})
    # (0.2, 2.5) dominates (0.2, 2.0) and (0.3, 1.5); the rest trade off
    assert pareto_front(df).tolist() == [True, False, True, False, True]


def test_family_vs_size_detects_a_family_effect() -> None:
    from advlens.papers.su2018 import family_vs_size

    rng = np.random.default_rng(0)
    fam = np.repeat(["a", "b", "c"], 6)
    params = np.tile([1e3, 3e3, 1e4, 3e4, 1e5, 3e5], 3)
    d = pd.DataFrame({"family": fam, "params": params,
                      "distortion": np.repeat([1.0, 2.0, 3.0], 6) + rng.normal(0, 0.1, 18)})
    out = family_vs_size(d, n_perm=200)
    assert out["eta2_family"] > 0.9 > out["eta2_null"] and out["p_family"] < 0.01
    assert out["r2_log_size"] < 0.1
    null = d.assign(distortion=rng.normal(0, 1, 18))
    assert family_vs_size(null, n_perm=200)["p_family"] > 0.01
    singletons = d.iloc[[0, 6, 12]]  # one model per family: η² would be 1 by construction
    assert np.isnan(family_vs_size(singletons, n_perm=10)["eta2_family"])
