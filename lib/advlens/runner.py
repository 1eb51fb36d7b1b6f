"""Run the numbered notebooks with papermill, in order, one output folder per parameter set.

CLI::

    python -m advlens run [--preset smoke|laptop|paper] [--only 01 02] [--out DIR]
                          [-p KEY VALUE ...]

Python::

    from advlens import runner
    runner.run(preset="smoke", only=["01"], out="out/smoke", params={"seed": 1})
    runner.run_grid({"seed": [0, 1, 2]}, preset="laptop", only=["02"], out="out/seeds")
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import itertools
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from advlens import provenance
from advlens.data.sources import SOURCES
from advlens.io import LockHeld, atomic_write_json, config_hash, file_lock, json_text, read_json
from advlens.parallel import TaskError, TaskFailures
from advlens.paths import figures_dir, notebooks_dir
from advlens.presets import PRESET_NAMES, PRESETS, as_lists, check_knob, notebook_number
from advlens.zoo.paper import CHECKPOINTS_ENV, MANIFEST_ENV

_NUMBERED = re.compile(r"^(\d\d)_.+\.ipynb$")
RUN_RECORD = "run.json"  # per notebook folder: status of its last run
POINT_DONE = "done.json"  # per grid point: written when all its notebooks completed
_DONE_LOCK = ".done.json.lock"  # per grid point: held while done.json is read and rewritten
_RUN_LOCK = ".run.lock"  # per notebook folder: held by the process running a notebook into it


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""

    def __init__(self, notebook: str, cell: int | None, error: str, executed: Path) -> None:
        where = f"code cell In [{cell}]" if cell is not None else "an unknown cell"
        super().__init__(f"notebook {notebook} failed in {where}: {error} "
                         f"(executed copy with the traceback: {executed})")
        self.notebook, self.cell, self.error, self.executed = notebook, cell, error, executed


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: where its copy and outputs went and how long it took."""

    notebook: str
    executed: Path
    out_dir: Path
    wall_time_s: float


def notebook_numbers(only: Sequence[str | int]) -> list[str]:
    """Notebook numbers as two digits (``"1"`` and ``1`` -> ``"01"``); a bare string is refused:
    iterated, ``"02"`` would select notebooks 00 and 02."""
    if isinstance(only, str):
        raise TypeError(f"notebook numbers must be a list, e.g. [{only!r}]; got the string "
                        f"{only!r}.")
    return [notebook_number(o) for o in only]


def discover(only: Sequence[str] | None = None, directory: Path | None = None) -> list[Path]:
    """The numbered notebooks in order, optionally only those whose number is in ``only``."""
    directory = directory or notebooks_dir()
    found = sorted(p for p in directory.glob("*.ipynb") if _NUMBERED.match(p.name))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {directory}.")
    if not only:
        return found
    wanted = set(notebook_numbers(only))
    numbers = {_NUMBERED.match(p.name).group(1) for p in found}
    missing = sorted(wanted - numbers)
    if missing:
        raise ValueError(f"no notebook numbered {missing}; available: {sorted(numbers)}.")
    return [p for p in found if _NUMBERED.match(p.name).group(1) in wanted]


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and default values declared in a notebook's ``parameters`` cell."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path.name} must have exactly one cell tagged 'parameters' "
                         f"(found {len(cells)}).")
    declared: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                declared[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                declared[node.targets[0].id] = ast.unparse(node.value)
    return declared


# papermill's synchronous kernel client is not safe to run from two threads of one process at
# once (jupyter_core shares its event-loop runner): threaded dask workers take turns, worker
# processes (the default of parallel.local_cluster) still run side by side.
_EXECUTE_LOCK = threading.Lock()


# environment variables naming a file or folder (the caches of advlens.paths, the data sets,
# the paper zoo's checkpoints and manifest): the kernels inherit them but run in notebooks/
PATH_ENV = ("ADVLENS_HOME", "ADVLENS_DATA", "ADVLENS_ZOO", CHECKPOINTS_ENV, MANIFEST_ENV,
            *(source.env for source in SOURCES.values()))


@contextlib.contextmanager
def _absolute_path_env() -> Iterator[None]:
    """Inside: every relative :data:`PATH_ENV` variable made absolute against the caller's
    working directory (as a relative ``out`` is), so that a kernel started in the notebooks'
    folder reads the caller's caches and data, not a new zoo there; on exit: the values back."""
    given = {name: os.environ[name] for name in PATH_ENV if os.environ.get(name)}
    try:
        for name, value in given.items():
            os.environ[name] = os.path.abspath(os.path.expanduser(value))
        yield
    finally:
        os.environ.update(given)


# set while this thread runs a grid point (run_grid): its kernels map their per-model work in
# their own process, not on $ADVLENS_SCHEDULER's cluster
_GRID_POINT = threading.local()


@contextlib.contextmanager
def _grid_point_env() -> Iterator[None]:
    """Inside a grid point: ``$ADVLENS_SCHEDULER`` removed, so the kernels do not send their
    per-model work to the cluster whose worker threads the grid's points hold (with every thread
    running a point, those tasks waited for a free thread forever); on exit: the value back."""
    from advlens.parallel import SCHEDULER_ENV

    given = os.environ.pop(SCHEDULER_ENV, None) if getattr(_GRID_POINT, "active", False) else None
    try:
        yield
    finally:
        if given is not None:
            os.environ[SCHEDULER_ENV] = given


def _execute(path: Path, out_dir: Path, params: dict[str, Any], progress: bool) -> NotebookRun:
    with (_EXECUTE_LOCK, _absolute_path_env(), _grid_point_env(),
          _folder_lock(out_dir, path.name)):
        return _execute_unlocked(path, out_dir, params, progress)


@contextlib.contextmanager
def _folder_lock(out_dir: Path, notebook: str) -> Iterator[None]:
    """Inside: this process alone runs a notebook into ``out_dir``. Why: two runs into one
    folder (two terminals, two papermill batches) wrote each other's tables, and the folder's
    run.json then vouched for the mix (one run's knobs over the other's results)."""
    _make_folder(out_dir)
    try:
        with file_lock(out_dir / _RUN_LOCK, wait=False):
            yield
    except LockHeld:
        raise ValueError(f"another process is running a notebook into {out_dir} (it holds "
                         f"{out_dir / _RUN_LOCK}); wait for it to finish, or run {notebook} "
                         "into another folder (--out).") from None


def _check_folder(folder: Path) -> None:
    """A ValueError where a file stands where ``folder`` or one of its parents would be (mkdir
    gave its traceback); nothing is made."""
    for part in (folder, *folder.parents):
        try:
            if part.is_dir():
                return
            if part.exists() or part.is_symlink():
                raise ValueError(f"cannot make the output folder {folder}: {part} is a file, "
                                 "not a folder; move it away or choose another --out.")
        except OSError as err:  # (a folder this user may not enter)
            raise ValueError(f"cannot make the output folder {folder} ({err.strerror}: "
                             f"{err.filename}); choose another --out.") from None


def _make_folder(folder: Path) -> None:
    """``folder`` and its parents made, or a ValueError saying what is in the way (a file
    where a folder should be gave mkdir's traceback)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot make the output folder {folder} ({err.strerror}: "
                         f"{err.filename}); choose another --out.") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# the files :func:`advlens.plots.save_figure` / ``save_table`` write beside each record
_RECORD_SUFFIX = ".provenance.json"
_OUTPUT_SUFFIXES = (".png", ".pdf", ".csv")


def _saved_outputs(out_dir: Path) -> dict[Path, tuple[int, int]]:
    """The provenance records of the figures and tables in ``out_dir``, each with its inode and
    modification time (an atomic rewrite gives a record a new inode)."""
    found = {}
    for record in out_dir.glob(f"*{_RECORD_SUFFIX}"):
        stat = record.stat()
        found[record] = (stat.st_ino, stat.st_mtime_ns)
    return found


def _remove_stale(out_dir: Path, before: dict[Path, tuple[int, int]]) -> list[str]:
    """Delete the figures and tables of an earlier run that the run just completed did not
    write again (their record unchanged since ``before``), so the folder holds this run's
    outputs only; returns the names removed."""
    removed = []
    for record, stamp in sorted(before.items()):
        try:
            stat = record.stat()
        except FileNotFoundError:
            continue
        if (stat.st_ino, stat.st_mtime_ns) != stamp:
            continue  # rewritten by this run
        stem = record.name.removesuffix(_RECORD_SUFFIX)
        for path in [out_dir / f"{stem}{suffix}" for suffix in _OUTPUT_SUFFIXES] + [record]:
            if path.exists():
                path.unlink()
                removed.append(path.name)
    return removed


def _execute_unlocked(path: Path, out_dir: Path, params: dict[str, Any],
                      progress: bool) -> NotebookRun:
    import papermill
    from traitlets.config import Config

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    # run.json says whether the folder holds a finished run: anything but "completed" is an
    # interrupted or failed one (a folder without it is a legacy reference)
    record = {"status": "running", "notebook": path.name, "preset": params.get("preset"),
              "params": {k: v for k, v in params.items() if k != "preset"}, "started": _now()}
    atomic_write_json(out_dir / RUN_RECORD, record)
    earlier = _saved_outputs(out_dir)  # an earlier run's outputs, if the folder is reused
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="advlens-kernel-") as sockets:
            # The kernel talks over Unix sockets in a private folder: no TCP port is opened, so
            # there is no "running over TCP without encryption" warning (Windows keeps TCP).
            kernel = ({} if sys.platform == "win32" else
                      {"transport": "ipc", "ip": str(Path(sockets) / "kernel")})
            try:
                papermill.execute_notebook(
                    str(path), str(executed), parameters={**params, "out_dir": str(out_dir)},
                    cwd=str(path.parent), progress_bar=progress, kernel_name="python3",
                    config=Config({"KernelManager": kernel}),
                    # the kernel's own log (not the cells' output, which the notebook keeps):
                    # on Ctrl-C it printed ~20 lines of a ZMQ traceback from its closing
                    # sockets before our one-line message
                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
            except papermill.PapermillExecutionError as err:
                raise NotebookFailed(path.name, err.exec_count, f"{err.ename}: {err.evalue}",
                                     executed) from None
    except BaseException as err:
        status = "failed" if isinstance(err, Exception) else "interrupted"
        atomic_write_json(out_dir / RUN_RECORD, {**record, "status": status, "finished": _now(),
                                                 "error": f"{type(err).__name__}: {err}"})
        raise
    # an earlier run's figures and tables that this one did not write are not its results
    # (a figure per data set of another list, another preset's): removed once it completed
    stale = _remove_stale(out_dir, earlier)
    wall = time.perf_counter() - started
    outputs = sorted(p.name for p in out_dir.iterdir()
                     if p.name.endswith((*_OUTPUT_SUFFIXES, _RECORD_SUFFIX)))
    # the inputs as the notebook left them: one that trains models into the zoo (00, 01's
    # latent twins) changes the zoo's fingerprint, and taken at its start the next run reran it
    atomic_write_json(out_dir / RUN_RECORD, {**record, **_run_inputs(), "status": "completed",
                                             "finished": _now(),
                                             "wall_time_s": wall, "outputs": outputs,
                                             **({"removed_stale": stale} if stale else {})})
    return NotebookRun(path.name, executed, out_dir, wall)


def _run_inputs() -> dict[str, Any]:
    """What a notebook's results depend on besides its knobs: the code (the commit, with a hash
    of uncommitted changes to the library and notebooks: :func:`provenance.git_commit`), the
    installed versions that shape the numbers, the device asked for, the data and cache folders
    the kernel reads (:data:`PATH_ENV`, made absolute) and which weights the zoo cache holds
    (:func:`_zoo_fingerprint`: a cache copied over from elsewhere under the same path)."""
    return {"code": provenance.git_commit(),
            "versions": provenance.package_versions(),
            "device": os.environ.get("ADVLENS_DEVICE"),
            "environment": {name: os.path.abspath(os.path.expanduser(os.environ[name]))
                            for name in PATH_ENV if os.environ.get(name)},
            "zoo": _zoo_fingerprint()}


def _zoo_fingerprint() -> dict[str, str]:
    """Each model of the zoo cache, by its metadata file's name, with its weights' SHA-256 (the
    file records it): the same folder holding other weights is another input. A run compares
    only the models its own record lists (:func:`_same_zoo`)."""
    from advlens.zoo.cache import cache_root

    found = {}
    for meta in sorted(cache_root().glob("*.json")):
        try:
            found[meta.name] = str(read_json(meta).get("sha256"))
        except (OSError, ValueError, AttributeError):
            found[meta.name] = "unreadable"
    return found


def _same_zoo(recorded: Any, now: Mapping[str, str]) -> bool:
    """Whether every model the zoo held when a run completed (``recorded``) holds the same
    weights ``now``. Models added since are not ones it read: a later notebook that trains
    models into the zoo (02's families, 04's sources) made every earlier one rerun."""
    return isinstance(recorded, dict) and all(now.get(name) == sha256
                                              for name, sha256 in recorded.items())


def completed_before(path: Path, out_dir: Path, params: Mapping[str, Any]) -> NotebookRun | None:
    """The earlier run of notebook ``path`` in ``out_dir`` if its ``run.json`` says it completed
    with the same preset and knobs (``params``), the same code and the same data and cache
    folders (:func:`_run_inputs`), and its executed notebook is still there; else None. Never
    with code of unknown version (no git): then nothing tells that the library is the same."""
    record = provenance.run_record(out_dir)
    inputs = _run_inputs()
    if (record is None or record.get("status") != provenance.COMPLETED
            or inputs["code"] == "unknown" or not (out_dir / path.name).is_file()):
        return None
    # every figure and table the run wrote still there (a deleted one: rerun)
    outputs = record.get("outputs")
    if not isinstance(outputs, list) or not all((out_dir / str(name)).is_file()
                                                for name in outputs):
        return None
    zoo = inputs.pop("zoo")
    wanted = {"notebook": path.name, "preset": params.get("preset"),
              "params": {k: v for k, v in params.items() if k != "preset"}, **inputs}
    # compared as JSON: a tuple knob reads back from run.json as a list
    if ({k: record.get(k) for k in wanted} != json.loads(json_text(wanted))
            or not _same_zoo(record.get("zoo"), zoo)):
        return None
    return NotebookRun(path.name, out_dir / path.name, out_dir,
                       float(record.get("wall_time_s", float("nan"))))


# given by run()'s own arguments (--preset, --out), never through params
_RESERVED = {"preset": "--preset (Python: run(preset=...))",
             "out_dir": "--out (Python: run(out=...))"}


# knobs naming a folder (notebook 05's sweep_dir), and the keys of a loader's keyword knobs
# (data_kw, cifar_kw, stl10_kw) naming a folder or file: given to run/run_grid, resolved against
# the caller's working directory ($VARIABLES are left to the loaders, which expand them)
FOLDER_KNOBS = frozenset({"sweep_dir"})
PATH_KEYS = frozenset({"root", "path"})


def _callers_path(value: str) -> str:
    """``value`` as an absolute path against the caller's working directory, unless it starts
    with a ``$VARIABLE`` (expanded later, by the loader)."""
    return value if value.startswith("$") else str(Path(value).expanduser().resolve())


def _callers_paths(name: str, value: Any) -> Any:
    """A folder knob, or a ``*_kw`` knob's folder / file entries, made the caller's."""
    if name in FOLDER_KNOBS and isinstance(value, str):
        return _callers_path(value)
    if name.endswith("_kw") and isinstance(value, dict):
        return {k: _callers_path(v) if k in PATH_KEYS and isinstance(v, str) else v
                for k, v in value.items()}
    return value


def _prepare(preset: str, only: Sequence[str] | None, params: Mapping[str, Any],
             notebooks: Path | None) -> dict[Path, dict[str, Any]]:
    """The selected notebooks, each with the checked parameters it declares; raises before
    anything runs on an unknown preset, a reserved or undeclared name or a bad value."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}.")
    reserved = [name for name in params if name in _RESERVED]
    if reserved:
        raise ValueError("; ".join(f"parameter {name!r} cannot be set with -p/params: use "
                                   f"{_RESERVED[name]}" for name in reserved) + ".")
    paths = discover(only, notebooks)
    declared = {p: notebook_parameters(p) for p in paths}
    unused = sorted(set(params) - set().union(*map(set, declared.values())))
    if unused:
        knobs = sorted(set().union(*map(set, declared.values())))
        hints = [f"{name!r}" + (f" (did you mean {near[0]!r}?)" if (
            near := difflib.get_close_matches(name, knobs, n=1)) else "") for name in unused]
        raise ValueError(f"parameter(s) {', '.join(hints)} are not declared by any selected "
                         f"notebook; their knobs: {knobs}.")
    prepared = {}
    for path in paths:  # every override checked before anything runs
        number = _NUMBERED.match(path.name).group(1)
        mine = {k: as_lists(v) for k, v in params.items() if k in declared[path]}
        if number in PRESETS:
            mine = {k: check_knob(number, k, v) for k, v in mine.items()}
        # a folder knob or a loader's path is the caller's: the notebooks run in notebooks/,
        # where a relative one would land (as a relative out would, see run)
        mine = {k: _callers_paths(k, v) for k, v in mine.items()}
        prepared[path] = mine
    return prepared


def run(preset: str = "laptop", *, only: Sequence[str] | None = None,
        out: str | Path | None = None, params: Mapping[str, Any] | None = None,
        progress: bool = True, notebooks: Path | None = None,
        resume: bool = False) -> list[NotebookRun]:
    """Execute the numbered notebooks in order; outputs go to ``out/<notebook stem>/``.

    ``params`` are passed to every notebook that declares them in its parameters cell; a
    parameter that no selected notebook declares is an error (a typo would otherwise be ignored),
    and so are ``preset`` and ``out_dir`` (given by ``preset`` and ``out``). Each notebook's
    folder gets a ``run.json``: ``status`` running, then completed, failed or interrupted. A
    folder may be reused: once a notebook completes, the figures and tables (with their
    provenance records) that an earlier run left there and this one did not write again are
    removed and listed in ``run.json`` (``removed_stale``); other files stay. While a notebook
    runs, its folder is locked: another process running a notebook into it is refused (two runs
    mixed their tables). The notebooks run in their own folder: a relative ``out`` and relative
    paths in the ``$ADVLENS_*`` variables (:data:`PATH_ENV`: the data and zoo caches, the data
    sets) are the caller's.

    ``resume``: a notebook whose folder holds a completed run of the same preset, knobs, code
    and data folders (:func:`completed_before`) is not run again (the command line's default:
    an interrupted ``advlens run`` rerun goes on at the notebook that stopped it; ``--force``
    reruns them all).
    """
    mine_by_path = _prepare(preset, only, dict(params or {}), notebooks)
    paths = list(mine_by_path)
    clear = getattr(provenance.git_commit, "cache_clear", None)
    if resume and clear is not None:  # the code as it is now (cached per process: edited
        clear()  # since, in a Jupyter session, resume kept notebooks of the code before)
    # absolute: the notebooks run in notebooks/, so a relative out_dir would land there
    out_root = Path(out).resolve() if out is not None else figures_dir()
    # before any notebook runs: a file in the way is the caller's to fix, not a traceback
    for path in paths:
        _check_folder(out_root / path.stem)
    runs = []
    for i, path in enumerate(paths, 1):
        mine = mine_by_path[path]
        given = {"preset": preset, **mine}
        before = completed_before(path, out_root / path.stem, given) if resume else None
        if before is not None:
            print(f"[{i}/{len(paths)}] {path.name}: completed before in {before.out_dir} with "
                  "the same preset, knobs and code (run.json); kept (--force reruns it)",
                  file=sys.stderr, flush=True)
            runs.append(before)
            continue
        print(f"[{i}/{len(paths)}] {path.name} (preset={preset})", file=sys.stderr, flush=True)
        result = _execute(path, out_root / path.stem, given, progress)
        print(f"[{i}/{len(paths)}] {path.name} done in {result.wall_time_s:.1f} s",
              file=sys.stderr, flush=True)
        runs.append(result)
    return runs


def grid_folder(params: Mapping[str, Any]) -> str:
    """A readable, collision-free folder name for one parameter set."""
    readable = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    readable = re.sub(r"[^A-Za-z0-9=,._-]+", "_", readable)[:80]
    return f"{readable}-{config_hash(dict(params), 8)}"


class GridFailed(TaskFailures):
    """Some grid points failed after every point ran; the message lists their folders and errors.

    ``results`` holds every point's runs in grid order (None where it failed), ``failures`` the
    errors, ``folders`` the failed points' folders.
    """

    def __init__(self, results: list[Any], failures: list[TaskError],
                 folders: list[Path]) -> None:
        super().__init__(results, failures)
        self.folders = [folders[f.index] for f in failures]
        listed = "; ".join(f"{folders[f.index]}: {f.error}" for f in failures)
        RuntimeError.__init__(self, f"{len(failures)} of {len(results)} grid point(s) failed: "
                                    f"{listed}. The other points completed; rerunning the same "
                                    "grid runs only the points that did not.")


def _read_done(folder: Path) -> dict[str, dict[str, Any]]:
    """The completed notebooks of a grid point, by name (empty if none or unreadable)."""
    marker = folder / POINT_DONE
    try:
        return dict(read_json(marker)["runs"]) if marker.exists() else {}
    except (ValueError, KeyError, TypeError):
        return {}  # a damaged marker: the point reruns


def _write_done(folder: Path, record: dict[str, Any], runs: dict[str, dict[str, Any]]) -> None:
    if runs:
        atomic_write_json(folder / POINT_DONE, {**record, "runs": runs, "finished": _now()})
    else:
        (folder / POINT_DONE).unlink(missing_ok=True)


def _update_done(folder: Path, record: dict[str, Any] | None,
                 add: Mapping[str, dict[str, Any]] | None = None,
                 drop: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Record the runs ``add`` as completed and forget the notebooks ``drop`` in ``folder``'s
    ``done.json`` (``record``: its preset and params; None: those it holds), read again under
    a lock: processes running notebooks of one point at once (a batch split by ``only``)
    each rewrote the runs it had read before its notebook ran, dropping the others'. Returns
    the runs recorded."""
    if not folder.is_dir():  # a point never run: nothing recorded
        return {}
    with file_lock(folder / _DONE_LOCK):
        done = _read_done(folder)
        if not any(name in done for name in drop) and not add:
            return done
        if record is None:
            record = {k: v for k, v in read_json(folder / POINT_DONE).items()
                      if k not in ("runs", "finished")}
        done = {k: v for k, v in {**done, **(add or {})}.items() if k not in drop}
        _write_done(folder, record, done)
    return done


def forget_done(folder: str | Path, names: Sequence[str]) -> None:
    """Drop the notebooks ``names`` (file names) from the grid point ``folder``'s ``done.json``,
    so that the next :func:`run_grid` reruns them even without ``force``."""
    _update_done(Path(folder), None, drop=names)


def _outputs_intact(record: dict[str, Any]) -> bool:
    """Whether a run done.json records as completed still has its outputs: its folder, whose
    ``run.json`` (if any: older runs wrote none) says completed. A folder deleted since was
    skipped on resume, and the sweep's summary counted one seed fewer without a word."""
    try:
        out_dir = Path(record["out_dir"])
    except (KeyError, TypeError):
        return False
    return out_dir.is_dir() and provenance.run_status(out_dir) in (None, provenance.COMPLETED)


def _as_run(record: dict[str, Any]) -> NotebookRun:
    return NotebookRun(record["notebook"], Path(record["executed"]), Path(record["out_dir"]),
                       float(record["wall_time_s"]))


def _grid_point(task: tuple[str, Sequence[str], Path, dict[str, Any], bool,
                            Path | None]) -> list[NotebookRun]:
    import asyncio

    from advlens.parallel import tune_allocator_on_worker

    preset, names, folder, point, progress, notebooks = task
    tune_allocator_on_worker()  # the kernels inherit the environment
    # a worker thread may inherit (or share) an event loop that is already running;
    # papermill's synchronous client needs a loop of its own
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runs: list[NotebookRun] = []
    _GRID_POINT.active = True
    try:
        # one notebook at a time, each recorded in done.json as it completes: a point stopped
        # by a later notebook (failed, killed) reruns only the notebooks that did not complete,
        # here too when dask retries the task
        done = _read_done(folder)
        for name in names:
            if name in done:
                continue
            number = _NUMBERED.match(name).group(1)
            # the knobs the notebooks of this number declare (run_grid checked the point against
            # all of them; run passes each notebook its own); a folder may hold two of a number,
            # which run runs together
            declared = set().union(*map(notebook_parameters, discover([number], notebooks)))
            ran = run(preset, only=[number], out=folder, progress=progress, notebooks=notebooks,
                      params={k: v for k, v in point.items() if k in declared})
            runs += ran
            done = _update_done(folder, {"preset": preset, "params": point}, add={
                r.notebook: {"notebook": r.notebook, "executed": str(r.executed),
                             "out_dir": str(r.out_dir), "wall_time_s": r.wall_time_s}
                for r in ran})
    finally:
        _GRID_POINT.active = False
        asyncio.set_event_loop(None)
        loop.close()
    return runs


def run_grid(grid: Mapping[str, Sequence[Any]], preset: str = "laptop", *,
             only: Sequence[str] | None = None, out: str | Path = "out/grid",
             progress: bool = False, notebooks: Path | None = None,
             client: Any | None = None,
             force: bool = False) -> list[tuple[dict[str, Any], list[NotebookRun]]]:
    """Run the notebooks once per point of the Cartesian ``grid`` (knob -> list of values), each
    point in its own folder under ``out``.

    Every point's knobs are checked before anything runs or any folder is made. Each folder
    holds ``params.json``; a folder already holding a different parameter set is never
    overwritten (FileExistsError). Each notebook of a point is recorded in ``done.json`` as it
    completes; when the grid runs again a point runs only its notebooks not recorded there
    (none: it is skipped and its recorded runs are returned) unless ``force`` reruns them all,
    so an interrupted or failed point resumes at the notebook that stopped it. A point listed
    twice (a knob repeating a value) runs once and is returned at each place. A failing point
    does not stop the others: every point runs, then :class:`GridFailed` lists the failed
    points. ``client`` (or ``$ADVLENS_SCHEDULER``): run the points on a dask cluster
    (:func:`advlens.parallel.pmap`, a failing point is retried once there); the points are the
    unit of parallel work: their kernels run without ``$ADVLENS_SCHEDULER``.
    """
    # a 1-D array (NumPy's, torch's: np.arange(3)) is the list of its items, as Python numbers;
    # the error below would advise wrapping it whole, which makes one point holding the array
    grid = {key: values.tolist() if getattr(values, "ndim", None) == 1
            and callable(getattr(values, "tolist", None)) else values
            for key, values in grid.items()}
    for key, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            raise TypeError(f"grid[{key!r}] = {values!r}: the values of a grid knob must be a "
                            f"list, e.g. {{{key!r}: [{values!r}]}} for one value.")
        if not values:
            raise ValueError(f"grid[{key!r}] is empty; give at least one value.")
    keys = list(grid)
    points, requested = [], {}
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        paths = _prepare(preset, only, point, notebooks)  # raises before anything is written
        folder = Path(out) / grid_folder({"preset": preset, **point})
        record = {"preset": preset, "params": point}
        stamp = folder / "params.json"
        # compare as JSON: a tuple in the grid reads back from params.json as a list
        if stamp.exists() and read_json(stamp) != json.loads(json_text(record)):
            raise FileExistsError(f"{folder} holds another parameter set; choose another --out.")
        points.append((point, folder, record))
        requested[folder] = [p.name for p in paths]
    results: list[list[NotebookRun] | None] = [None] * len(points)
    tasks, where = [], []
    # a point listed twice (a knob repeating a value) runs once: on dask, its two tasks ran
    # side by side in the one folder
    first: dict[Path, int] = {}
    for i, (point, folder, record) in enumerate(points):
        if first.setdefault(folder, i) != i:
            continue
        atomic_write_json(folder / "params.json", record)
        done = _read_done(folder)
        todo = [name for name in requested[folder]
                if force or name not in done or not _outputs_intact(done[name])]
        if not todo:
            results[i] = [_as_run(done[name]) for name in requested[folder]]
            print(f"{folder.name}: completed before (done.json); skipped (force=True reruns it)",
                  file=sys.stderr, flush=True)
            continue
        # the notebooks about to run are no longer done until they complete again
        _update_done(folder, record, drop=todo)
        tasks.append((preset, todo, folder, point, progress, notebooks))
        where.append(i)
    from advlens.parallel import SCHEDULER_ENV, pmap

    failures: list[TaskError] = []
    if client is None and not os.environ.get(SCHEDULER_ENV):  # in this process
        for j, task in enumerate(tasks):
            try:
                results[where[j]] = _grid_point(task)
            except Exception as err:  # noqa: BLE001 - the other points still run; raised below
                failures.append(TaskError(where[j], task[2].name, f"{type(err).__name__}: {err}",
                                          "".join(traceback.format_exception(err))))
    else:
        try:
            ran = pmap(_grid_point, tasks, client=client, progress=False)
        except TaskFailures as err:
            ran = err.results
            failures = [TaskError(where[f.index], tasks[f.index][2].name, f.error, f.traceback)
                        for f in err.failures]
        for j, runs in enumerate(ran):
            results[where[j]] = runs
    for i in where:  # a resumed point: the runs recorded before too, in notebook order
        if results[i] is not None:
            folder = points[i][1]
            done = _read_done(folder)
            results[i] = [_as_run(done[name]) for name in requested[folder]
                          if name in done]
    results = [results[first[folder]] for _, folder, _ in points]
    if failures:
        raise GridFailed(results, failures, [folder for _, folder, _ in points])
    return [(point, runs) for (point, _, _), runs in zip(points, results, strict=True)]


def _parse_value(text: str) -> Any:
    """A ``-p`` value as a Python literal (tuples as lists: papermill would inject a tuple's
    string), else the text itself."""
    try:
        return as_lists(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m advlens``."""
    parser = argparse.ArgumentParser(prog="python -m advlens",
                                     description="Run advlens notebooks with papermill; verify "
                                                 "a run; build the book.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute the numbered notebooks in order")
    run_p.add_argument("--preset", default="laptop", choices=PRESET_NAMES,
                       help="the knobs' scale (default: laptop)")
    run_p.add_argument("--only", nargs="+", metavar="NN",
                       help="notebook numbers, e.g. 01 02 (default: every numbered notebook)")
    run_p.add_argument("--out", default=None, help="output folder (default: figures/)")
    run_p.add_argument("-p", "--param", nargs=2, action="append", default=[],
                       metavar=("KEY", "VALUE"),
                       help="set a knob of the notebooks' parameters cells (VALUE read as a "
                            "Python literal, else as text); repeatable")
    run_p.add_argument("--no-progress", action="store_true", help="hide the cell progress bar")
    run_p.add_argument("--force", action="store_true",
                       help="rerun every notebook; by default one whose folder holds a run "
                            "completed with the same preset, knobs, code and data folders is "
                            "kept (an interrupted run resumes)")
    from advlens import book, verify  # subcommands that live in their own modules
    verify.add_arguments(sub.add_parser("verify", help="compare a run with figures/"))
    book.add_readme_arguments(sub.add_parser("readme", help="regenerate README's findings"))
    book.add_arguments(sub.add_parser("book", help="build the static HTML book"))
    args = parser.parse_args(argv)
    if args.command != "run":
        try:
            return {"verify": verify.command, "readme": book.readme_command,
                    "book": book.command}[args.command](args)
        except (ValueError, FileNotFoundError) as err:
            print(f"advlens: {err}", file=sys.stderr)
            return 1
    repeated = sorted({k for k, _ in args.param if [p[0] for p in args.param].count(k) > 1})
    if repeated:  # (the last one silently won)
        print(f"advlens: knob(s) {', '.join(repeated)} given more than once with -p; give each "
              "once.", file=sys.stderr)
        return 1
    params = {k: _parse_value(v) for k, v in args.param}
    try:
        with sigterm_as_interrupt():
            run(args.preset, only=args.only, out=args.out, params=params,
                progress=not args.no_progress, resume=not args.force)
    except (NotebookFailed, ValueError, TypeError, FileNotFoundError) as err:
        print(f"advlens: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # one line, not papermill's and zmq's tracebacks
        print("advlens: interrupted; rerun the same command to resume (finished notebooks are "
              "kept)", file=sys.stderr)
        return 130
    return 0


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside: SIGTERM (a timeout, kill, Slurm, a cancelled CI job) raises KeyboardInterrupt as
    Ctrl-C does, so a notebook's run.json says interrupted and its kernel and connection files
    go (it stayed "running", files left). Only the main thread may set a handler: called from
    another thread it sets none."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if in_main else None
    try:
        yield
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
