"""The rendered book: built offline from a run, every page opened in headless Chromium (no broken
image, no console error, a screenshot kept under out/book-screenshots/)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
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
