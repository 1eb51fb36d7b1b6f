"""pmap gives the same ordered results locally and on a dask cluster."""

from __future__ import annotations

import pytest

from advlens.parallel import pmap


def _square(x: int) -> int:
    return x * x


def test_local_map_keeps_order() -> None:
    assert pmap(_square, range(5), progress=False) == [0, 1, 4, 9, 16]


def test_dask_cluster_map_matches_local() -> None:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert pmap(_square, range(7), client=client, progress=False) == [
            x * x for x in range(7)]


def test_unreachable_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLENS_SCHEDULER", "tcp://127.0.0.1:9")
    with pytest.raises(ConnectionError, match="ADVLENS_SCHEDULER"):
        pmap(_square, [1], progress=False, connect_timeout_s=0.5)
