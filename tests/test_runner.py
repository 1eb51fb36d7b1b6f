"""The papermill runner: order, parameters, failure messages, grids that never overwrite."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from advlens import runner
from notebook_writers import write_notebook


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "nbs"
    folder.mkdir()
    write = ("from pathlib import Path\n"
             "Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
             "(Path(out_dir) / 'result.json').write_text(__import__('json').dumps("
             "{'preset': preset, 'x': x}))\n")
    write_notebook(folder / "00_first.ipynb", write,
                    'preset = "laptop"\nout_dir = None\nx = 1\n')
    write_notebook(folder / "01_second.ipynb",
                    "a = 1\nif bad:\n    raise ValueError('bad was set')\n",
                    'preset = "laptop"\nout_dir = None\nbad = False\n')
    (folder / "notes.ipynb").write_text("{}")  # not numbered: ignored
    return folder


def test_discover_orders_and_filters(notebooks: Path) -> None:
    names = [p.name for p in runner.discover(None, notebooks)]
    assert names == ["00_first.ipynb", "01_second.ipynb"]
    assert [p.name for p in runner.discover(["1"], notebooks)] == ["01_second.ipynb"]
    with pytest.raises(ValueError, match="no notebook numbered"):
        runner.discover(["07"], notebooks)
    assert [p.name for p in runner.discover([1], notebooks)] == ["01_second.ipynb"]
    with pytest.raises(TypeError, match=r"must be a list, e.g. \['01'\]"):
        runner.discover("01", notebooks)  # not notebooks 00 and 01
    with pytest.raises(ValueError, match=r"no notebook numbered \[''\]"):
        runner.discover([""], notebooks)  # not notebook 00


def test_notebook_parameters_reads_defaults(notebooks: Path) -> None:
    assert runner.notebook_parameters(notebooks / "00_first.ipynb") == {
        "preset": "laptop", "out_dir": None, "x": 1}


def test_run_passes_parameters_and_writes_per_notebook_folders(notebooks: Path,
                                                                 tmp_path: Path) -> None:
    runs = runner.run("smoke", out=tmp_path / "out", params={"x": 5}, progress=False,
                      notebooks=notebooks)
    assert [r.notebook for r in runs] == ["00_first.ipynb", "01_second.ipynb"]
    result = json.loads((tmp_path / "out" / "00_first" / "result.json").read_text())
    assert result == {"preset": "smoke", "x": 5}
    assert (tmp_path / "out" / "01_second" / "01_second.ipynb").exists()


def test_failure_names_notebook_and_cell(notebooks: Path, tmp_path: Path) -> None:
    with pytest.raises(runner.NotebookFailed) as info:
        runner.run("smoke", out=tmp_path, params={"bad": True}, progress=False,
                   notebooks=notebooks)
    message = str(info.value)
    assert "01_second.ipynb" in message and "cell" in message
    assert "ValueError: bad was set" in message and "\n" not in message


def test_undeclared_parameter_is_an_error(notebooks: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not declared"):
        runner.run("smoke", out=tmp_path, params={"typo": 1}, notebooks=notebooks)
    with pytest.raises(ValueError, match="unknown preset"):
        runner.run("huge", out=tmp_path, notebooks=notebooks)


def test_grid_uses_one_folder_per_parameter_set(notebooks: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "notebooks_dir", lambda: notebooks)
    results = runner.run_grid({"x": [1, 2]}, "smoke", only=["00"], out=tmp_path)
    folders = {runs[0].out_dir.parent for _, runs in results}
    assert len(folders) == 2
    values = sorted(json.loads((f / "00_first" / "result.json").read_text())["x"]
                    for f in folders)
    assert values == [1, 2]
    for folder in folders:  # a different parameter set never reuses a folder
        (folder / "params.json").write_text(json.dumps({"preset": "smoke", "params": {"x": 9}}))
    with pytest.raises(FileExistsError, match="another parameter set"):
        runner.run_grid({"x": [1]}, "smoke", only=["00"], out=tmp_path)


def test_grid_folder_names_differ_and_are_safe() -> None:
    a, b = runner.grid_folder({"eps": 0.5, "name": "a/b"}), runner.grid_folder({"eps": 0.25})
    assert a != b and "/" not in a


def test_cli_reports_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "advlens", "run", "--preset", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_cli_names_an_out_that_is_a_file(notebooks: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "notebooks_dir", lambda: notebooks)
    (tmp_path / "taken").write_text("")
    for out in (tmp_path / "taken", tmp_path / "taken" / "sub"):
        assert runner.main(["run", "--only", "00", "--out", str(out), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("advlens: cannot make the output folder") and err.count("\n") == 1
        assert "choose another --out" in err and "Traceback" not in err


def test_cli_names_a_file_where_a_notebook_folder_goes(notebooks: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A file named as a notebook's folder gave mkdir's 15-line FileExistsError (review);
    refused before any notebook runs."""
    monkeypatch.setattr(runner, "notebooks_dir", lambda: notebooks)
    (tmp_path / "01_second").write_text("")
    assert runner.main(["run", "--out", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"advlens: cannot make the output folder {tmp_path / '01_second'}")
    assert err.count("\n") == 1 and not (tmp_path / "00_first").exists()


def test_an_out_this_user_cannot_enter_is_named(notebooks: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Path.is_dir raises PermissionError inside a folder the user may not enter (Python 3.11):
    a traceback, where mkdir's error had been one line (review)."""
    monkeypatch.setattr(runner, "notebooks_dir", lambda: notebooks)
    locked = tmp_path / "locked"
    real = Path.is_dir

    def is_dir(path: Path) -> bool:
        if locked in (path, *path.parents) and path != locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    assert runner.main(["run", "--only", "00", "--out", str(locked / "out"),
                        "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("advlens: cannot make the output folder") and err.count("\n") == 1
    assert "(Permission denied:" in err and "choose another --out" in err


def test_two_runs_into_one_folder_are_refused(notebooks: Path, tmp_path: Path) -> None:
    """Two processes running a notebook into one folder wrote each other's tables, and run.json
    vouched for the mix on resume (review). The second is refused while the first holds the
    folder; the folder's lock goes with its holder."""
    from advlens.io import file_lock

    folder = tmp_path / "00_first"
    folder.mkdir()
    # another open file description conflicts as another process's would
    with file_lock(folder / ".run.lock"), pytest.raises(
            ValueError, match=r"another process is running a notebook into .*00_first"):
        runner.run("smoke", only=["00"], out=tmp_path, progress=False, notebooks=notebooks)
    assert not (folder / "result.json").exists()
    runner.run("smoke", only=["00"], out=tmp_path, progress=False, notebooks=notebooks)
    assert (folder / "result.json").exists()


def test_a_folder_where_the_run_lock_goes_is_one_line(notebooks: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder named .run.lock gave os.open's IsADirectoryError traceback."""
    monkeypatch.setattr(runner, "notebooks_dir", lambda: notebooks)
    (tmp_path / "00_first" / ".run.lock").mkdir(parents=True)
    assert runner.main(["run", "--only", "00", "--out", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]  # (after the progress line)
    assert err.startswith("advlens: ") and err.endswith(
        "00_first/.run.lock is a folder where a lock file goes; remove or rename it and rerun.")


def test_a_knob_given_twice_is_refused(notebooks: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """-p seed 1 -p seed 2 ran with seed 2 and said nothing (review)."""
    monkeypatch.setattr(runner, "notebooks_dir", lambda: notebooks)
    assert runner.main(["run", "--only", "00", "--out", str(tmp_path), "-p", "x", "1",
                        "-p", "x", "2"]) == 1
    assert capsys.readouterr().err == ("advlens: knob(s) x given more than once with -p; give "
                                       "each once.\n")
    assert not (tmp_path / "00_first").exists()


def test_grid_rerun_with_tuple_values_reuses_its_folder(notebooks: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "run", lambda *a, **k: [])
    first = runner.run_grid({"x": [(16, 16)]}, "smoke", out=tmp_path, notebooks=notebooks)
    again = runner.run_grid({"x": [(16, 16)]}, "smoke", out=tmp_path,  # no FileExistsError
                            notebooks=notebooks)
    assert first == again


def test_each_notebook_receives_only_the_parameters_it_declares(tmp_path: Path) -> None:
    """Two notebooks declaring different knobs: each gets its own (and preset/out_dir), never
    the other's -- an undeclared name would silently become a global of the wrong notebook."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    body = ("import json, pathlib\n"
            "names = sorted(k for k in ('x', 'z') if k in globals())\n"
            "pathlib.Path(out_dir, 'seen.json').write_text(json.dumps(names))\n")
    write_notebook(folder / "00_x.ipynb", body, 'preset = "laptop"\nout_dir = None\nx = 1\n')
    write_notebook(folder / "01_z.ipynb", body, 'preset = "laptop"\nout_dir = None\nz = 1\n')
    runs = runner.run("smoke", out=tmp_path / "out", params={"x": 5, "z": 7}, progress=False,
                      notebooks=folder)
    for run, expected in zip(runs, (["x"], ["z"]), strict=True):
        assert json.loads((run.out_dir / "seen.json").read_text()) == expected
        injected = [c for c in nbformat.read(run.executed, as_version=4).cells
                    if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1
        assigned = {t.id for node in ast.parse(injected[0].source).body
                    for t in getattr(node, "targets", [])}
        assert assigned == {"preset", "out_dir", *expected}


def test_executed_notebook_and_kernel_log_are_clean(tmp_path: Path,
                                                    capfd: pytest.CaptureFixture) -> None:
    """No "running over TCP without encryption" from the kernel (it talks over private Unix
    sockets) and no TqdmWarning about IProgress in the cells (console bars, no ipywidgets)."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    body = ("import advlens.features\nfrom tqdm.auto import tqdm\n"
            "for _ in tqdm(range(3), desc='bar'):\n    pass\nprint('done')\n")
    write_notebook(folder / "00_clean.ipynb", body)
    capfd.readouterr()
    (run,) = runner.run("smoke", out=tmp_path / "out", progress=False, notebooks=folder)
    log = capfd.readouterr().err
    assert "without encryption" not in log, log
    outputs = [o for c in nbformat.read(run.executed, as_version=4).cells
               for o in c.get("outputs", [])]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {})) for o in outputs)
    assert "done" in text and "Warning" not in text and "IProgress" not in text, text
    assert not list(folder.glob("kernel*")), "no socket files left next to the notebook"


def test_relative_out_lands_where_the_executed_copy_does(notebooks: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebooks run in their own folder: a relative out must not resolve there."""
    monkeypatch.chdir(tmp_path)
    runner.run("smoke", only=["00"], out="rel", params={"x": 2}, progress=False,
               notebooks=notebooks)
    assert (tmp_path / "rel" / "00_first" / "result.json").exists()
    assert (tmp_path / "rel" / "00_first" / "00_first.ipynb").exists()
    assert not (notebooks / "rel").exists()


def test_relative_cache_variables_are_the_callers(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative $ADVLENS_DATA / $ADVLENS_ZOO named a folder under notebooks/ in the kernel,
    which runs there: it rebuilt the whole zoo in a new cache instead of the caller's."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder / "00_where.ipynb",
                   "import json\nfrom pathlib import Path\nfrom advlens import paths\n"
                   "Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
                   "(Path(out_dir) / 'where.json').write_text(json.dumps("
                   "{'data': str(paths.data_dir()), 'zoo': str(paths.zoo_dir())}))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADVLENS_DATA", "mydata")
    monkeypatch.setenv("ADVLENS_ZOO", "myzoo")
    runner.run("smoke", out="out", progress=False, notebooks=folder)
    where = json.loads((tmp_path / "out" / "00_where" / "where.json").read_text())
    assert where == {"data": str(tmp_path / "mydata"), "zoo": str(tmp_path / "myzoo")}
    assert not (folder / "mydata").exists() and not (folder / "myzoo").exists()
    assert runner.os.environ["ADVLENS_ZOO"] == "myzoo"  # the caller's own value, unchanged


def test_relative_loader_paths_in_knobs_are_the_callers(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """-p data_kw '{"root": "imagenet"}' named notebooks/imagenet in the kernel (it runs
    there); $VARIABLES stay for the loaders to expand, other keys as given."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder / "99_kw.ipynb",
                   "import json\nfrom pathlib import Path\n"
                   "Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
                   "(Path(out_dir) / 'kw.json').write_text(json.dumps("
                   "{'data_kw': data_kw, 'stl10_kw': stl10_kw}))\n",
                   params="data_kw = {}\nstl10_kw = {}\n")
    monkeypatch.chdir(tmp_path)
    runner.run("smoke", out="out", progress=False, notebooks=folder,
               params={"data_kw": {"root": "imagenet", "size": 8, "name": "val"},
                       "stl10_kw": {"path": "~/stl", "root": "$ADVLENS_STL10"}})
    got = json.loads((tmp_path / "out" / "99_kw" / "kw.json").read_text())
    assert got == {"data_kw": {"root": str(tmp_path / "imagenet"), "size": 8, "name": "val"},
                   "stl10_kw": {"path": str(Path("~/stl").expanduser()),
                                "root": "$ADVLENS_STL10"}}


def test_a_rerun_into_the_same_folder_keeps_only_its_own_outputs(tmp_path: Path) -> None:
    """A folder reused with other knobs (a figure per data set, here two then one) held the
    earlier run's figure beside a run.json saying "completed" with the new knobs: the book
    showed it as this run's. Once a rerun completes, the figures and tables it did not write
    again are removed (and listed in run.json); other files stay, and a failed run removes
    nothing (its run.json already says its outputs are partial or stale)."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    body = ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
            "import pandas as pd\nfrom advlens import plots\n"
            "for name in datasets:\n"
            "    fig, ax = plt.subplots()\n"
            "    ax.plot([0, 1])\n"
            "    ax.set(title=name, xlabel='x', ylabel='y')\n"
            "    plots.save_figure(fig, pd.DataFrame({'x': [0, 1]}), out_dir, f'acc_{name}',\n"
            "                      params={'datasets': datasets})\n"
            "plots.save_table(pd.DataFrame({'n': [len(datasets)]}), out_dir, 'count',\n"
            "                 params={'datasets': datasets})\n"
            "if fail:\n    raise ValueError('failed on purpose')\n")
    write_notebook(folder / "00_sets.ipynb", body,
                   'preset = "laptop"\nout_dir = None\ndatasets = ["a", "b"]\nfail = False\n')
    out = tmp_path / "out"
    runner.run("smoke", out=out, progress=False, notebooks=folder)
    notebook = out / "00_sets"
    (notebook / "notes.txt").write_text("mine")
    outputs = {f"{stem}.{ext}" for stem in ("acc_a", "acc_b") for ext in ("png", "pdf", "csv")}
    outputs |= {"acc_a.provenance.json", "acc_b.provenance.json", "count.csv",
                "count.provenance.json"}
    assert outputs <= {p.name for p in notebook.iterdir()}
    with pytest.raises(runner.NotebookFailed):
        runner.run("smoke", out=out, params={"datasets": ["a"], "fail": True}, progress=False,
                   notebooks=folder)
    assert outputs <= {p.name for p in notebook.iterdir()}  # failed: nothing removed
    runner.run("smoke", out=out, params={"datasets": ["a"]}, progress=False, notebooks=folder)
    left = {p.name for p in notebook.iterdir()}
    stale = {n for n in outputs if n.startswith("acc_b.")}
    assert not stale & left and outputs - stale <= left and "notes.txt" in left
    record = json.loads((notebook / "run.json").read_text())
    assert record["status"] == "completed" and set(record["removed_stale"]) == stale
    for name in ("acc_a", "count"):
        params = json.loads((notebook / f"{name}.provenance.json").read_text())["parameters"]
        assert params == {"datasets": ["a"]}


def test_run_help_states_its_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m advlens run --help`` named neither the default preset nor what ``-p`` does
    with its value (README: laptop; values parsed as Python literals)."""
    with pytest.raises(SystemExit):
        runner.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: laptop)" in text and "default: every numbered notebook" in text
    assert "Python literal" in text
    assert runner._parse_value("[1, 2]") == [1, 2] and runner._parse_value("abc") == "abc"


def test_a_rerun_keeps_the_notebooks_completed_with_the_same_knobs_code_and_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`advlens run` stopped in notebook 04 said 'rerun the same command to resume (finished
    notebooks are kept)', yet the rerun ran 00-03 again (review). A notebook is kept only where
    its run.json says completed with the same preset, knobs, code and data folders."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    counter = tmp_path / "count.txt"
    body = (f"with open({str(counter)!r}, 'a') as f:\n    f.write(str(KNOB))\n"
            "if KNOB == 99:\n    raise ValueError('stop')\n")
    write_notebook(folder / "00_a.ipynb", body.replace("KNOB", "x"),
                   'preset = "laptop"\nout_dir = None\nx = 1\n')
    write_notebook(folder / "01_b.ipynb", body.replace("KNOB", "y"),
                   'preset = "laptop"\nout_dir = None\ny = 2\n')
    out = tmp_path / "out"
    monkeypatch.setattr(runner.provenance, "git_commit", lambda: "c0ffee")

    def go(resume: bool = True, **params: object) -> list[runner.NotebookRun]:
        return runner.run("smoke", out=out, params=params, progress=False, notebooks=folder,
                          resume=resume)

    go()
    assert counter.read_text() == "12"
    kept = go()  # everything completed before: nothing runs
    assert counter.read_text() == "12"
    assert [r.notebook for r in kept] == ["00_a.ipynb", "01_b.ipynb"]
    assert all(r.executed.is_file() and r.wall_time_s >= 0 for r in kept)
    go(y=3)  # another knob of 01: 01 runs, 00 is kept
    assert counter.read_text() == "123"
    go(resume=False, y=3)  # --force
    assert counter.read_text() == "12313"
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path / "elsewhere"))  # other data: both rerun
    go(y=3)
    assert counter.read_text() == "1231313"
    monkeypatch.setattr(runner.provenance, "git_commit", lambda: "beef")  # other code
    go(y=3)
    assert counter.read_text() == "123131313"
    with pytest.raises(runner.NotebookFailed):  # 01 fails: a rerun runs it, keeps 00
        go(y=99)
    (out / "01_b" / "run.json").write_text(json.dumps({"status": "interrupted"}))
    go(y=3)
    assert counter.read_text() == "123131313" + "99" + "3"
    (out / "00_a" / "00_a.ipynb").unlink()  # the executed copy gone: 00 reruns
    go(y=3)
    assert counter.read_text().endswith("31")
    monkeypatch.setattr(runner.provenance, "git_commit", lambda: "unknown")  # no git: rerun
    before = counter.read_text()
    go(y=3)
    assert counter.read_text() == before + "13"


def test_the_command_line_resumes_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(runner, "run", lambda *a, **k: seen.append(k["resume"]) or [])
    assert runner.main(["run", "--preset", "smoke", "--only", "00"]) == 0
    assert runner.main(["run", "--preset", "smoke", "--only", "00", "--force"]) == 0
    assert seen == [True, False]


def test_a_rerun_reruns_where_the_zoo_weights_a_table_or_the_code_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: a zoo cache copied over under the same path, a table deleted since, or the
    library edited in the same Python session (git_commit is cached per process) kept the
    notebook with stale results."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    counter = tmp_path / "count.txt"
    write_notebook(folder / "00_a.ipynb",
                   f"with open({str(counter)!r}, 'a') as f:\n    f.write('r')\n"
                   "from pathlib import Path\nPath(out_dir).mkdir(parents=True, exist_ok=True)\n"
                   "(Path(out_dir) / 't.csv').write_text('a\\n1\\n')\n"
                   "(Path(out_dir) / 't.provenance.json').write_text('{}')\n")
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "m.json").write_text(json.dumps({"sha256": "aaa"}))
    monkeypatch.setenv("ADVLENS_ZOO", str(zoo))
    out = tmp_path / "out"
    commits = iter(["c1", "c1", "c1", "c1", "c2", "c2"])
    monkeypatch.setattr(runner.provenance, "git_commit", lambda: "c1")

    def go() -> None:
        runner.run("smoke", out=out, progress=False, notebooks=folder, resume=True)

    go()
    go()
    assert counter.read_text() == "r"  # kept
    (zoo / "m.json").write_text(json.dumps({"sha256": "bbb"}))  # other weights, same folder
    go()
    assert counter.read_text() == "rr"
    (out / "00_a" / "t.csv").unlink()  # a table gone
    go()
    assert counter.read_text() == "rrr" and (out / "00_a" / "t.csv").is_file()
    # the real git_commit is cached per process: run(resume=True) asks again
    calls = []

    def cached() -> str:
        calls.append(1)
        return next(commits)

    cached.cache_clear = lambda: calls.append("cleared")  # type: ignore[attr-defined]
    monkeypatch.setattr(runner.provenance, "git_commit", cached)
    go()
    assert "cleared" in calls


def test_a_notebook_that_adds_models_to_the_zoo_is_kept_on_the_next_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook 00 trains models into the zoo: the zoo's fingerprint taken at its start differed
    from the one a rerun sees, so every rerun after a build ran 00 again."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    zoo, counter = tmp_path / "zoo", tmp_path / "count.txt"
    zoo.mkdir()
    monkeypatch.setenv("ADVLENS_ZOO", str(zoo))
    monkeypatch.setattr(runner.provenance, "git_commit", lambda: "c1")
    write_notebook(folder / "00_a.ipynb",
                   f"with open({str(counter)!r}, 'a') as f:\n    f.write('r')\n"
                   f"from pathlib import Path\n(Path({str(zoo)!r}) / 'new.json').write_text("
                   "'{\"sha256\": \"abc\"}')\n")
    for _ in range(2):
        runner.run("smoke", out=tmp_path / "out", progress=False, notebooks=folder, resume=True)
    assert counter.read_text() == "r"
    # a later notebook adding models keeps it too (02's families, 04's sources made every
    # earlier notebook rerun: the fingerprint hashed the whole zoo; review) ...
    (zoo / "later.json").write_text('{"sha256": "def"}')
    runner.run("smoke", out=tmp_path / "out", progress=False, notebooks=folder, resume=True)
    assert counter.read_text() == "r"
    # ... while a model it could have read, now with other weights or gone, reruns it
    (zoo / "new.json").write_text('{"sha256": "abd"}')
    runner.run("smoke", out=tmp_path / "out", progress=False, notebooks=folder, resume=True)
    assert counter.read_text() == "rr"
    (zoo / "new.json").unlink()
    runner.run("smoke", out=tmp_path / "out", progress=False, notebooks=folder, resume=True)
    assert counter.read_text() == "rrr"
