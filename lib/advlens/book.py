"""The rendered book: a static, offline HTML site from a run's executed notebooks and README.

``python -m advlens book [--run DIR] [--out DIR]`` (``make book``) writes

- ``index.html``: a landing page with a gallery of every figure the run saved (its caption, and
  the paper figure it corresponds to, both from the figure's provenance record; links to its CSV
  and to that record);
- one page per executed numbered notebook (nbconvert's JupyterLab template, scripts removed:
  nothing is fetched from the network, at build time or when the page is opened);
- ``readme.html``: README.md, its findings section the run's own (the committed reference's
  are README's).

``--out`` must be new, empty or a previous book (marked by ``.advlens-book``); it must not overlap
the run. A run whose notebooks' ``run.json`` does not say ``completed`` is refused (built with a
banner under ``--allow-incomplete``).

``python -m advlens readme`` regenerates README's "What holds" section from ``figures/``.
"""

from __future__ import annotations

import argparse
import glob
import html
import os
import re
import shlex
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from advlens import findings, provenance
from advlens.io import atomic_write_bytes, file_lock, temp_lock_path
from advlens.paths import figures_dir, repo_root

# a script element (its end tag may hold spaces, "</script >")
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.S | re.I)
_NUMBERED = re.compile(r"^\d\d_.+$")
CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 2em;
       color: #222; }
nav.advlens { background: #f3f3f3; padding: .5em 1em; margin-bottom: 1em; font-size: 14px; }
nav.advlens a { margin-right: 1em; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
           gap: 1.2em; }
figure { margin: 0; border: 1px solid #ddd; padding: .6em; background: #fff; }
figure img { width: 100%; height: auto; }
figcaption { font-size: 13px; line-height: 1.35; }
.paperfig { color: #555; font-style: italic; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 6px; }
"""


@dataclass(frozen=True)
class Figure:
    """One gallery entry: the PNG, its CSV and provenance record (relative to the book) and what
    it shows."""

    notebook: str
    name: str
    png: str
    csv: str | None
    caption: str
    paper_figure: str
    provenance: str | None = None


def _page(title: str, body: str, nav: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
            f"<body>{nav}\n{body}\n</body></html>\n")


def _href(path: str) -> str:
    """A relative link to ``path`` as an attribute value: percent-encoded (a ``#``, ``%`` or
    ``?`` in a file name would end the path) and HTML-escaped."""
    return html.escape(quote(path), quote=True)


def _nav(notebooks: list[str]) -> str:
    links = ['<a href="index.html">advlens book</a>', '<a href="readme.html">README</a>']
    links += [f'<a href="{_href(f"{n}.html")}">{html.escape(n[:2])}</a>' for n in notebooks]
    style = "font: 14px system-ui, sans-serif; background: #f3f3f3; padding: .5em 1em"
    return f'<nav class="advlens" style="{style}">{" &nbsp; ".join(links)}</nav>'


def notebook_html(path: Path, nav: str) -> str:
    """An executed notebook as one self-contained HTML page (images inline, no scripts)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", mathjax_url="", require_js_url="")
    # the page's <title>: nbconvert's default is "Notebook" for every page
    resources = {"metadata": {"name": findings.notebook_title(path)}}
    body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4), resources)
    body = _SCRIPT.sub("", body)
    return re.sub(r"(<body[^>]*>)", lambda m: f"{m.group(1)}\n{nav}", body, count=1)


def gallery(run: Path, out: Path) -> list[Figure]:
    """Copy every figure PNG (and its CSV and provenance record) of ``run`` under
    ``out/figures`` and describe it."""
    entries = []
    for png in sorted(run.glob("*/*.png")):
        notebook, name = png.parent.name, png.stem
        record_path = png.with_name(f"{name}.provenance.json")
        record = provenance.read_figure_record(record_path) if record_path.exists() else {}
        target = out / "figures" / notebook
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, target / png.name)
        copied = {}  # the CSV and the provenance record, where saved
        for path in (png.with_suffix(".csv"), record_path):
            if path.exists():
                shutil.copy2(path, target / path.name)
                copied[path] = f"figures/{notebook}/{path.name}"
        entries.append(Figure(notebook, name, f"figures/{notebook}/{png.name}",
                              copied.get(png.with_suffix(".csv")),
                              str(record.get("caption", "")),
                              str(record.get("paper_figure", "")), copied.get(record_path)))
    return entries


def _landing(entries: list[Figure], titles: dict[str, str], readme_intro: str) -> str:
    parts = ["<h1>advlens — the book</h1>", readme_intro, "<h2>Notebooks</h2><ul>"]
    parts += [f'<li><a href="{_href(f"{n}.html")}">{html.escape(t)}</a></li>'
              for n, t in titles.items()]
    parts.append('<li><a href="readme.html">README</a></li></ul><h2>Figure gallery</h2>')
    for notebook in sorted({e.notebook for e in entries}):
        parts.append(f"<h3>{html.escape(titles.get(notebook, notebook))}</h3>"
                     f'<div class="gallery">')
        for e in (e for e in entries if e.notebook == notebook):
            paper = (f'<br><span class="paperfig">Corresponds to: '
                     f'{html.escape(e.paper_figure or "no figure in the papers")}</span>')
            data = f' · <a href="{_href(e.csv)}">data (CSV)</a>' if e.csv else ""
            if e.provenance:  # the commit, parameters and machine that made it
                data += f' · <a href="{_href(e.provenance)}">provenance (JSON)</a>'
            png, alt = _href(e.png), html.escape(e.name, quote=True)
            parts.append(f'<figure><a href="{png}"><img src="{png}" alt="{alt}"></a>'
                         f"<figcaption><b>{html.escape(e.name)}</b>: "
                         f"{html.escape(e.caption)}{paper}{data}</figcaption></figure>")
        parts.append("</div>")
    return "\n".join(parts)


def _markdown_html(text: str) -> str:
    """README's markdown as HTML, any raw HTML in it shown as text (a finding's or a title's
    text from a run reached readme.html as markup, scripts included; README's own ``<preset>``
    placeholders are in code spans); the findings section's markers, HTML comments, left out."""
    import mistune

    text = text.replace(findings.START, "").replace(findings.END, "")
    return str(mistune.create_markdown(plugins=["table"], escape=True)(text))


MARKER = ".advlens-book"
_BOOK_FILE = re.compile(r"^(index|readme|\d\d_.+)\.html$")


def _is_book(folder: Path) -> bool:
    """Whether ``folder`` holds a book (its :data:`MARKER`, or, for a book built before the
    marker existed, nothing but the book's own pages and figures)."""
    if (folder / MARKER).is_file():
        return True
    names = [p.name for p in folder.iterdir()]
    index = folder / "index.html"
    return (index.is_file() and 'nav class="advlens"' in index.read_text(errors="replace")
            and all(_BOOK_FILE.match(n) or n == "figures" for n in names))


def _check_out(run: Path, out: Path) -> None:
    """Refuse an ``out`` whose replacement would delete anything but a previous book."""
    r, o = run.resolve(), out.resolve()
    if o == r or o.is_relative_to(r) or r.is_relative_to(o):
        raise ValueError(f"--out {out} overlaps the run folder {run}: replacing the book would "
                         "delete the run. Choose a folder outside it (default: out/book).")
    if o.exists() and not o.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder; choose another --out.")
    if o.is_dir() and any(o.iterdir()) and not _is_book(o):
        raise FileExistsError(f"--out {out} is not empty and holds no book (no {MARKER}); "
                              "the book replaces its folder, so it will not delete this one. "
                              "Choose a new or empty folder, or move its contents away.")


def _listed(incomplete: dict[str, str]) -> str:
    """``incomplete`` (notebook -> status) as one line."""
    return "; ".join(f"{name}: {status}" for name, status in incomplete.items())


def _banner(text: str) -> str:
    return ('<div class="advlens-incomplete" style="background: #c4553f; color: #fff; '
            'padding: .8em 1em; margin: 1em 0; font: bold 16px system-ui, sans-serif">'
            f"{html.escape(text)}</div>")


def _presets(run: Path) -> str:
    """The presets of ``run``'s findings tables as ``", preset P"`` (each with its notebooks when
    a reused run folder holds several), from their provenance records; ``""`` when none says."""
    by_preset: dict[str, list[str]] = {}
    for record in sorted(run.glob("*/*_findings.provenance.json")):
        if preset := provenance.read_figure_record(record).get("parameters", {}).get("preset"):
            by_preset.setdefault(str(preset), []).append(record.parent.name)
    if len(by_preset) <= 1:
        return "".join(f", preset {p}" for p in by_preset)
    return ", presets " + "; ".join(f"{p} ({', '.join(n)})" for p, n in sorted(by_preset.items()))


def _findings_of(run: Path, text: str) -> str:
    """README ``text`` with its findings section replaced by ``run``'s own (README's are those of
    ``figures/`` when ``python -m advlens readme`` last ran: the committed reference's, which
    another run's verdicts, or a rerun into ``figures/``, may contradict)."""
    if findings.START not in text or findings.END not in text:
        return text  # no generated findings: nothing to contradict the run
    reference = run.resolve() == figures_dir().resolve()
    try:
        section = findings.readme_section(run)
    except FileNotFoundError:
        section = None
    if reference and (section is None
                      or section.strip("\n") == findings.current_section(text)):
        return text  # README's findings are this run's
    preset = _presets(run)
    readmes = ("`figures/` before this run: `python -m advlens readme` regenerates them"
               if reference else "the committed reference, `figures/`")
    body = (f"*The findings of the run in `{run}`{preset}, which this book shows (README.md "
            f"holds those of {readmes}).*\n\n{section}" if section is not None else
            f"*The run in `{run}` saved no findings tables; the committed reference's "
            "(`figures/`, in README.md) are not this run's, so none are shown here.*")
    return findings.replace_section(text, body)


def _folder_mode() -> int:
    """The mode ``mkdir`` gives a new folder: 0o777 less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def build(run: str | Path | None = None, out: str | Path | None = None,
          readme: str | Path | None = None, *, allow_incomplete: bool = False) -> Path:
    """Build the book from a run folder.

    Parameters
    ----------
    run: a run's output folder (``figures/`` by default), holding ``<notebook>/<notebook>.ipynb``
        (the executed copies) and the figures.
    out: where the site goes (default ``out/book``): a new or empty folder, or a previous book,
        which is replaced; it must not overlap ``run``.
    readme: the README to render (default the repository's); for a run other than
        ``figures/`` its findings section is replaced by the run's own.
    allow_incomplete: build even when a notebook's ``run.json`` says it did not complete
        (``running``/``failed``); its pages then carry a banner saying so. Default: refuse.

    Returns
    -------
    The path of ``index.html``.
    """
    run = Path(run) if run is not None else figures_dir()
    out = (Path(out) if out is not None else repo_root() / "out" / "book").resolve()
    readme = Path(readme) if readme is not None else repo_root() / "README.md"
    executed = sorted(p for p in run.glob("*/*.ipynb")
                      if _NUMBERED.match(p.stem) and p.parent.name == p.stem)
    if not executed:
        raise FileNotFoundError(f"no executed notebooks (<NN_name>/<NN_name>.ipynb) under {run}; "
                                "run them first: make reproduce, or python -m advlens run.")
    _check_out(run, out)
    incomplete = provenance.incomplete_notebooks(run)
    listed = _listed(incomplete)
    if incomplete and not allow_incomplete:
        raise RuntimeError(f"the run {run} did not complete ({listed}); its outputs are partial "
                           "or stale. Rerun those notebooks (python -m advlens run --only NN "
                           "--out RUN), or build anyway with --allow-incomplete.")
    if incomplete:
        warnings.warn(f"building the book of an incomplete run {run} ({listed})", stacklevel=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(temp_lock_path("book", out)):
        _remove_leftovers(out)
        # built beside ``out`` and swapped in at the end: a failed build leaves the previous book
        site = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
        site.chmod(_folder_mode())  # mkdtemp's 0o700 would hide the book from a web server
        try:
            _write(run, site, readme, executed, incomplete)
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
                out.rename(old / out.name)
                site.rename(out)
                shutil.rmtree(old)
            else:
                site.rename(out)
        finally:
            if site.exists():
                shutil.rmtree(site)
    return out / "index.html"


def _remove_leftovers(out: Path) -> None:
    """Clear the hidden folders a killed build of ``out`` left beside it: its half-built site is
    deleted, and the previous book it was swapping out is put back where ``out`` is missing (a
    kill between the two renames), else deleted. Called under the build's lock, so no build is
    still using them."""
    for left in sorted(out.parent.glob(f"{glob.escape(f'.{out.name}.old-')}*")):
        if left.is_dir() and not left.is_symlink():
            if not out.exists() and (left / out.name).is_dir():
                (left / out.name).rename(out)
            shutil.rmtree(left)
    for left in out.parent.glob(f"{glob.escape(f'.{out.name}.building-')}*"):
        if left.is_dir() and not left.is_symlink():
            shutil.rmtree(left)


def _write(run: Path, site: Path, readme: Path, executed: list[Path],
           incomplete: dict[str, str]) -> None:
    (site / MARKER).write_text("a book built by `python -m advlens book`; the next build "
                               "replaces this folder.\n")
    titles = {p.stem: findings.notebook_title(p) for p in executed}
    nav = _nav(list(titles))
    for path in executed:
        page = notebook_html(path, nav)
        if path.stem in incomplete:
            warning = _banner(f"This notebook did not complete: {incomplete[path.stem]}. Its "
                              "outputs below are partial or stale.")
            page = page.replace(nav, nav + warning, 1)
        atomic_write_bytes(site / f"{path.stem}.html", page.encode())
    text = readme.read_text() if readme.exists() else "# advlens\n"
    intro = text.split("\n## ", 1)[0].split("\n", 1)[-1]
    text = _findings_of(run, text)
    unfinished = (_banner(f"This run did not complete: {_listed(incomplete)}. Its figures "
                          "and findings are partial or stale.") if incomplete else "")
    # the README page shows the run's findings: those of an unfinished notebook too
    atomic_write_bytes(site / "readme.html", _page("advlens README", unfinished
                                                   + _markdown_html(text), nav).encode())
    landing = unfinished + _landing(gallery(run, site), titles, _markdown_html(intro))
    atomic_write_bytes(site / "index.html", _page("advlens book", landing, nav).encode())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``book`` subcommand's arguments."""
    parser.add_argument("--run", default=None, help="run folder (default: figures/)")
    parser.add_argument("--out", default=None,
                        help="site folder (default: out/book): new, empty or a previous book")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="build even when a notebook of the run did not complete (its "
                             "pages carry a banner); default: refuse")


def command(args: argparse.Namespace) -> int:
    """Build the book; print where its landing page is."""
    try:
        index = build(args.run, args.out, allow_incomplete=args.allow_incomplete)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as err:
        print(f"book: {err}", file=sys.stderr)
        return 1
    print(f"book: {index}")
    return 0


def add_readme_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``readme`` subcommand's arguments."""
    parser.add_argument("--figures", default=None, help="results folder (default: figures/)")
    parser.add_argument("--check", action="store_true",
                        help="only check: exit 1 when README differs from the tables")


def readme_command(args: argparse.Namespace) -> int:
    """Rewrite (or ``--check``) README's generated findings section."""
    from advlens.verify import run_preset

    path = repo_root() / "README.md"
    text = path.read_text()
    source = Path(args.figures) if args.figures else figures_dir()
    preset = run_preset(source)
    if preset not in (None, "laptop"):  # the section says "at laptop scale", from figures/
        print(f"{source} is a run of preset {preset!r}; README's findings section reports the "
              "laptop preset (figures/): give a laptop run, or read this run's findings in its "
              f"book (python -m advlens book --run {shlex.quote(str(source))}).",
              file=sys.stderr)
        return 2
    incomplete = provenance.incomplete_notebooks(source)
    if incomplete:  # (its tables are partial or stale; book and verify refuse it too)
        print(f"the run {source} did not complete ({_listed(incomplete)}); README's findings "
              "come from completed runs only: rerun those notebooks (python -m advlens run "
              f"--only NN{'' if args.figures is None else ' --out ' + shlex.quote(args.figures)})"
              ".", file=sys.stderr)
        return 1
    body = findings.readme_section(source)
    if args.check:
        same = findings.current_section(text) == body.strip("\n")
        # the fix must name the same tables: a bare `readme` regenerates from figures/
        folder, again = (("figures/", "") if args.figures is None else
                         (args.figures, f" --figures {shlex.quote(args.figures)}"))
        print(f"README findings match {folder}" if same else
              f"README findings differ from {folder}; run `python -m advlens readme{again}`")
        return 0 if same else 1
    atomic_write_bytes(path, findings.replace_section(text, body).encode())
    print(f"README findings section regenerated from {args.figures or figures_dir()}")
    return 0
