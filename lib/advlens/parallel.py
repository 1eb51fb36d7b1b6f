"""Scale-out on Dask: a distributed map with retries, per-task failure reports and results in
input order; in-process by default.

- :func:`pmap` runs ``fn`` over items: in-process (a loop) when no client is given and
  ``$ADVLENS_SCHEDULER`` is unset; else on the ``dask.distributed`` client (a ``LocalCluster``
  for several cores or GPUs, or any scheduler address, e.g. a ``dask_jobqueue.SLURMCluster``).
  A failing task is retried ``retries`` times; one that still fails is reported in a
  :class:`TaskFailures` *after every other task has finished*, which carries their results
  (nothing is lost). A worker that dies mid-task (killed, out of memory) is replaced by its
  nanny and the scheduler reruns its tasks elsewhere (dask's ``allowed-failures``).
- :func:`map_models` is the per-model work of a notebook (evaluate, invert through, attack,
  extract features from one model) as ``{name: fn(model, ...)}`` in the models' order. A model
  given as a :class:`~advlens.zoo.ModelConfig` is loaded on the worker from the shared zoo
  cache (per-model file locks and atomic writes make the cache safe to share between workers).
- :func:`local_cluster` starts a ``LocalCluster`` with one torch thread per worker (one worker
  per GPU, each seeing only its own, with ``gpus=``).

Results merge deterministically: by input position, never by completion order.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
import pickle
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from torch import nn

T = TypeVar("T")
R = TypeVar("R")

SCHEDULER_ENV = "ADVLENS_SCHEDULER"


@dataclass(frozen=True)
class TaskError:
    """One task that failed after its retries: its position, a short label and the error."""

    index: int
    label: str
    error: str
    traceback: str


class TaskFailures(RuntimeError):
    """Some tasks failed (after retries). ``results`` holds every result in input order (None
    where the task failed); ``failures`` says which failed and why."""

    def __init__(self, results: list[Any], failures: list[TaskError]) -> None:
        self.results, self.failures = results, failures
        first = failures[0]
        super().__init__(f"{len(failures)} of {len(results)} task(s) failed after retries "
                         f"(first: #{first.index} {first.label}: {first.error}); the other "
                         "results are in .results, the errors in .failures.")


def _client(client: Any | None, timeout_s: float = 10.0) -> Any | None:
    if client is not None:
        return client
    address = os.environ.get(SCHEDULER_ENV)
    if not address:
        return None
    from dask.distributed import Client

    try:
        return Client(address, timeout=f"{timeout_s}s")
    except OSError as err:
        raise ConnectionError(f"cannot reach the dask scheduler at {address} (from "
                              f"${SCHEDULER_ENV}); start it or unset the variable.") from err
    except ValueError as err:  # dask's own message named neither the address's origin nor a fix
        raise ValueError(f"${SCHEDULER_ENV} = {address!r} is not a dask scheduler address "
                         f"({err}); give one such as tcp://host:8786, or unset the "
                         "variable.") from err


def _label(item: Any) -> str:
    name = getattr(item, "name", None)  # not always a str: a pandas row's is its index
    text = name if isinstance(name, str) and name else repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def _failure(index: int, label: str, err: BaseException) -> TaskError:
    return TaskError(index, label, f"{type(err).__name__}: {err}",
                     "".join(traceback.format_exception(err)))


def pmap(fn: Callable[[T], R], items: Iterable[T], *, client: Any | None = None,
         retries: int = 1, progress: bool = True, desc: str = "tasks",
         connect_timeout_s: float = 10.0, labels: Sequence[str] | None = None) -> list[R]:
    """``[fn(item) for item in items]``, in input order, on a dask cluster if ``client`` (or
    ``$ADVLENS_SCHEDULER``) is given, else in this process.

    Parameters
    ----------
    fn, items: picklable for a multi-process cluster (module-level functions).
    retries: extra attempts of a failing task (also in-process).
    labels: what a failure calls each task (default: the item's ``name``, else its repr).

    Returns
    -------
    The results in input order (from a cluster, their tensors on the CPU, any dtype). Raises
    :class:`TaskFailures` (with every other result) when tasks still fail after their retries
    or a result cannot be brought back.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0; got {retries}.")
    items = list(items)
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"labels must name each of the {len(items)} tasks; got {len(labels)}.")
    names = [_label(item) for item in items] if labels is None else [str(x) for x in labels]
    results: list[Any] = [None] * len(items)
    failures: list[TaskError] = []
    active = _client(client, connect_timeout_s)
    if active is None:
        for i, item in enumerate(tqdm(items, desc=desc, disable=not progress)):
            for attempt in range(retries + 1):
                try:
                    results[i] = fn(item)
                    break
                except Exception as err:  # noqa: BLE001 - reported below, others continue
                    if attempt == retries:
                        failures.append(_failure(i, names[i], err))
    else:
        from dask.distributed import as_completed

        # a client opened here from $ADVLENS_SCHEDULER is closed here: one a call stayed
        # connected to the scheduler (holding its futures) until the process ended
        with contextlib.closing(active) if client is None else contextlib.nullcontext():
            futures = active.map(functools.partial(_packed, fn), items, pure=False,
                                 retries=retries)
            index = {future.key: i for i, future in enumerate(futures)}
            for future in tqdm(as_completed(futures), total=len(futures), desc=desc,
                               disable=not progress):
                i = index[future.key]
                try:
                    if future.status != "finished":
                        # a cancelled task (an input lost with every worker that held it) has
                        # no exception of its own: raising None read "exceptions must derive
                        # from BaseException"
                        error = future.exception() if future.status == "error" else None
                        raise error or RuntimeError(f"the task was {future.status} by dask")
                    results[i] = _unpacked(future.result())
                except Exception as err:  # noqa: BLE001 - reported below, others kept
                    failures.append(_failure(i, names[i], err))
    if failures:
        raise TaskFailures(results, sorted(failures, key=lambda f: f.index))
    return results


@dataclass(frozen=True)
class _Packed:
    """A task's result on its way back: as torch.save wrote it (``data``), or as it is
    (``raw``) where torch.save cannot write it (a closure: dask's cloudpickle can)."""

    data: bytes | None
    raw: Any = None


def _packed(fn: Callable[[T], R], item: T) -> _Packed:
    """``fn(item)`` as torch.save writes it: dask's own serializer sends a tensor through
    NumPy, which has no bfloat16 (bf16 features) and no CUDA memory, and its failure to fetch
    one result lost every other (a TypeError out of pmap)."""
    import torch

    result = fn(item)
    buffer = io.BytesIO()
    try:
        torch.save(result, buffer)
    except (pickle.PicklingError, TypeError, AttributeError):  # e.g. a lambda inside it
        return _Packed(None, result)
    return _Packed(buffer.getvalue())


def _unpacked(packed: _Packed) -> Any:
    """A result of :func:`_packed`, its tensors on the CPU (a client need not have the
    worker's GPU). Written by this package's own workers, so read in full."""
    import torch

    if packed.data is None:
        return packed.raw
    return torch.load(io.BytesIO(packed.data), map_location="cpu", weights_only=False)


def _shared_bytes(data: bytes) -> bytes:
    """A task that returns its argument: the arguments every model shares enter the graph once,
    as this task's, and the model tasks depend on its result (see :func:`map_models`)."""
    return data


def _model_task(task: tuple[Any, Any, tuple[tuple, dict] | bytes, dict]) -> Any:
    from advlens.zoo.config import ModelConfig

    fn, model, shared, own = task
    if isinstance(shared, bytes):  # pickled once by map_models (what a task's arguments were)
        import cloudpickle

        shared = cloudpickle.loads(shared)
    args, kwargs = shared
    tune_allocator_on_worker()
    if isinstance(model, ModelConfig):  # loaded on the worker, from the shared zoo cache
        model = _cached_model(model)
    return fn(model, *args, **{**kwargs, **own})  # a model's own keywords win


def _cached_model(config: Any) -> nn.Module:
    """``config``'s weights from the shared zoo cache (published models: their weights file),
    in eval mode, with nothing trained or evaluated: ``zoo.load`` on a worker would train a
    missing model there, or run a robust evaluation the cache lacks (at its default settings)
    and write it into the metadata that other workers read."""
    from advlens.zoo import cache
    from advlens.zoo.builder import published_model

    if config.source != "trained":
        return published_model(config)
    found = cache.load_cached(config)
    if found is None:
        raise FileNotFoundError(f"{config.name} is not in the zoo cache "
                                f"({cache.cache_paths(config).checkpoint}); build it first "
                                "(advlens.zoo.build or load in the main process), then send "
                                "its config to the workers.")
    return found[0].eval()


def map_models(fn: Callable[..., R], models: Mapping[str, Any], *args: Any,
               client: Any | None = None, retries: int = 1, progress: bool = True,
               per_model: Mapping[str, Mapping[str, Any]] | None = None,
               **kwargs: Any) -> dict[str, R]:
    """``{name: fn(model, *args, **{**kwargs, **per_model[name]})}`` for every model, in the
    mapping's order, through :func:`pmap`. A model may be an ``nn.Module`` (pickled to the
    worker) or a :class:`~advlens.zoo.ModelConfig` (loaded there from the shared zoo cache:
    cheaper to send for large published models). ``per_model``: keyword arguments of one
    model only (e.g. the images it classifies correctly), by name; they travel with that
    model's task. On a cluster the arguments every model shares (``args``, ``kwargs``: 01's
    seed and target images) enter the task graph once, as one task's, not inside every model's
    task: each worker fetches them once (the same 100 MB for 8 models, two calls on a 2-worker
    ``LocalCluster``, the machine shared: 8.0 and 5.9 s inside each task, 5.1 and 2.2 s sent
    once). Not scattered: a scattered value dies
    with the workers holding it (a one-worker cluster that lost its worker lost every task),
    waits for no worker to join (an adaptive cluster starting empty timed out), and goes
    through dask's tensor serializer (no bfloat16, no CUDA memory); a task's result is
    recomputed elsewhere, and its arguments are pickled as any task's. A worker holds them
    twice while a task runs (the bytes, and the task's own unpickled copy), as it did when
    they came inside each task."""
    names = list(models)
    own = [dict((per_model or {}).get(name, {})) for name in names]
    active = _client(client)
    with contextlib.closing(active) if client is None and active is not None \
            else contextlib.nullcontext():
        shared: Any = (args, kwargs)
        if active is not None:
            import cloudpickle

            with warnings.catch_warnings():  # the graph is large once, on purpose (see above)
                warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
                shared = active.submit(_shared_bytes, cloudpickle.dumps(shared), pure=False)
        tasks = [(fn, models[name], shared, kw) for name, kw in zip(names, own, strict=True)]
        results = pmap(_model_task, tasks, client=active, retries=retries, progress=progress,
                       desc=getattr(fn, "__name__", "per model"), labels=names)
    return dict(zip(names, results, strict=True))


# dask's nanny starts every worker with MALLOC_TRIM_THRESHOLD_=65536, which switches off glibc's
# dynamic mmap threshold: each tensor over 128 KiB is then mmap'ed and page-faulted afresh, and
# small-batch attacks and inversions ran 1.4-3x slower on a worker than in the main process.
# These are the values glibc's dynamic thresholds grow to by themselves on 64-bit Linux.
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": 32 * 2**20, "MALLOC_TRIM_THRESHOLD_": 64 * 2**20}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def tune_allocator() -> bool:
    """Give this process (glibc's ``mallopt``) and the processes it starts later (papermill
    kernels, via the environment) the allocator thresholds of :data:`WORKER_MALLOC_ENV`.

    Returns
    -------
    Whether glibc took them (False off glibc, where nothing is changed but the environment).
    """
    os.environ.update({k: str(v) for k, v in WORKER_MALLOC_ENV.items()})
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, WORKER_MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"])
                    and libc.mallopt(_M_TRIM_THRESHOLD,
                                     WORKER_MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"]))
    except (OSError, AttributeError):
        return False


def tune_allocator_on_worker() -> None:
    """:func:`tune_allocator` when called inside a dask worker process that a nanny (or other
    parent) started; nothing in a process of its own, such as the user's, whose in-process
    cluster runs its workers as threads."""
    import multiprocessing

    if multiprocessing.parent_process() is None:
        return
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    tune_allocator()


def _one_torch_thread(dask_worker: Any = None) -> None:
    import torch

    torch.set_num_threads(1)
    tune_allocator_on_worker()  # a thread worker (processes=False) runs in the user's process


@contextlib.contextmanager
def local_cluster(n_workers: int = 2, *, processes: bool = True, threads_per_worker: int = 1,
                  gpus: Sequence[int | str] | None = None) -> Iterator[Any]:
    """A ``LocalCluster`` and its client (closed on exit), each worker with one torch thread
    per dask thread and glibc's allocator thresholds (:data:`WORKER_MALLOC_ENV`).

    Parameters
    ----------
    n_workers: worker processes (ignored with ``gpus``).
    processes: workers in processes (False: threads of this process; not with ``gpus``).
    threads_per_worker: dask threads (tasks at once) per worker.
    gpus: one worker per listed GPU (indices or UUIDs, e.g. ``range(torch.cuda.device_count())``),
        each process seeing only its own (``CUDA_VISIBLE_DEVICES``), so that ``cuda`` in a
        worker is its GPU; without it every worker would use GPU 0.

    Returns
    -------
    (yields) the ``dask.distributed.Client``.
    """
    import dask
    from dask.distributed import Client

    environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC_ENV.items()}
    with dask.config.set(environ), _cluster(n_workers, processes, threads_per_worker,
                                            gpus) as cluster, Client(cluster) as client:
        client.register_worker_callbacks(_one_torch_thread)
        yield client


def _cluster(n_workers: int, processes: bool, threads_per_worker: int,
             gpus: Sequence[int | str] | None) -> Any:
    from dask.distributed import LocalCluster

    if gpus is None:
        return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                            processes=processes, dashboard_address=None)
    from distributed import Nanny, Scheduler, SpecCluster

    devices = [str(g) for g in gpus]
    if not devices or len(set(devices)) != len(devices) or not processes:
        raise ValueError(f"gpus must list distinct GPUs (indices or UUIDs), one worker process "
                         f"each (processes=True); got gpus={list(gpus)}, "
                         f"processes={processes}.")
    workers = {f"gpu-{d}": {"cls": Nanny, "options": {
        "nthreads": threads_per_worker, "env": {"CUDA_VISIBLE_DEVICES": d}}} for d in devices}
    return SpecCluster(workers=workers, scheduler={
        "cls": Scheduler, "options": {"dashboard_address": None}})
