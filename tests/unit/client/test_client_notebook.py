"""docs/client.ipynb is a valid notebook whose code cells compile and call only what the client has
(it is not executed here: it talks to `make demo`'s server)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

from cosmic_ray.client import Client

NOTEBOOK = Path(__file__).resolve().parents[3] / "docs" / "client.ipynb"


def test_the_notebook_is_valid_and_its_code_compiles():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 8
    for i, source in enumerate(code):
        compile(source, f"{NOTEBOOK.name}[{i}]", "exec")
    calls = {
        node.func.attr
        for source in code
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "api"
    }
    assert calls >= {"cone_search", "object", "lightcurve", "cutouts", "create_watchlist", "add_label", "labels"}
    assert all(callable(getattr(Client, name, None)) for name in calls), calls - set(dir(Client))
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # shipped without outputs
