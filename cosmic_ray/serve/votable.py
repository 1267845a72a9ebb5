"""VOTable answers (``astropy.io.votable``): tables of typed columns with UCDs and units, and the
error document IVOA Simple Cone Search 1.03 clients read.

A result is one RESOURCE (``type="results"``) holding ``<INFO name="QUERY_STATUS" value="OK"/>``
and one TABLE; an error is a RESOURCE with ``<INFO name="QUERY_STATUS" value="ERROR">message</INFO>``
and SCS 1.03's ``<INFO ID="Error" name="Error" value="message"/>``.

Example:
    >>> cols = [Column("object_id", "char", "meta.id;meta.main")]
    >>> votable_bytes(cols, [{"object_id": "ZTF21abiuvdk"}], "objects")[:5]
    b'<?xml'
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from astropy.io.votable.tree import Field, Info, Resource, TableElement, VOTableFile

#: Content type of a VOTable answer.
VOTABLE_MEDIA_TYPE = "application/x-votable+xml"
_VERSION = "1.4"


@dataclass(frozen=True)
class Column:
    """One column of a VOTable answer: its name (the row key), type, UCD, unit and description."""

    name: str
    datatype: str  # char, double, long, int, boolean
    ucd: str | None = None
    unit: str | None = None
    description: str | None = None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fill(column: Column) -> Any:
    return {"char": "", "double": math.nan, "long": 0, "int": 0, "boolean": False}[column.datatype]


def _document(infos: Iterable[Info]) -> tuple[VOTableFile, Resource]:
    vot = VOTableFile(version=_VERSION)
    resource = Resource(type="results")
    vot.resources.append(resource)
    resource.infos.extend(infos)
    return vot, resource


def _serialise(vot: VOTableFile) -> bytes:
    out = io.BytesIO()
    vot.to_xml(out, tabledata_format="tabledata")
    return out.getvalue()


def votable_bytes(
    columns: list[Column],
    rows: Sequence[Mapping[str, Any]],
    name: str,
    description: str | None = None,
    infos: Mapping[str, str] | None = None,
) -> bytes:
    """A VOTable of ``rows`` (dicts keyed by column name; None or NaN is a null cell).

    Args:
        columns: the table's columns, in order.
        rows: the rows.
        name: the TABLE's name.
        description: the TABLE's description.
        infos: more ``<INFO name= value=>`` of the RESOURCE (after ``QUERY_STATUS=OK``).
    """
    extra = [Info(name=k, value=str(v)) for k, v in (infos or {}).items()]
    vot, resource = _document([Info(name="QUERY_STATUS", value="OK"), *extra])
    table = TableElement(vot, name=name)
    if description:
        table.description = description
    resource.tables.append(table)
    for c in columns:
        f = Field(
            vot,
            name=c.name,
            ID=c.name,
            datatype=c.datatype,
            arraysize="*" if c.datatype == "char" else None,
            ucd=c.ucd,
            unit=c.unit,
        )
        if c.description:
            f.description = c.description
        table.fields.append(f)
    table.create_arrays(len(rows))
    for i, row in enumerate(rows):
        values, mask = [], []
        for c in columns:
            value = row.get(c.name)
            missing = _missing(value)
            values.append(_fill(c) if missing else value)
            mask.append(missing)
        table.array[i] = tuple(values)
        table.array.mask[i] = tuple(mask)
    return _serialise(vot)


def error_votable(message: str) -> bytes:
    """The error answer of a Simple Cone Search: ``QUERY_STATUS=ERROR`` with ``message``, and SCS 1.03's ``Error`` INFO."""
    status = Info(name="QUERY_STATUS", value="ERROR")
    status.content = message
    vot, _ = _document([status, Info(ID="Error", name="Error", value=message)])
    return _serialise(vot)
