"""The rendered book: a static, offline HTML site from a run's executed notebooks and README.

``python -m advlens book [--run DIR] [--out DIR]`` (``make book``) writes

- ``index.html``: a landing page with a gallery of every figure the run saved (its caption, and
  the paper figure it corresponds to, both from the figure's provenance record);
- one page per executed numbered notebook (nbconvert's JupyterLab template, scripts removed:
  nothing is fetched from the network, at build time or when the page is opened);
- ``readme.html``: README.md.

``python -m advlens readme`` regenerates README's "What holds" section from ``figures/``.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from advlens import findings
from advlens.io import atomic_write_bytes, read_json
from advlens.paths import figures_dir, repo_root

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S | re.I)
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
    """One gallery entry: the PNG (relative to the book) and what it shows."""

    notebook: str
    name: str
    png: str
    csv: str | None
    caption: str
    paper_figure: str


def _page(title: str, body: str, nav: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
            f"<body>{nav}\n{body}\n</body></html>\n")


def _nav(notebooks: list[str]) -> str:
    links = ['<a href="index.html">advlens book</a>', '<a href="readme.html">README</a>']
    links += [f'<a href="{n}.html">{n[:2]}</a>' for n in notebooks]
    style = "font: 14px system-ui, sans-serif; background: #f3f3f3; padding: .5em 1em"
    return f'<nav class="advlens" style="{style}">{" &nbsp; ".join(links)}</nav>'


def notebook_html(path: Path, nav: str) -> str:
    """An executed notebook as one self-contained HTML page (images inline, no scripts)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", mathjax_url="", require_js_url="")
    body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4))
    body = _SCRIPT.sub("", body)
    return re.sub(r"(<body[^>]*>)", lambda m: f"{m.group(1)}\n{nav}", body, count=1)


def gallery(run: Path, out: Path) -> list[Figure]:
    """Copy every figure PNG (and its CSV) of ``run`` under ``out/figures`` and describe it."""
    entries = []
    for png in sorted(run.glob("*/*.png")):
        notebook, name = png.parent.name, png.stem
        record_path = png.with_name(f"{name}.provenance.json")
        record = read_json(record_path) if record_path.exists() else {}
        target = out / "figures" / notebook
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, target / png.name)
        csv = png.with_suffix(".csv")
        if csv.exists():
            shutil.copy2(csv, target / csv.name)
        entries.append(Figure(notebook, name, f"figures/{notebook}/{png.name}",
                              f"figures/{notebook}/{csv.name}" if csv.exists() else None,
                              str(record.get("caption", "")),
                              str(record.get("paper_figure", ""))))
    return entries


def _landing(entries: list[Figure], titles: dict[str, str], readme_intro: str) -> str:
    parts = ["<h1>advlens — the book</h1>", readme_intro, "<h2>Notebooks</h2><ul>"]
    parts += [f'<li><a href="{n}.html">{html.escape(t)}</a></li>' for n, t in titles.items()]
    parts.append('<li><a href="readme.html">README</a></li></ul><h2>Figure gallery</h2>')
    for notebook in sorted({e.notebook for e in entries}):
        parts.append(f"<h3>{html.escape(titles.get(notebook, notebook))}</h3>"
                     f'<div class="gallery">')
        for e in (e for e in entries if e.notebook == notebook):
            paper = (f'<br><span class="paperfig">Corresponds to: '
                     f'{html.escape(e.paper_figure or "no figure in the papers")}</span>')
            data = f' · <a href="{e.csv}">data (CSV)</a>' if e.csv else ""
            parts.append(f'<figure><a href="{e.png}"><img src="{e.png}" alt="{e.name}"></a>'
                         f"<figcaption><b>{html.escape(e.name)}</b>: "
                         f"{html.escape(e.caption)}{paper}{data}</figcaption></figure>")
        parts.append("</div>")
    return "\n".join(parts)


def _markdown_html(text: str) -> str:
    import mistune

    return str(mistune.create_markdown(plugins=["table"], escape=False)(text))


def build(run: str | Path | None = None, out: str | Path | None = None,
          readme: str | Path | None = None) -> Path:
    """Build the book from a run folder.

    Parameters
    ----------
    run: a run's output folder (``figures/`` by default), holding ``<notebook>/<notebook>.ipynb``
        (the executed copies) and the figures.
    out: where the site goes (default ``out/book``); it is replaced.
    readme: the README to render (default the repository's).

    Returns
    -------
    The path of ``index.html``.
    """
    run = Path(run) if run is not None else figures_dir()
    out = Path(out) if out is not None else repo_root() / "out" / "book"
    readme = Path(readme) if readme is not None else repo_root() / "README.md"
    executed = sorted(p for p in run.glob("*/*.ipynb")
                      if _NUMBERED.match(p.stem) and p.parent.name == p.stem)
    if not executed:
        raise FileNotFoundError(f"no executed notebooks (<NN_name>/<NN_name>.ipynb) under {run}; "
                                "run them first: make reproduce, or python -m advlens run.")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    titles = {p.stem: findings.notebook_title(p) for p in executed}
    nav = _nav(list(titles))
    for path in executed:
        atomic_write_bytes(out / f"{path.stem}.html", notebook_html(path, nav).encode())
    text = readme.read_text() if readme.exists() else "# advlens\n"
    intro = text.split("\n## ", 1)[0].split("\n", 1)[-1]
    atomic_write_bytes(out / "readme.html",
                       _page("advlens README", _markdown_html(text), nav).encode())
    index = out / "index.html"
    atomic_write_bytes(index, _page("advlens book", _landing(
        gallery(run, out), titles, _markdown_html(intro)), nav).encode())
    return index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``book`` subcommand's arguments."""
    parser.add_argument("--run", default=None, help="run folder (default: figures/)")
    parser.add_argument("--out", default=None, help="site folder (default: out/book)")


def command(args: argparse.Namespace) -> int:
    """Build the book; print where its landing page is."""
    print(f"book: {build(args.run, args.out)}")
    return 0


def add_readme_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``readme`` subcommand's arguments."""
    parser.add_argument("--figures", default=None, help="results folder (default: figures/)")
    parser.add_argument("--check", action="store_true",
                        help="only check: exit 1 when README differs from the tables")


def readme_command(args: argparse.Namespace) -> int:
    """Rewrite (or ``--check``) README's generated findings section."""
    path = repo_root() / "README.md"
    text = path.read_text()
    body = findings.readme_section(args.figures or figures_dir())
    if args.check:
        same = findings.current_section(text) == body.strip("\n")
        print("README findings match figures/" if same else
              "README findings differ from figures/; run `python -m advlens readme`")
        return 0 if same else 1
    atomic_write_bytes(path, findings.replace_section(text, body).encode())
    print(f"README findings section regenerated from {args.figures or figures_dir()}")
    return 0
