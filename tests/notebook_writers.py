"""Tiny notebooks for the runner's tests: a tagged parameters cell and one code cell."""

from __future__ import annotations

from pathlib import Path

import nbformat

DEFAULT_PARAMS = 'preset = "laptop"\nout_dir = None\n'


def write_notebook(path: Path, body: str, params: str = DEFAULT_PARAMS) -> None:
    """A notebook at ``path``: a title, the ``parameters`` cell ``params``, then ``body``."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
