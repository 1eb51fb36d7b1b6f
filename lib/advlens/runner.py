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
import itertools
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advlens.io import atomic_write_json, config_hash, json_text, read_json
from advlens.paths import figures_dir, notebooks_dir
from advlens.presets import PRESET_NAMES, PRESETS, check_knob

_NUMBERED = re.compile(r"^(\d\d)_.+\.ipynb$")


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


def discover(only: Sequence[str] | None = None, directory: Path | None = None) -> list[Path]:
    """The numbered notebooks in order, optionally only those whose number is in ``only``."""
    directory = directory or notebooks_dir()
    found = sorted(p for p in directory.glob("*.ipynb") if _NUMBERED.match(p.name))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {directory}.")
    if not only:
        return found
    wanted = {str(o).zfill(2) for o in only}
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


def _execute(path: Path, out_dir: Path, params: dict[str, Any], progress: bool) -> NotebookRun:
    with _EXECUTE_LOCK:
        return _execute_unlocked(path, out_dir, params, progress)


def _execute_unlocked(path: Path, out_dir: Path, params: dict[str, Any],
                      progress: bool) -> NotebookRun:
    import papermill
    from traitlets.config import Config

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="advlens-kernel-") as sockets:
        # The kernel talks over Unix sockets in a private folder: no TCP port is opened, so
        # there is no "running over TCP without encryption" warning (Windows keeps TCP).
        kernel = ({} if sys.platform == "win32" else
                  {"transport": "ipc", "ip": str(Path(sockets) / "kernel")})
        try:
            papermill.execute_notebook(
                str(path), str(executed), parameters={**params, "out_dir": str(out_dir)},
                cwd=str(path.parent), progress_bar=progress, kernel_name="python3",
                config=Config({"KernelManager": kernel}))
        except papermill.PapermillExecutionError as err:
            raise NotebookFailed(path.name, err.exec_count, f"{err.ename}: {err.evalue}",
                                 executed) from None
    return NotebookRun(path.name, executed, out_dir, time.perf_counter() - started)


def run(preset: str = "laptop", *, only: Sequence[str] | None = None,
        out: str | Path | None = None, params: Mapping[str, Any] | None = None,
        progress: bool = True, notebooks: Path | None = None) -> list[NotebookRun]:
    """Execute the numbered notebooks in order; outputs go to ``out/<notebook stem>/``.

    ``params`` are passed to every notebook that declares them in its parameters cell; a
    parameter that no selected notebook declares is an error (a typo would otherwise be ignored).
    """
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}.")
    paths = discover(only, notebooks)
    # absolute: the notebooks run in notebooks/, so a relative out_dir would land there
    out_root = Path(out).resolve() if out is not None else figures_dir()
    params = dict(params or {})
    declared = {p: notebook_parameters(p) for p in paths}
    unused = sorted(set(params) - set().union(*map(set, declared.values())))
    if unused:
        raise ValueError(f"parameter(s) {unused} are not declared by any selected notebook; "
                         f"see the notebooks' parameters cells.")
    mine_by_path = {p: {k: v for k, v in params.items() if k in declared[p]} for p in paths}
    for path, mine in mine_by_path.items():  # every override checked before anything runs
        number = _NUMBERED.match(path.name).group(1)
        if number in PRESETS:
            for name, value in mine.items():
                check_knob(number, name, value)
    runs = []
    for i, path in enumerate(paths, 1):
        mine = mine_by_path[path]
        print(f"[{i}/{len(paths)}] {path.name} (preset={preset})", file=sys.stderr, flush=True)
        result = _execute(path, out_root / path.stem, {"preset": preset, **mine}, progress)
        print(f"[{i}/{len(paths)}] {path.name} done in {result.wall_time_s:.1f} s",
              file=sys.stderr, flush=True)
        runs.append(result)
    return runs


def grid_folder(params: Mapping[str, Any]) -> str:
    """A readable, collision-free folder name for one parameter set."""
    readable = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    readable = re.sub(r"[^A-Za-z0-9=,._-]+", "_", readable)[:80]
    return f"{readable}-{config_hash(dict(params), 8)}"


def _grid_point(task: tuple[str, Sequence[str] | None, Path, dict[str, Any], bool,
                            Path | None]) -> list[NotebookRun]:
    import asyncio

    from advlens.parallel import tune_allocator_on_worker

    preset, only, folder, point, progress, notebooks = task
    tune_allocator_on_worker()  # the kernels inherit the environment
    # a worker thread may inherit (or share) an event loop that is already running;
    # papermill's synchronous client needs a loop of its own
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return run(preset, only=only, out=folder, params=point, progress=progress,
                   notebooks=notebooks)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def run_grid(grid: Mapping[str, Sequence[Any]], preset: str = "laptop", *,
             only: Sequence[str] | None = None, out: str | Path = "out/grid",
             progress: bool = False, notebooks: Path | None = None,
             client: Any | None = None) -> list[tuple[dict[str, Any], list[NotebookRun]]]:
    """Run the notebooks once per point of the Cartesian ``grid``, each in its own folder.

    Each folder holds ``params.json``; a folder already holding a different parameter set is
    never overwritten (an error is raised instead). ``client`` (or ``$ADVLENS_SCHEDULER``): run
    the points on a dask cluster (:func:`advlens.parallel.pmap`: a failing point is retried
    once, then reported in a ``TaskFailures`` that keeps the other points' runs).
    """
    keys = list(grid)
    results = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        folder = Path(out) / grid_folder({"preset": preset, **point})
        stamp = folder / "params.json"
        record = {"preset": preset, "params": point}
        # compare as JSON: a tuple in the grid reads back from params.json as a list
        if stamp.exists() and read_json(stamp) != json.loads(json_text(record)):
            raise FileExistsError(f"{folder} holds another parameter set; choose another --out.")
        atomic_write_json(stamp, record)
        results.append((point, (preset, only, folder, point, progress, notebooks)))
    from advlens.parallel import SCHEDULER_ENV, pmap

    tasks = [task for _, task in results]
    if client is None and not os.environ.get(SCHEDULER_ENV):  # in this process, errors as raised
        runs = [_grid_point(task) for task in tasks]
    else:
        runs = pmap(_grid_point, tasks, client=client, progress=False)
    return [(point, done) for (point, _), done in zip(results, runs, strict=True)]


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m advlens``."""
    parser = argparse.ArgumentParser(prog="python -m advlens",
                                     description="Run advlens notebooks with papermill; verify "
                                                 "a run; build the book.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute the numbered notebooks in order")
    run_p.add_argument("--preset", default="laptop", choices=PRESET_NAMES)
    run_p.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers, e.g. 01 02")
    run_p.add_argument("--out", default=None, help="output folder (default: figures/)")
    run_p.add_argument("-p", "--param", nargs=2, action="append", default=[],
                       metavar=("KEY", "VALUE"), help="set a notebook parameter")
    run_p.add_argument("--no-progress", action="store_true", help="hide the cell progress bar")
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
    params = {k: _parse_value(v) for k, v in args.param}
    try:
        run(args.preset, only=args.only, out=args.out, params=params,
            progress=not args.no_progress)
    except (NotebookFailed, ValueError, TypeError, FileNotFoundError) as err:
        print(f"advlens: {err}", file=sys.stderr)
        return 1
    return 0
