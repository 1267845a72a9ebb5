"""The Avro container reader (public fastavro API only) decodes every real ZTF packet exactly as
``fastavro.reader`` does, and refuses the foreign one."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import fastavro
import pytest

from cosmic_ray.sources import avro, ztf


def _packets(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "ztf-alerts").rglob("*.avro"))


def test_every_real_packet_decodes_as_fastavro_reader_does(shared_data):
    versions = set()
    compared = 0
    for path in _packets(shared_data):
        data = path.read_bytes()
        expected = list(fastavro.reader(io.BytesIO(data)))
        if not isinstance(expected[0], dict) or "candidate" not in expected[0]:
            continue  # the foreign (DECam) packet: below
        got = avro.read_records(data, ("objectId", "candid", "candidate"))
        assert got == expected, path.name
        versions.add(expected[0]["schemavsn"])
        compared += 1
    assert compared >= 90
    assert {"2.0", "3.1", "3.2", "3.3", "3.5", "4.02"} <= versions


def test_the_foreign_packet_is_refused_before_decoding(shared_data):
    foreign = next(p for p in _packets(shared_data) if p.name.startswith("DC21"))
    with pytest.raises(avro.ForeignSchemaError):
        avro.read_records(foreign.read_bytes(), ("objectId", "candid", "candidate"))
    result = ztf.parse(ztf.RawInput(str(foreign), foreign.read_bytes()))
    assert result.alerts == 0 and "not a ZTF alert" in result.quarantined[0][1]


def test_only_public_fastavro_names_are_used():
    """No ``fastavro.read`` / ``fastavro._*`` internals: only names fastavro exports at its top level."""
    source = Path(avro.__file__).read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert all(not n.startswith("fastavro.") for n in names), names
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "fastavro":
            assert node.attr in fastavro.__all__, node.attr
