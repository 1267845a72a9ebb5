"""Light curves as the caller wants them: rows (dicts), a pandas DataFrame or an astropy Table.

The server's CSV download (``format=csv``) is read with the standard ``csv`` module (empty cell =
null; numbers as floats, ``is_limit`` / ``candid`` as bool / int); a JSON light curve (older
servers, or ``format=json``) gives the same rows. pandas and astropy are imported only when asked for.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

TableKind = Literal["rows", "pandas", "astropy"]
_FLOATS = ("mjd", "mag", "magerr", "flux", "flux_err", "ra", "dec")
_INTS = ("candid",)
_BOOLS = ("is_limit",)
_UNITS = {"mjd": "d", "mag": "mag", "magerr": "mag"}


def _value(column: str, text: str) -> Any:
    if text == "":
        return None
    if column in _FLOATS:
        return float(text)
    if column in _INTS:
        return int(text)
    if column in _BOOLS:
        return text.strip().lower() in ("true", "1", "t", "yes")
    return text


def rows_from_csv(text: str) -> list[dict[str, Any]]:
    """The CSV download's rows, typed."""
    return [{k: _value(k, v or "") for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def rows_from_json(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON light curve's points as rows (each with the object id, and ``kind`` when the server omits it)."""
    out = []
    for p in body.get("points", []):
        row = {"object_id": body.get("object_id"), **p}
        row.setdefault("kind", "upper_limit" if p.get("is_limit") else "detection")
        out.append(row)
    return out


def convert(rows: list[dict[str, Any]], as_: TableKind) -> Any:
    """``rows`` as ``rows`` (unchanged), a pandas DataFrame, or an astropy Table (units on mjd and magnitudes).

    Raises:
        ValueError: an unknown ``as_``.
        ImportError: pandas or astropy is not installed.
    """
    if as_ == "rows":
        return rows
    if as_ == "pandas":
        import pandas as pd  # deferred: optional dependency of the client

        return pd.DataFrame.from_records(rows)
    if as_ == "astropy":
        from astropy.table import Table  # deferred: optional dependency of the client

        table = Table(rows=rows) if rows else Table()
        for name, unit in _UNITS.items():
            if name in table.colnames:
                table[name].unit = unit
        return table
    raise ValueError(f"unknown table kind {as_!r}: use rows, pandas or astropy")


def table_from_votable(body: bytes) -> Any:
    """The VOTable download as an astropy Table."""
    from astropy.io.votable import parse_single_table  # deferred: optional dependency of the client

    return parse_single_table(io.BytesIO(body)).to_table()
