"""The runner's inputs and records: -p values as papermill injects them, reserved names, grids
checked before they run, failing points that do not stop the others, resumable grids, run.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from advlens import runner
from notebook_writers import write_notebook


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "nbs"
    folder.mkdir()
    # numbered 00, so its knobs are checked against the presets of notebook 00 (seed: int >= 0)
    body = ("import json, pathlib\n"
            "if bad:\n    raise ValueError('bad was set')\n"
            "out = pathlib.Path(out_dir)\n"
            "record = out / 'run.json'\n"
            "status = json.loads(record.read_text())['status'] if record.exists() else None\n"
            "(out / 'seen.json').write_text(json.dumps({'seed': seed, 'x': x, "
            "'x_type': type(x).__name__, 'status_while_running': status}))\n")
    write_notebook(folder / "00_seeded.ipynb", body,
                    'preset = "laptop"\nout_dir = None\nseed = None\nx = None\nbad = False\n')
    return folder


def _seen(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "seen.json").read_text())


def test_cli_tuple_values_reach_the_notebook_as_lists(notebooks: Path, tmp_path: Path) -> None:
    """``-p x 0,1`` parsed to a tuple, which papermill injected as the string "(0, 1)"."""
    assert runner._parse_value("0,1") == [0, 1]
    assert runner._parse_value("((1, 2), {'k': (3,)})") == [[1, 2], {"k": [3]}]
    assert runner._parse_value("cnn-s") == "cnn-s"
    (run,) = runner.run("smoke", out=tmp_path / "out", params={"x": (0, (1, 2))},
                        progress=False, notebooks=notebooks)
    seen = _seen(run.out_dir)
    assert seen["x"] == [0, [1, 2]] and seen["x_type"] == "list"


def test_run_json_records_running_then_completed(notebooks: Path, tmp_path: Path) -> None:
    (run,) = runner.run("smoke", out=tmp_path / "out", params={"seed": 3}, progress=False,
                        notebooks=notebooks)
    assert _seen(run.out_dir)["status_while_running"] == "running"
    record = json.loads((run.out_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["notebook"] == "00_seeded.ipynb"
    assert record["preset"] == "smoke" and record["params"] == {"seed": 3}
    assert record["started"] <= record["finished"]


def test_run_json_records_a_failure(notebooks: Path, tmp_path: Path) -> None:
    with pytest.raises(runner.NotebookFailed):
        runner.run("smoke", out=tmp_path / "out", params={"bad": True}, progress=False,
                   notebooks=notebooks)
    record = json.loads((tmp_path / "out" / "00_seeded" / "run.json").read_text())
    assert record["status"] == "failed" and "ValueError: bad was set" in record["error"]
    assert "finished" in record


@pytest.mark.parametrize("name, flag", [("preset", "--preset"), ("out_dir", "--out")])
def test_preset_and_out_dir_are_refused_as_parameters(notebooks: Path, tmp_path: Path,
                                                      name: str, flag: str) -> None:
    """``-p preset paper`` silently overrode --preset; ``-p out_dir X`` was silently ignored."""
    with pytest.raises(ValueError, match=rf"parameter {name!r} cannot be set .* use {flag}"):
        runner.run("smoke", out=tmp_path / "out", params={name: "paper"}, notebooks=notebooks)
    with pytest.raises(ValueError, match=rf"{name!r} cannot be set"):
        runner.run_grid({name: ["x"]}, "smoke", out=tmp_path / "grid", notebooks=notebooks)
    assert not (tmp_path / "out").exists() and not (tmp_path / "grid").exists()


def test_cli_refuses_preset_as_a_parameter(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any) -> None:
        raise AssertionError("a notebook ran")
    monkeypatch.setattr(runner, "_execute", never)
    assert runner.main(["run", "--preset", "smoke", "--only", "00", "--out", str(tmp_path),
                        "-p", "preset", "paper"]) == 1
    assert "use --preset" in capsys.readouterr().err


@pytest.mark.parametrize("grid, error, match", [
    ({"seed": [0, 1, 1.5]}, TypeError, r"knob 'seed' = 1.5 has type float; expected int"),
    ({"seed": [0, -1]}, ValueError, r"knob 'seed' = -1 must be >= 0"),
    ({"sede": [0, 1]}, ValueError, r"'sede' \(did you mean 'seed'\?\) are not declared"),
    ({"seed": 0}, TypeError, r"grid\['seed'\] = 0: the values of a grid knob must be a list"),
    ({"seed": "012"}, TypeError, r"must be a list"),
    ({"seed": []}, ValueError, r"grid\['seed'\] is empty"),
])
def test_every_grid_point_is_checked_before_anything_runs(
        notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        grid: dict[str, Any], error: type[Exception], match: str) -> None:
    ran = []
    monkeypatch.setattr(runner, "_execute", lambda *a: ran.append(a))
    with pytest.raises(error, match=match):
        runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks)
    assert ran == [] and not (tmp_path / "grid").exists()  # no run, no stamped folder


def test_a_grid_takes_arrays_as_lists_of_their_items(
        notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """{"seed": np.arange(2)} was refused with the advice to write {'seed': [array([0, 1])]},
    a single point whose seed is an array; it is the grid of seeds 0 and 1."""
    import numpy as np
    import torch

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "_execute", _fake_execute(seen))
    for values in (np.arange(2), torch.arange(2), np.array([0.0, 1.0])):
        seen.clear()
        runner.run_grid({"seed": values}, "smoke", out=tmp_path / "grid", notebooks=notebooks,
                        force=True)
        assert [p["seed"] for p in seen] == [0, 1]
        assert all(type(p["seed"]) is int for p in seen)


def _fake_execute(calls: list[dict[str, Any]]) -> Any:
    """_execute without a kernel: records the call, fails for bad=True, writes run.json."""
    def execute(path: Path, out_dir: Path, params: dict[str, Any],
                progress: bool) -> runner.NotebookRun:
        calls.append(params)
        out_dir.mkdir(parents=True, exist_ok=True)
        if params.get("bad"):
            raise runner.NotebookFailed(path.name, 2, "ValueError: bad was set",
                                        out_dir / path.name)
        return runner.NotebookRun(path.name, out_dir / path.name, out_dir, 0.5)
    return execute


def test_a_failing_point_does_not_stop_the_others(notebooks: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "_execute", _fake_execute(calls))
    with pytest.raises(runner.GridFailed) as info:
        runner.run_grid({"bad": [True, False], "seed": [0, 1]}, "smoke", out=tmp_path / "grid",
                        notebooks=notebooks)
    assert len(calls) == 4  # every point ran
    failed = list(info.value.folders)
    assert len(failed) == 2 and all("bad=True" in f.name for f in failed)
    message = str(info.value)
    assert message.startswith("2 of 4 grid point(s) failed: ")
    assert all(str(f) in message for f in failed) and "ValueError: bad was set" in message
    assert [r is None for r in info.value.results] == [True, True, False, False]
    assert all((f / "done.json").exists() == ("bad=False" in f.name)
               for f in (tmp_path / "grid").iterdir())
    # rerunning the grid reruns only the failed points
    calls.clear()
    with pytest.raises(runner.GridFailed):
        runner.run_grid({"bad": [True, False], "seed": [0, 1]}, "smoke", out=tmp_path / "grid",
                        notebooks=notebooks)
    assert [c["bad"] for c in calls] == [True, True]


def test_grid_skips_completed_points_and_reruns_interrupted_ones(
        notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "_execute", _fake_execute(calls))
    grid = {"seed": [0, 1, 2]}
    first = runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks)
    assert [c["seed"] for c in calls] == [0, 1, 2]
    folders = [runs[0].out_dir.parent for _, runs in first]
    done = json.loads((folders[0] / "done.json").read_text())
    assert done["params"] == {"seed": 0} and done["preset"] == "smoke"
    assert list(done["runs"]) == ["00_seeded.ipynb"]
    calls.clear()
    assert runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks) == first
    assert calls == []  # every point completed before: nothing reruns
    (folders[1] / "done.json").unlink()  # as if point 2 had been interrupted
    again = runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks)
    assert [c["seed"] for c in calls] == [1] and again == first
    calls.clear()
    runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks, force=True)
    assert [c["seed"] for c in calls] == [0, 1, 2]
    # a point whose notebook folder was deleted since (or whose run.json says it did not
    # complete) reruns: done.json alone skipped it, and a sweep summarised one seed fewer
    import shutil

    calls.clear()
    shutil.rmtree(first[2][1][0].out_dir)
    runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks)
    assert [c["seed"] for c in calls] == [2]
    calls.clear()
    (first[0][1][0].out_dir / "run.json").write_text('{"status": "interrupted"}')
    runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks)
    assert [c["seed"] for c in calls] == [0]


def test_a_point_listed_twice_runs_once(notebooks: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """{"seed": [0, 0]}: two points, one folder. On dask both tasks ran side by side in that
    folder (in this process the second found the first's done.json, but not with force)."""
    import threading
    import time

    calls: list[dict[str, Any]] = []
    record = _fake_execute(calls)
    lock = threading.Lock()

    def slow(*args: Any) -> runner.NotebookRun:
        with lock:
            done = record(*args)
        time.sleep(0.5)  # long enough for a second task to start beside it
        return done

    monkeypatch.setattr(runner, "_execute", slow)
    grid = {"seed": [0, 0, 1]}
    first = runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks,
                            force=True)
    assert [c["seed"] for c in calls] == [0, 1]
    assert [p for p, _ in first] == [{"seed": 0}, {"seed": 0}, {"seed": 1}]
    assert first[0][1] == first[1][1] and first[0][1][0].out_dir.parent.name.startswith(
        "preset=smoke,seed=0-")
    distributed = pytest.importorskip("dask.distributed")
    calls.clear()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        again = runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks,
                                force=True, client=client)
    assert sorted(c["seed"] for c in calls) == [0, 1] and [p for p, _ in again] == [
        p for p, _ in first]


def test_a_stopped_point_resumes_at_the_notebook_that_stopped_it(
        notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A point of two notebooks whose second failed (or was killed) reran the first, which had
    completed (at the paper preset, hours of GPU time), when the grid or sweep ran again."""
    write_notebook(notebooks / "01_second.ipynb", "pass\n",
                   'preset = "laptop"\nout_dir = None\nseed = None\n')
    calls: list[str] = []
    failing = {"01_second.ipynb"}

    def execute(path: Path, out_dir: Path, params: dict[str, Any],
                progress: bool) -> runner.NotebookRun:
        calls.append(path.name)
        out_dir.mkdir(parents=True, exist_ok=True)
        if path.name in failing:
            raise runner.NotebookFailed(path.name, 1, "RuntimeError: kernel died",
                                        out_dir / path.name)
        return runner.NotebookRun(path.name, out_dir / path.name, out_dir, 0.5)

    monkeypatch.setattr(runner, "_execute", execute)
    grid = {"seed": [0]}
    with pytest.raises(runner.GridFailed, match="kernel died"):
        runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks)
    assert calls == ["00_seeded.ipynb", "01_second.ipynb"]
    calls.clear()
    failing.clear()
    ((_, runs),) = runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks)
    assert calls == ["01_second.ipynb"]  # the completed notebook is not run again
    assert [r.notebook for r in runs] == ["00_seeded.ipynb", "01_second.ipynb"]
    calls.clear()
    assert runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks) == [
        ({"seed": 0}, runs)]
    assert calls == []
    runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks, force=True)
    assert calls == ["00_seeded.ipynb", "01_second.ipynb"]
    # on dask, a failing point is retried: the retry resumes at the failed notebook too
    distributed = pytest.importorskip("dask.distributed")
    calls.clear()
    failing.add("01_second.ipynb")
    real = execute

    def fails_once(path: Path, *args: Any) -> runner.NotebookRun:
        try:
            return real(path, *args)
        finally:
            failing.discard(path.name)

    monkeypatch.setattr(runner, "_execute", fails_once)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        runner.run_grid(grid, "smoke", out=tmp_path / "grid", notebooks=notebooks, force=True,
                        client=client)
    assert calls == ["00_seeded.ipynb", "01_second.ipynb", "01_second.ipynb"]


def test_a_forced_point_that_fails_is_no_longer_marked_done(
        notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "_execute", _fake_execute(calls))
    runner.run_grid({"seed": [0]}, "smoke", out=tmp_path / "grid", notebooks=notebooks)
    (folder,) = (tmp_path / "grid").iterdir()
    assert (folder / "done.json").exists()

    def broken(*args: Any) -> None:
        raise RuntimeError("kernel died")
    monkeypatch.setattr(runner, "_execute", broken)
    with pytest.raises(runner.GridFailed, match="RuntimeError: kernel died"):
        runner.run_grid({"seed": [0]}, "smoke", out=tmp_path / "grid", notebooks=notebooks,
                        force=True)
    assert not (folder / "done.json").exists()


def test_a_grid_knob_reaches_the_second_notebook_of_a_number_that_declares_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two notebooks of one number (07_a, 07_b), the knob declared by 07_b only: a point run
    notebook by notebook filtered the knobs by 07_a's parameters cell, and 07_b ran silently
    with its own default."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder / "07_a.ipynb", "pass\n", 'preset = "laptop"\nout_dir = None\n')
    write_notebook(folder / "07_b.ipynb", "pass\n", 'preset = "laptop"\nout_dir = None\nk = 1\n')
    seen: list[tuple[str, dict[str, Any]]] = []

    def execute(path: Path, out_dir: Path, params: dict[str, Any],
                progress: bool) -> runner.NotebookRun:
        seen.append((path.name, params))
        out_dir.mkdir(parents=True, exist_ok=True)
        return runner.NotebookRun(path.name, out_dir / path.name, out_dir, 0.5)

    monkeypatch.setattr(runner, "_execute", execute)
    ((_, runs),) = runner.run_grid({"k": [5]}, "smoke", out=tmp_path / "grid", notebooks=folder)
    assert seen == [("07_a.ipynb", {"preset": "smoke"}),
                    ("07_b.ipynb", {"preset": "smoke", "k": 5})]
    assert [r.notebook for r in runs] == ["07_a.ipynb", "07_b.ipynb"]


def test_a_relative_sweep_dir_is_the_callers(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m advlens run --only 05 -p sweep_dir out/sw` put the sweep's runs in
    notebooks/out/sw: the notebooks run in notebooks/, where the relative folder resolved."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "_execute", _fake_execute(calls))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for given, expected in (("out/sw", tmp_path / "out" / "sw"),
                            ("~/sw", tmp_path / "home" / "sw"),
                            (str(tmp_path / "abs"), tmp_path / "abs")):
        runner.run("smoke", only=["05"], out=tmp_path / "o", params={"sweep_dir": given},
                   progress=False)
        assert calls[-1]["sweep_dir"] == str(expected), given
    runner.run("smoke", only=["05"], out=tmp_path / "o", progress=False)
    assert "sweep_dir" not in calls[-1]  # the preset's default (None: <out>/runs) untouched


_OTHER_PROCESS = """
import sys
from pathlib import Path
from advlens import runner

def execute(path, out_dir, params, progress):
    out_dir.mkdir(parents=True, exist_ok=True)
    return runner.NotebookRun(path.name, out_dir / path.name, out_dir, 0.5)

runner._execute = execute
runner.run_grid({"seed": [0]}, "smoke", only=["01"], out=Path(sys.argv[1]),
                notebooks=Path(sys.argv[2]))
"""


def test_processes_running_notebooks_of_one_point_at_once_keep_each_others_done(
        notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch split by notebook (one process --only 00, another --only 01, one grid, one
    out): each rewrote done.json with the runs it had read before its notebook ran, so the
    later writer dropped the other's notebook, which every rerun then ran again."""
    import subprocess
    import sys

    write_notebook(notebooks / "01_second.ipynb", "pass\n",
                   'preset = "laptop"\nout_dir = None\nseed = None\n')
    out = tmp_path / "grid"
    fake = _fake_execute([])

    def execute(path: Path, *args: Any) -> runner.NotebookRun:
        # while notebook 00 runs here, another process runs and records notebook 01
        other = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(out), str(notebooks)],
                               capture_output=True, text=True)
        assert other.returncode == 0, other.stderr
        return fake(path, *args)

    monkeypatch.setattr(runner, "_execute", execute)
    ((_, runs),) = runner.run_grid({"seed": [0]}, "smoke", only=["00"], out=out,
                                   notebooks=notebooks)
    assert [r.notebook for r in runs] == ["00_seeded.ipynb"]
    (done,) = out.glob("*/done.json")
    assert sorted(json.loads(done.read_text())["runs"]) == ["00_seeded.ipynb", "01_second.ipynb"]
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "_execute", _fake_execute(calls))
    ((_, runs),) = runner.run_grid({"seed": [0]}, "smoke", out=out, notebooks=notebooks)
    assert calls == [] and [r.notebook for r in runs] == ["00_seeded.ipynb", "01_second.ipynb"]


def test_sigterm_stops_a_run_as_ctrl_c_does(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """timeout / kill / Slurm send SIGTERM: the process died at once, its notebook's run.json
    saying "running" and the kernel's files left. Now SIGTERM is a KeyboardInterrupt (the run
    records "interrupted" and cleans up, as for Ctrl-C), reported in one line, exit 130; the
    handler is put back afterwards."""
    import os
    import signal
    import time

    seen: list[str] = []

    def run(*args: Any, **kwargs: Any) -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except BaseException as err:
            seen.append(type(err).__name__)
            raise

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(runner, "run", run)
    assert runner.main(["run", "--preset", "smoke", "--only", "01"]) == 130
    assert seen == ["KeyboardInterrupt"]
    assert "interrupted; rerun the same command" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before


def test_main_runs_from_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the main thread may set a signal handler: main() from a worker thread failed with
    "signal only works in main thread" before running anything."""
    import threading

    ran: list[bool] = []
    monkeypatch.setattr(runner, "run", lambda *a, **k: ran.append(True))
    codes: list[int] = []
    worker = threading.Thread(target=lambda: codes.append(runner.main(["run", "--preset",
                                                                      "smoke"])))
    worker.start()
    worker.join()
    assert codes == [0] and ran == [True]


def test_ctrl_c_during_a_cell_prints_one_line(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) while a cell runs: the kernel logged ~20 lines of a ZMQ traceback from
    its closing sockets before "advlens: interrupted; ..." (review). A real kernel, interrupted
    once its cell has started."""
    import os
    import signal
    import subprocess
    import sys
    import time

    folder, started = tmp_path / "nbs", tmp_path / "started"
    folder.mkdir()
    write_notebook(folder / "00_slow.ipynb",
                   f"open({str(started)!r}, 'w').close()\nimport time\ntime.sleep(60)\n",
                   'preset = "laptop"\nout_dir = None\n')
    script = ("import sys; from pathlib import Path; from advlens import runner; "
              f"runner.notebooks_dir = lambda: Path({str(folder)!r}); "
              f"sys.exit(runner.main(['run', '--out', {str(tmp_path / 'out')!r}, "
              "'--no-progress']))")
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert started.exists(), "the cell never started"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.splitlines()[-1].startswith("advlens: interrupted; rerun the same command")
    assert "Traceback" not in err and "ZMQError" not in err, err
    record = json.loads((tmp_path / "out" / "00_slow" / "run.json").read_text())
    assert record["status"] == "interrupted"
