"""The rendered book: built offline from a run, every page opened in headless Chromium (no broken
image, no console error, a screenshot kept under out/book-screenshots/)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402

from advlens import book, runner  # noqa: E402
from advlens.paths import repo_root  # noqa: E402
from browser import Chromium, find_chromium  # noqa: E402

SHOTS = repo_root() / "out" / "book-screenshots"


def _png() -> bytes:
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    ax.set(title="t", xlabel="x", ylabel="y")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def fake_run(root: Path) -> Path:
    """A run folder like `advlens run` writes: one executed notebook and one figure."""
    folder = root / "07_example"
    folder.mkdir(parents=True)
    png = _png()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 07 — An example (Someone et al., 2099)\n\nText."),
                nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
                    "display_data", data={"image/png": base64.b64encode(png).decode(),
                                          "text/plain": "<Figure>"})])]
    nbformat.write(nb, folder / "07_example.ipynb")
    (folder / "07a_line.png").write_bytes(png)
    (folder / "07a_line.csv").write_text("x,y\n0,1\n1,0\n")
    (folder / "07a_line.provenance.json").write_text(json.dumps(
        {"caption": "A line; digits standing in for ImageNet.",
         "paper_figure": "Someone et al. (2099), the line figure"}))
    return root


@pytest.fixture(scope="module")
def chromium():  # noqa: ANN201
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium (apt-get install chromium; CI=true installs it)")
    browser = Chromium(binary)
    yield browser
    browser.close()


def test_book_pages_gallery_and_no_network(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# advlens\n\nIntro paragraph.\n\n## Section\n\n"
                      "| a | b |\n|---|---|\n| 1 | 2 |\n")
    index = book.build(fake_run(tmp_path / "run"), tmp_path / "book", readme=readme)
    site = index.parent
    assert sorted(p.name for p in site.glob("*.html")) == ["07_example.html", "index.html",
                                                           "readme.html"]
    landing = index.read_text()
    assert "07 — An example (Someone et al., 2099)" in landing
    assert "A line; digits standing in for ImageNet." in landing
    assert "Corresponds to: Someone et al. (2099), the line figure" in landing
    assert (site / "figures" / "07_example" / "07a_line.png").exists()
    page = (site / "07_example.html").read_text()
    assert "<script" not in page.lower(), "notebook pages must not load scripts (offline)"
    assert "data:image/png;base64," in page  # the notebook's figure, inline
    for html in site.glob("*.html"):  # nothing fetched: no remote script, image or style sheet
        text = html.read_text()
        assert not re.search(r'src="https?:|<link[^>]+href="https?:|@import', text), html.name
    assert "<table>" in (site / "readme.html").read_text()
    with pytest.raises(FileNotFoundError, match="no executed notebooks"):
        book.build(tmp_path / "empty", tmp_path / "book2", readme=readme)


def test_every_page_opens_and_a_broken_image_fails(tmp_path: Path, chromium: Chromium) -> None:
    index = book.build(fake_run(tmp_path / "run"), tmp_path / "book",
                       readme=repo_root() / "README.md")
    for page in sorted(index.parent.glob("*.html")):
        report = chromium.check(page.as_uri(), SHOTS / "example" / f"{page.stem}.png")
        assert report.ok, report
        assert report.screenshot is not None and report.screenshot.stat().st_size > 1000
    (index.parent / "figures" / "07_example" / "07a_line.png").unlink()  # break the gallery
    broken = chromium.check(index.as_uri(), SHOTS / "example" / "broken-index.png")
    assert not broken.ok
    assert broken.broken_images == ["figures/07_example/07a_line.png"]


@pytest.mark.slow
def test_book_from_a_smoke_run(tmp_path: Path, smoke_run: Callable[..., Path | None],
                               chromium: Chromium) -> None:
    numbers = [path.name[:2] for path in runner.discover()]
    # the last notebooks first, passing over any another worker is running (the notebook tests
    # take them in order); then those, waiting for each
    passed_over = [n for n in reversed(numbers) if smoke_run(n, wait=False) is None]
    for number in passed_over:
        smoke_run(number)
    run = smoke_run(numbers[0]).parent
    index = book.build(run, tmp_path / "book")
    pages = sorted(index.parent.glob("*.html"))
    assert len(pages) == len(runner.discover()) + 2  # every notebook, the landing page, README
    for page in pages:
        report = chromium.check(page.as_uri(), SHOTS / "smoke" / f"{page.stem}.png")
        assert report.ok, report
    os.sync()


def _readme(root: Path, reference_section: str = "- **(a) reference** — holds: laptop.") -> Path:
    from advlens import findings

    readme = root / "README.md"
    readme.write_text(f"# advlens\n\nIntro.\n\n## What holds\n\n{findings.START}\n"
                      f"{reference_section}\n{findings.END}\n\n## After\n\nMore.\n")
    return readme


def test_out_that_would_delete_the_run_or_other_files_is_refused(tmp_path: Path) -> None:
    """The book replaces --out: an --out overlapping the run, or a non-empty folder that is not
    a book, was deleted (the run emptied, the user's notes lost); both are refused now."""
    run = fake_run(tmp_path / "run")
    readme = _readme(tmp_path)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    for out in (run, run / "site", tmp_path):
        with pytest.raises(ValueError, match="overlaps the run folder"):
            book.build(run, out, readme=readme)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.md").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty and holds no book"):
        book.build(run, notes, readme=readme)
    assert (notes / "todo.md").read_text() == "mine"
    assert runner.main(["book", "--run", str(run), "--out", str(notes)]) == 1
    assert (notes / "todo.md").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert book.build(run, empty, readme=readme) == empty.resolve() / "index.html"
    assert (empty / book.MARKER).exists()
    (empty / "stale.html").write_text("from an earlier book")  # a previous book is replaced
    book.build(run, empty, readme=readme)
    assert not (empty / "stale.html").exists() and (empty / "07_example.html").exists()
    (empty / book.MARKER).unlink()  # a book built before the marker existed: still a book
    book.build(run, empty, readme=readme)
    assert (empty / book.MARKER).exists()
    assert not list(tmp_path.glob(".empty.*")), "no temporary folder left behind"


def test_a_run_that_did_not_complete_is_refused_or_bannered(tmp_path: Path) -> None:
    """A notebook whose run.json is not 'completed' (failed, still running) made a normal-looking
    book of partial or stale outputs; it is refused, or built with a banner when asked."""
    run = fake_run(tmp_path / "run")
    readme = _readme(tmp_path)
    record = {"notebook": "07_example.ipynb", "preset": "smoke", "params": {}, "started": "t"}
    (run / "07_example" / "run.json").write_text(json.dumps({**record, "status": "completed"}))
    book.build(run, tmp_path / "ok", readme=readme)
    (run / "07_example" / "run.json").write_text(json.dumps(
        {**record, "status": "failed", "error": "ValueError: boom"}))
    with pytest.raises(RuntimeError, match=r"07_example: failed \(ValueError: boom\)"):
        book.build(run, tmp_path / "refused", readme=readme)
    assert not (tmp_path / "refused").exists()
    assert runner.main(["book", "--run", str(run), "--out", str(tmp_path / "refused")]) == 1
    with pytest.warns(UserWarning, match="incomplete run"):
        index = book.build(run, tmp_path / "bannered", readme=readme, allow_incomplete=True)
    # the README page shows the run's findings, the unfinished notebook's among them
    for page in (index, index.parent / "07_example.html", index.parent / "readme.html"):
        assert 'class="advlens-incomplete"' in page.read_text(), page.name
        assert "did not complete: " in page.read_text()


def test_readme_page_shows_the_runs_own_findings(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """README's findings are the committed figures/'s; a book of another run showed them next
    to that run's notebooks, contradicting its verdicts. The run's own are shown instead."""
    run = fake_run(tmp_path / "run")
    readme = _readme(tmp_path)
    (run / "07_example" / "07_findings.csv").write_text(
        "finding,holds,evidence\n(a) the run's finding,False,smoke numbers\n")
    page = (book.build(run, tmp_path / "book", readme=readme).parent / "readme.html").read_text()
    assert "(a) the run&#x27;s finding" in page or "(a) the run's finding" in page
    assert "does not hold" in page and "(a) reference" not in page
    assert str(run) in page and "More." in page  # labelled; the rest of README kept
    (run / "07_example" / "07_findings.csv").unlink()
    page = (book.build(run, tmp_path / "book", readme=readme).parent / "readme.html").read_text()
    assert "(a) reference" not in page and "saved no findings tables" in page
    monkeypatch.setattr(book, "figures_dir", lambda: run)  # the committed reference: as is
    page = (book.build(run, tmp_path / "book", readme=readme).parent / "readme.html").read_text()
    assert "(a) reference" in page


def test_the_book_folder_is_readable_like_any_new_folder(tmp_path: Path) -> None:
    """The site was built in a mkdtemp folder (mode 0o700) renamed to --out: a web server or a
    colleague could not read the book. It gets the mode any new folder gets (the umask's)."""
    index = book.build(fake_run(tmp_path / "run"), tmp_path / "book",
                       readme=repo_root() / "README.md")
    (tmp_path / "plain").mkdir()
    assert index.parent.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def test_links_to_odd_file_names_resolve(tmp_path: Path) -> None:
    """A ``#``, ``%``, ``?`` or quote in a notebook's or figure's name was written into the
    links as is: the browser cut the path at ``#``/``?`` (or decoded ``%``) and every link to it
    was broken; a quote ended the attribute."""
    from html.parser import HTMLParser
    from urllib.parse import unquote, urlsplit

    stem, name = "07_a#b 50%", 'fig "q" #2?x'
    folder = tmp_path / "run" / stem
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 07 — odd names")]
    nbformat.write(nb, folder / f"{stem}.ipynb")
    (folder / f"{name}.png").write_bytes(_png())
    (folder / f"{name}.csv").write_text("x\n1\n")
    (folder / f"{name}.provenance.json").write_text(json.dumps({"caption": "odd"}))
    readme = tmp_path / "README.md"
    readme.write_text("# advlens\n\nIntro.\n")
    site = book.build(tmp_path / "run", tmp_path / "book", readme=readme).parent

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[str] = []
            self.alts: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for key, value in attrs:
                if key in ("href", "src") and value and not value.startswith(("data:", "#")):
                    self.found.append(value)
                if key == "alt" and value:
                    self.alts.append(value)

    checked = set()
    for page in site.glob("*.html"):
        links = Links()
        links.feed(page.read_text())
        for url in links.found:
            assert (site / unquote(urlsplit(url).path)).is_file(), (page.name, url)
            checked.add(unquote(urlsplit(url).path))
        if page.name == "index.html":
            assert name in links.alts
    assert {f"{stem}.html", f"figures/{stem}/{name}.png", f"figures/{stem}/{name}.csv",
            f"figures/{stem}/{name}.provenance.json"} <= checked


def test_a_failed_notebook_is_listed_and_titled_by_its_heading(tmp_path: Path) -> None:
    """papermill puts its error banner (HTML) first in a failed run's executed copy: the book
    listed that notebook, and headed its gallery, under the banner's markup; a blank first cell
    crashed the build (IndexError); every notebook page's <title> was "Notebook"."""
    from papermill.exceptions import PapermillExecutionError
    from papermill.execute import raise_for_execution_errors

    run = fake_run(tmp_path / "run")
    path = run / "07_example" / "07_example.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("1 / 0", outputs=[nbformat.v4.new_output(
        "error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]))
    with pytest.raises(PapermillExecutionError):
        raise_for_execution_errors(nb, str(path))  # what papermill writes for a failed run
    assert "An Exception was encountered" in nbformat.read(path, as_version=4).cells[0].source
    (run / "07_example" / "run.json").write_text(json.dumps(
        {"notebook": "07_example.ipynb", "preset": "smoke", "params": {}, "started": "t",
         "status": "failed", "error": "ZeroDivisionError: division by zero"}))
    title = "07 — An example (Someone et al., 2099)"  # the notebook's own heading
    with pytest.warns(UserWarning, match="incomplete run"):
        site = book.build(run, tmp_path / "book", readme=_readme(tmp_path),
                          allow_incomplete=True).parent
    landing = (site / "index.html").read_text()
    assert f'<a href="07_example.html">{title}</a>' in landing
    assert f"<h3>{title}</h3>" in landing and "An Exception" not in landing
    page = (site / "07_example.html").read_text()
    assert f"<title>{title}</title>" in page
    assert "An Exception was encountered" in page  # the failure itself is still shown
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("\n"))
    nbformat.write(nb, path)
    with pytest.warns(UserWarning, match="incomplete run"):
        site = book.build(run, tmp_path / "book", readme=_readme(tmp_path),
                          allow_incomplete=True).parent
    assert f'<a href="07_example.html">{title}</a>' in (site / "index.html").read_text()


def test_readme_page_of_a_rerun_into_figures_shows_the_reruns_findings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``advlens run`` writes to figures/ by default: a book of figures/ after such a rerun
    showed README's findings (the tables before the rerun) beside the rerun's notebooks, which
    contradict them. README's are shown only while they are figures/' own."""
    from advlens import findings

    run = fake_run(tmp_path / "figures")
    monkeypatch.setattr(book, "figures_dir", lambda: run)
    table = run / "07_example" / "07_findings.csv"
    table.write_text("finding,holds,evidence\n(a) the line falls,True,slope -1 before\n")
    readme = _readme(tmp_path, findings.readme_section(run))  # `advlens readme` wrote it
    page = (book.build(run, tmp_path / "book", readme=readme).parent / "readme.html").read_text()
    assert "slope -1 before" in page and "findings of the run" not in page  # README as is
    table.write_text("finding,holds,evidence\n(a) the line falls,False,slope +1 rerun\n")
    page = (book.build(run, tmp_path / "book", readme=readme).parent / "readme.html").read_text()
    assert "slope +1 rerun" in page and "does not hold" in page
    assert "slope -1 before" not in page and "python -m advlens readme" in page


def test_readme_page_names_each_preset_of_a_reused_run_folder(tmp_path: Path) -> None:
    """A run folder reused across presets (README: "An output folder may be reused") labelled
    all its findings with the first preset of any provenance record (a figure's of a notebook
    without findings, say) instead of those of the findings shown."""
    run = fake_run(tmp_path / "run")
    (run / "07_example" / "07a_line.provenance.json").write_text(json.dumps(
        {"caption": "c", "parameters": {"preset": "paper"}}))  # a figure's, no findings
    for notebook, preset in (("07_example", "smoke"), ("08_other", "laptop")):
        (run / notebook).mkdir(exist_ok=True)
        (run / notebook / f"{notebook[:2]}_findings.csv").write_text(
            f"finding,holds,evidence\n({notebook[:2]}) x,True,e\n")
        (run / notebook / f"{notebook[:2]}_findings.provenance.json").write_text(json.dumps(
            {"parameters": {"preset": preset}}))

    def label() -> str:
        page = (book.build(run, tmp_path / "book", readme=_readme(tmp_path)).parent
                / "readme.html").read_text()
        return page.split("The findings of the run in", 1)[1].split("which this book shows")[0]

    assert "laptop (08_other)" in label() and "smoke (07_example)" in label()
    assert "paper" not in label()
    shutil.rmtree(run / "08_other")
    assert label().endswith(", preset smoke, ")


def test_readme_check_against_a_copy_of_the_findings_tables(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``readme --check --figures DIR`` on a copy of figures/' findings tables alone (as ``git
    archive`` gives them: no executed notebooks beside them, no notebooks/ beside DIR) matches
    README, whose headings are the notebooks' titles; it said "differ", the headings falling
    back to the folder names."""
    import argparse
    import shutil

    from advlens.paths import figures_dir

    copy = tmp_path / "figures"
    for csv in figures_dir().glob("*/*_findings.csv"):
        (copy / csv.parent.name).mkdir(parents=True)
        shutil.copy2(csv, copy / csv.parent.name / csv.name)
    assert book.readme_command(argparse.Namespace(figures=str(copy), check=True)) == 0, \
        capsys.readouterr().out


def _killed_build(run: Path, out: Path, readme: Path, when: str) -> None:
    """``book.build`` in a child process that dies like a killed one (``os._exit``, no cleanup)
    once the new site is written (``when="written"``) or just after the previous book was moved
    aside (``when="swapping"``)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import os, pathlib
        from advlens import book
        when = {when!r}
        if when == "written":
            write = book._write
            def _write(*args):
                write(*args)
                os._exit(9)
            book._write = _write
        else:
            rename = pathlib.Path.rename
            def _rename(self, target):
                done = rename(self, target)
                if self.name == {out.name!r} and ".old-" in str(target):
                    os._exit(9)
                return done
            pathlib.Path.rename = _rename
        book.build({str(run)!r}, {str(out)!r}, readme={str(readme)!r})
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo_root() / "lib")})
    assert done.returncode == 9, done.stderr


def test_a_killed_build_leaves_nothing_behind_and_loses_no_book(tmp_path: Path) -> None:
    """A build killed mid-way left its hidden ``.book.building-*`` folder (a whole site) beside
    the book for good; killed between its two renames it left the previous book hidden in
    ``.book.old-*`` and no book. The next build clears both, and the book is back meanwhile."""
    run, out, readme = fake_run(tmp_path / "run"), tmp_path / "book", repo_root() / "README.md"

    def hidden() -> list[str]:
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".book.")
                      and p.is_dir())

    _killed_build(run, out, readme, "written")
    assert not out.exists() and [h.split("-")[0] for h in hidden()] == [".book.building"]
    book.build(run, out, readme=readme)
    assert hidden() == [] and (out / "index.html").is_file()
    (out / "mine.txt").write_text("the previous book")
    _killed_build(run, out, readme, "swapping")
    assert not out.exists() and len(hidden()) == 2
    book._remove_leftovers(out)  # what the next build does first, under its lock
    assert hidden() == [] and (out / "mine.txt").read_text() == "the previous book"
    book.build(run, out, readme=readme)
    assert hidden() == [] and not (out / "mine.txt").exists()


@pytest.mark.parametrize("record", ['["a list"]', '{"parameters": "laptop", "compute": {}}'])
def test_a_figure_record_of_another_shape_is_named(tmp_path: Path, record: str) -> None:
    """A run folder from elsewhere whose figure's ``*.provenance.json`` is valid JSON but not
    the record plots write stopped the book with a bare AttributeError naming no file."""
    run = fake_run(tmp_path / "run")
    (run / "07_example" / "07a_line.provenance.json").write_text(record)
    with pytest.raises(ValueError, match=r"07a_line\.provenance\.json is not a provenance "
                                         "record"):
        book.build(run, tmp_path / "book", readme=repo_root() / "README.md")


def _findings_run(root: Path, notebook: str, preset: str) -> Path:
    """A run folder ``root`` holding one notebook's findings table of ``preset``."""
    import json

    folder = root / notebook
    folder.mkdir(parents=True)
    number = notebook[:2]
    (folder / f"{number}_findings.csv").write_text("finding,holds,evidence,paper\nx,True,e,p\n")
    (folder / f"{number}_findings.provenance.json").write_text(
        json.dumps({"parameters": {"preset": preset}}))
    return folder


@pytest.mark.parametrize("check", [False, True])
def test_readme_refuses_a_run_of_another_preset(tmp_path: Path, check: bool,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`readme --figures <smoke run>` wrote the smoke verdicts into README under "What holds
    at laptop scale ... figures/" (and `--check` recommended doing so)."""
    import argparse

    from advlens.paths import repo_root

    before = (repo_root() / "README.md").read_bytes()
    _findings_run(tmp_path / "run", "01_similarity_inversion", "smoke")
    args = argparse.Namespace(figures=str(tmp_path / "run"), check=check)
    assert book.readme_command(args) == 2
    assert "preset 'smoke'" in capsys.readouterr().err
    assert (repo_root() / "README.md").read_bytes() == before


@pytest.mark.parametrize("check", [False, True])
def test_readme_refuses_an_interrupted_run(tmp_path: Path, check: bool,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`readme --check` said "README findings match" of a run whose run.json says interrupted
    (its tables partial or stale), and without --check it rewrote README from them; book and
    verify refuse such a run (review)."""
    import argparse
    import json

    from advlens.paths import repo_root

    before = (repo_root() / "README.md").read_bytes()
    folder = _findings_run(tmp_path / "run", "03_adversarial_alignment", "laptop")
    (folder / "run.json").write_text(json.dumps({"status": "interrupted", "error": "Ctrl-C"}))
    args = argparse.Namespace(figures=str(tmp_path / "run"), check=check)
    assert book.readme_command(args) == 1
    err = capsys.readouterr().err
    assert "did not complete (03_adversarial_alignment: interrupted (Ctrl-C))" in err
    assert "--only NN --out" in err
    assert (repo_root() / "README.md").read_bytes() == before


def test_the_readme_page_loads_no_script() -> None:
    """README's markdown reaches readme.html with any raw HTML shown as text, so no script or
    event handler runs (a title or finding from a run's text passed through as markup; a
    regex that stripped them missed handlers after a quoted '>' and cut attribute values)."""
    from advlens import findings

    page = book._markdown_html(
        "# 01 Title <script>alert(1)</script>\n\n- f <b>bold</b> 1\n"
        '\nx <img alt="a > b" src=x onerror="alert(2)"> and `<preset>`\n'
        f"\n{findings.START}\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n{findings.END}\n")
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;bold" in page
    assert "<code>&lt;preset&gt;</code>" in page and "<table>" in page
    assert "findings:start" not in page and "findings:end" not in page
