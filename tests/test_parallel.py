"""pmap/map_models: the same ordered results locally and on a dask cluster; a failing task is
retried and reported without losing the others; a killed worker loses nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from advlens.parallel import (
    WORKER_MALLOC_ENV,
    TaskFailures,
    local_cluster,
    map_models,
    pmap,
    tune_allocator,
    tune_allocator_on_worker,
)


def _square(x: int) -> int:
    return x * x


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x * x


def _flaky(item: tuple[int, str]) -> int:
    """Fails the first time it sees an item (a marker file records the attempt)."""
    x, folder = item
    marker = Path(folder) / f"seen-{x}"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError(f"transient failure of {x}")
    return x * x


def _dies_once(item: tuple[int, str]) -> int:
    """Kills its worker process the first time it runs item 2 (as an OOM kill would)."""
    x, folder = item
    marker = Path(folder) / f"died-{x}"
    if x == 2 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    return x * x


def test_local_map_keeps_order() -> None:
    assert pmap(_square, range(5), progress=False) == [0, 1, 4, 9, 16]


def test_failure_is_reported_after_the_others_finish() -> None:
    with pytest.raises(TaskFailures, match=r"1 of 5 .*#3 3: ValueError: three is bad") as info:
        pmap(_fails_on_three, range(5), retries=2, progress=False)
    assert info.value.results == [0, 1, 4, None, 16]
    assert [f.index for f in info.value.failures] == [3]
    assert "three is bad" in info.value.failures[0].traceback


def _first(row: pd.Series) -> float:
    return float(row.iloc[0])


def test_items_whose_name_is_not_a_string_are_mapped() -> None:
    """A pandas row's ``name`` is its index (an int): pmap raised a TypeError labelling it."""
    rows = [row for _, row in pd.DataFrame({"a": [1.0, 2.0, 3.0]}).iterrows()]
    assert pmap(_first, rows, progress=False) == [1.0, 2.0, 3.0]
    assert pmap(_first, [pd.Series([4.0], name="x")], progress=False) == [4.0]


def test_transient_failure_is_retried(tmp_path: Path) -> None:
    items = [(x, str(tmp_path)) for x in range(4)]
    with pytest.raises(TaskFailures):
        pmap(_flaky, items, retries=0, progress=False)
    for marker in tmp_path.iterdir():
        marker.unlink()
    assert pmap(_flaky, items, retries=1, progress=False) == [0, 1, 4, 9]


def test_dask_cluster_map_matches_local_and_reports_failures(tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert pmap(_square, range(7), client=client, progress=False) == [
            x * x for x in range(7)]
        with pytest.raises(TaskFailures) as info:
            pmap(_fails_on_three, range(5), client=client, retries=1, progress=False)
        assert info.value.results == [0, 1, 4, None, 16]
        items = [(x, str(tmp_path)) for x in range(4)]
        assert pmap(_flaky, items, client=client, retries=1, progress=False) == [0, 1, 4, 9]


def _rep_sum(model: torch.nn.Module, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    from advlens.features import representation

    return representation(model, x) * scale


def test_map_models_loads_configs_on_the_worker(isolated_data: str) -> None:
    from advlens.zoo import ModelConfig, load

    distributed = pytest.importorskip("dask.distributed")
    config = ModelConfig("mlp-s", epochs=1, n_train=64, n_test=32, batch_size=32)
    model = load(config, progress=False).model  # trained once into the shared cache
    x = torch.rand(5, 1, 16, 16)
    serial = {"m": _rep_sum(model, x, scale=2.0)}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        mapped = map_models(_rep_sum, {"m": config}, x, client=client, scale=2.0,
                            progress=False)
    # the worker thread may use another intra-op thread count (summation order): equal up to
    # float32 rounding, not necessarily bitwise
    assert list(mapped) == ["m"]
    torch.testing.assert_close(mapped["m"], serial["m"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        map_models(_rep_sum, {"m": model}, x, scale=2.0, progress=False)["m"], serial["m"],
        rtol=1e-6, atol=1e-6)


def test_map_models_per_model_arguments_reach_their_model_only() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    x = torch.rand(5, 1, 2, 2)
    mapped = map_models(_rep_sum, {"a": model, "b": model}, x, scale=2.0,
                        per_model={"b": {"scale": -1.0}}, progress=False)
    torch.testing.assert_close(mapped["a"], _rep_sum(model, x, 2.0))
    torch.testing.assert_close(mapped["b"], -_rep_sum(model, x))


@pytest.mark.slow
def test_killed_worker_loses_nothing(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    items = [(x, str(tmp_path)) for x in range(6)]
    with local_cluster(2) as client:
        # dask's own 64 KiB trim threshold made worker tensors page-fault afresh (1.4-3x slower)
        environ = client.run(lambda: {k: os.environ.get(k) for k in WORKER_MALLOC_ENV})
        assert all(env == {k: str(v) for k, v in WORKER_MALLOC_ENV.items()}
                   for env in environ.values()), environ
        assert pmap(_dies_once, items, client=client, retries=0, progress=False) == [
            x * x for x in range(6)]
    assert (tmp_path / "died-2").exists(), "the worker was not killed"


@pytest.mark.slow
def test_local_cluster_gives_each_gpu_its_own_worker() -> None:
    """gpus=: one worker process per listed GPU, each seeing only its own (CUDA_VISIBLE_DEVICES;
    before, every worker of a LocalCluster saw all GPUs and used GPU 0), with one torch thread
    and the allocator thresholds like the plain cluster's workers."""
    pytest.importorskip("dask.distributed")
    with local_cluster(gpus=[3, "GPU-5"]) as client:
        seen = client.run(lambda: (os.environ.get("CUDA_VISIBLE_DEVICES"),
                                   os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                                   __import__("torch").get_num_threads()))
    assert sorted(seen.values()) == sorted(
        (d, str(WORKER_MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"]), 1) for d in ("3", "GPU-5")), seen


@pytest.mark.parametrize("gpus, processes", [([], True), ([0, 0], True), ([0], False)])
def test_local_cluster_refuses_gpus_it_cannot_pin(gpus: list[int], processes: bool) -> None:
    pytest.importorskip("dask.distributed")
    with pytest.raises(ValueError, match="gpus must list distinct GPUs"), \
            local_cluster(gpus=gpus, processes=processes):
        pass


def test_unreachable_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLENS_SCHEDULER", "tcp://127.0.0.1:9")
    with pytest.raises(ConnectionError, match="ADVLENS_SCHEDULER"):
        pmap(_square, [1], progress=False, connect_timeout_s=0.5)


@pytest.mark.parametrize("address, reason", [("nonsense", "missing port number"),
                                              ("http://127.0.0.1:8786", "unknown address scheme")])
def test_a_malformed_scheduler_address_names_the_variable(
        monkeypatch: pytest.MonkeyPatch, address: str, reason: str) -> None:
    """dask's ValueError ('missing port number in address ...') named neither
    $ADVLENS_SCHEDULER, where the address came from, nor the form it should take."""
    monkeypatch.setenv("ADVLENS_SCHEDULER", address)
    with pytest.raises(ValueError, match=rf"\$ADVLENS_SCHEDULER = '{address}' is not a dask "
                                         rf"scheduler address \({reason}.*tcp://host:8786"):
        pmap(_square, [1], progress=False, connect_timeout_s=0.5)


def test_grid_point_kernels_do_not_send_their_work_to_the_grids_cluster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With $ADVLENS_SCHEDULER set, run_grid sends its points to the cluster and each point's
    kernel inherited the variable: its per-model pmap went to the same cluster, whose threads
    the points held, and waited for one forever. The kernels of a point run without it; a plain
    run's kernel still sees it."""
    from advlens import runner
    from notebook_writers import write_notebook

    distributed = pytest.importorskip("dask.distributed")
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder / "00_env.ipynb",
                   "import os, json, pathlib\npathlib.Path(out_dir).mkdir(exist_ok=True)\n"
                   "(pathlib.Path(out_dir) / 'env.json').write_text(json.dumps("
                   "os.environ.get('ADVLENS_SCHEDULER')))\n",
                   'preset = "laptop"\nout_dir = None\nx = 1\n')
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        monkeypatch.setenv("ADVLENS_SCHEDULER", cluster.scheduler_address)
        ((_, (point,)),) = runner.run_grid({"x": [2]}, "smoke", out=tmp_path / "grid",
                                           notebooks=folder)
        assert json.loads((point.out_dir / "env.json").read_text()) is None
        assert os.environ["ADVLENS_SCHEDULER"] == cluster.scheduler_address  # given back
        (plain,) = runner.run("smoke", out=tmp_path / "plain", notebooks=folder, progress=False)
        assert json.loads((plain.out_dir / "env.json").read_text()) == cluster.scheduler_address


def test_grid_reruns_on_a_cluster_keep_every_point(tmp_path: Path) -> None:
    """papermill batch reruns over a dask client: each point in its own folder, in grid order;
    a point that fails (twice) is reported while the others' runs are kept."""
    import json

    import nbformat

    from advlens import runner

    distributed = pytest.importorskip("dask.distributed")
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "laptop"\nout_dir = None\nx = 1\n')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import json, pathlib\nassert x != 3, 'x = 3 fails'\n"
        "pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
        "(pathlib.Path(out_dir) / 'r.json').write_text(json.dumps({'x': x}))\n")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, folder / "00_only.ipynb")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        done = runner.run_grid({"x": [1, 2]}, "smoke", out=tmp_path / "grid", client=client,
                               notebooks=folder)
        assert [point["x"] for point, _ in done] == [1, 2]
        assert [json.loads((runs[0].out_dir / "r.json").read_text())["x"]
                for _, runs in done] == [1, 2]
        with pytest.raises(TaskFailures) as info:
            runner.run_grid({"x": [3, 4]}, "smoke", out=tmp_path / "grid", client=client,
                            notebooks=folder)
    assert info.value.results[0] is None and info.value.results[1][0].notebook == "00_only.ipynb"
    assert "x = 3 fails" in info.value.failures[0].error



def test_tune_allocator_sets_glibc_and_the_childrens_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import platform
    import subprocess
    import sys

    for k in WORKER_MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    took = tune_allocator()
    assert took == (platform.libc_ver()[0] == "glibc")
    child = subprocess.run([sys.executable, "-c", "import os, json; print(json.dumps("
                            f"{{k: os.environ.get(k) for k in {list(WORKER_MALLOC_ENV)}}}))"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == json.dumps({k: str(v) for k, v in WORKER_MALLOC_ENV.items()})


def test_tune_allocator_on_worker_leaves_the_users_process_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a worker, and on the thread workers of an in-process cluster, nothing changes."""
    distributed = pytest.importorskip("dask.distributed")
    for k in WORKER_MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    tune_allocator_on_worker()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert pmap(_tuned_environ, [0], client=client, progress=False) == [{}]
    assert not any(k in os.environ for k in WORKER_MALLOC_ENV)


def _tuned_environ(_: int) -> dict[str, str]:
    tune_allocator_on_worker()
    return {k: os.environ[k] for k in WORKER_MALLOC_ENV if k in os.environ}


def _fails_for_negative_scale(model: torch.nn.Module, x: torch.Tensor,
                              scale: float = 1.0) -> torch.Tensor:
    if scale < 0:
        raise RuntimeError("boom")
    return _rep_sum(model, x, scale)


def test_map_models_names_the_model_that_failed() -> None:
    """The failure names its model ("beta"), not a cut-off repr of the task tuple."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    x = torch.rand(5, 1, 2, 2)
    with pytest.raises(TaskFailures, match=r"1 of 3 .*#1 beta: RuntimeError: boom") as info:
        map_models(_fails_for_negative_scale, {"alpha": model, "beta": model, "gamma": model},
                   x, per_model={"beta": {"scale": -1.0}}, progress=False)
    assert [f.label for f in info.value.failures] == ["beta"]
    with pytest.raises(ValueError, match="labels must name each"):
        pmap(_square, range(3), labels=["a"], progress=False)


def _scheduler_clients(dask_scheduler: Any) -> list[str]:
    return sorted(k for k in dask_scheduler.clients if k != "fire-and-forget")


def test_scheduler_from_the_environment_is_disconnected_after_each_map(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A client pmap opens from $ADVLENS_SCHEDULER is closed when it returns (one a call stayed
    connected until the process ended)."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as watcher:
        monkeypatch.setenv("ADVLENS_SCHEDULER", cluster.scheduler_address)
        before = watcher.run_on_scheduler(_scheduler_clients)
        for _ in range(3):
            assert pmap(_square, range(3), progress=False) == [0, 1, 4]
        with pytest.raises(TaskFailures):
            pmap(_fails_on_three, range(5), retries=0, progress=False)
        assert watcher.run_on_scheduler(_scheduler_clients) == before
        # a client given by the caller stays open
        assert pmap(_square, [2], client=watcher, progress=False) == [4]
        assert watcher.status == "running"


def test_a_config_sent_to_a_worker_is_loaded_never_trained_or_evaluated(
        isolated_data: str) -> None:
    """zoo.load on a worker trained a model missing from the cache there, and ran a robust
    evaluation its metadata lacked (then wrote it into the shared file): a worker only loads."""
    import json

    from advlens.parallel import _model_task
    from advlens.zoo import ModelConfig, cache, load

    config = ModelConfig("mlp-s", epochs=1, n_train=48, n_test=32, batch_size=16)
    with pytest.raises(FileNotFoundError, match=r"mlp-s.* is not in the zoo cache .*build it"):
        _model_task((_rep_sum, config, ((torch.rand(2, 1, 16, 16),), {}), {}))
    assert not cache.cache_paths(config).checkpoint.exists()  # nothing trained
    # built at another robust-evaluation radius than zoo.load's default
    model = load(config, progress=False, robust_eval_eps=0.25, robust_eval_n=16).model
    meta = cache.cache_paths(config).meta
    before = meta.read_text()
    x = torch.rand(3, 1, 16, 16)
    got = _model_task((_rep_sum, config, ((x,), {"scale": 2.0}), {}))
    torch.testing.assert_close(got, _rep_sum(model, x, scale=2.0))
    assert meta.read_text() == before and len(json.loads(before)["robust"]) == 1


def _odd_tensor(i: int) -> Any:
    return {"x": torch.full((3,), float(i), dtype=torch.bfloat16)} if i == 1 else torch.ones(3)


class _Unsendable:
    def __reduce__(self) -> Any:
        raise TypeError("this result cannot be pickled")


def _unpicklable_result(i: int) -> Any:
    if i == 2:
        return _Unsendable()  # a result nothing can send back
    if i == 1:
        return {"i": i, "f": lambda x: x + i}  # torch.save cannot, dask's cloudpickle can
    return i


@pytest.mark.slow
def test_results_dask_cannot_serialise_come_back_and_a_lost_one_keeps_the_others() -> None:
    """dask sends a tensor through NumPy, which has no bfloat16 (bf16 features; nor CUDA
    memory): fetching such a result raised a TypeError out of pmap, and every other result was
    lost (review: parallel). Results now travel as torch.save writes them."""
    pytest.importorskip("dask.distributed")
    with local_cluster(2) as client:
        got = pmap(_odd_tensor, range(3), client=client, progress=False)
        assert torch.equal(got[0], torch.ones(3)) and torch.equal(got[2], torch.ones(3))
        assert got[1]["x"].dtype == torch.bfloat16 and torch.equal(got[1]["x"],
                                                                   _odd_tensor(1)["x"])
        with pytest.raises(TaskFailures) as failed:
            pmap(_unpicklable_result, range(4), client=client, retries=0, progress=False)
    results = failed.value.results
    assert results[0] == 0 and results[1]["f"](2) == 3 and results[3] == 3
    assert [f.index for f in failed.value.failures] == [2]


class _CountsPickling:
    """A shared argument that records (a line in ``log``) each time it is pickled, as dask
    does to send it to a worker process."""

    def __init__(self, log: str) -> None:
        self.log = log

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        with open(self.log, "a") as f:
            f.write("pickled\n")
        return (_CountsPickling, (self.log,))


def _log_of(model: torch.nn.Module, shared: _CountsPickling, scale: float = 1.0) -> str:
    return f"{shared.log}:{scale}"


@pytest.mark.slow
def test_map_models_sends_the_shared_arguments_once_not_with_every_task(tmp_path: Path) -> None:
    """On a cluster the arguments every model shares (notebook 01's seed and target images:
    about 600 MB at the paper preset) go to the workers once, not inside each model's task;
    a model's own keywords still reach it alone, and the results are the serial ones."""
    pytest.importorskip("dask.distributed")
    log = tmp_path / "pickled.log"
    model = torch.nn.Linear(2, 2)
    models = {f"m{i}": model for i in range(6)}
    per_model = {"m4": {"scale": 4.0}}
    with local_cluster(2) as client:
        mapped = map_models(_log_of, models, _CountsPickling(str(log)), client=client,
                            per_model=per_model, progress=False)
    serial = map_models(_log_of, models, _CountsPickling(str(log)), per_model=per_model,
                        progress=False)
    assert mapped == serial == {name: f"{log}:{4.0 if name == 'm4' else 1.0}"
                                for name in models}
    # once, into the one task that carries it (inside every model's task: once per model, 6)
    assert log.read_text().count("pickled") == 1, log.read_text()


def _dies_first_time(model: torch.nn.Module, shared: torch.Tensor, mark: str) -> float:
    """Kills its worker process the first time any task runs (as an out-of-memory kill)."""
    if not Path(mark).exists():
        Path(mark).write_text(str(os.getpid()))
        os._exit(1)
    return float(shared.float().sum())


@pytest.mark.slow
def test_shared_arguments_survive_the_only_worker_dying(tmp_path: Path) -> None:
    """The shared arguments live in the graph, not only on a worker: when a one-worker cluster
    (one GPU) loses its worker, the nanny's new one reruns every task (scattered, they died
    with the worker and every model failed: "exceptions must derive from BaseException"). A
    bfloat16 argument goes as any task's does (dask's tensor serializer has no bfloat16)."""
    pytest.importorskip("dask.distributed")
    mark = tmp_path / "died"
    models = {"m0": torch.nn.Linear(2, 2), "m1": torch.nn.Linear(2, 2)}
    shared = torch.ones(3, dtype=torch.bfloat16)
    with local_cluster(1) as client:
        got = map_models(_dies_first_time, models, shared, client=client, mark=str(mark),
                         progress=False)
    assert mark.exists(), "the worker was not killed"
    assert got == {"m0": 3.0, "m1": 3.0}


@pytest.mark.slow
def test_map_models_waits_for_a_worker_to_join() -> None:
    """An adaptive or batch-queue cluster starts with no worker: the tasks wait for one (a
    scatter of the shared arguments timed out after the client's connect timeout)."""
    import threading

    distributed = pytest.importorskip("dask.distributed")
    models = {"m0": torch.nn.Linear(2, 2), "m1": torch.nn.Linear(2, 2)}
    with distributed.LocalCluster(n_workers=0, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster, timeout="1s") as client:
        later = threading.Timer(3.0, lambda: cluster.scale(1))
        later.start()
        try:
            got = map_models(_rep_sum, models, torch.ones(2, 1, 1, 2), client=client,
                             progress=False)
        finally:
            later.join()
    assert list(got) == ["m0", "m1"]
