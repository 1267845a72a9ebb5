"""The published classification schema (in the repo, packaged), the message-format dispatch and
the Kafka client settings (the SASL password reaches the client, never a log line)."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import fastavro
import pytest

from cosmic_ray.core.config import Settings
from cosmic_ray.stream import publish
from cosmic_ray.stream.decode import kind_of
from cosmic_ray.stream.kafka_conf import consumer_conf, redacted

ROW = {
    "object_id": "ZTF21abiuvdk",
    "candid": 1_650_000_000_015_015_000,
    "class": "SN Ia",
    "probabilities": {"SN Ia": 0.8, "SN II": 0.15, "TDE": 0.05},
    "open_set_score": 0.12,
    "novel": False,
    "rare": False,
    "model_version": "3",
    "neighbours": [{"object_id": "x", "label": "SN Ia", "distance": 0.1}],  # not published
}


def test_a_published_record_is_a_self_describing_avro_container_with_the_repo_schema():
    value = publish.encode(ROW)
    reader = fastavro.reader(io.BytesIO(value))
    schema = reader.writer_schema
    assert isinstance(schema, dict)
    assert [f["name"] for f in schema["fields"]] == [
        "object_id",
        "candid",
        "class",
        "probabilities",
        "open_set_score",
        "novel",
        "rare",
        "model_version",
        "classified_at",
    ]
    (record,) = publish.decode(value)
    assert record["candid"] == ROW["candid"] and record["class"] == "SN Ia"
    assert record["probabilities"] == pytest.approx(ROW["probabilities"])
    assert record["classified_at"].tzinfo is not None
    assert "neighbours" not in record


def test_the_schema_file_is_shipped_in_the_package_and_is_valid_avro():
    from importlib.resources import files

    text = files("cosmic_ray.stream").joinpath(publish.SCHEMA_FILE).read_text()
    parsed = fastavro.parse_schema(json.loads(text))
    assert parsed["name"] == "cosmic_ray.stream.Classification"


def test_a_row_missing_a_field_is_refused_not_published_half():
    bad = {k: v for k, v in ROW.items() if k != "model_version"}
    with pytest.raises(KeyError):
        publish.encode(bad)


def test_the_classification_time_is_kept_when_given():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    (record,) = publish.decode(publish.encode({**ROW, "classified_at": when}))
    assert record["classified_at"] == when


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"Obj\x01\x04\x14avro.codec", "ztf"),
        (b"\x00\x00\x00\x00\x07\x02body", "lsst"),
        (b"\x00\x00\x00", "unknown"),  # too short for magic byte + schema id + body
        (b'{"objectId": 1}', "unknown"),
        (b"", "unknown"),
    ],
)
def test_messages_are_dispatched_by_their_first_bytes(value, kind):
    assert kind_of(value) == kind


def test_the_sasl_password_reaches_the_client_and_never_the_log(monkeypatch, caplog):
    secret = "pw-" + "x7" * 8  # built at run time: no secret-like literal in the repo
    monkeypatch.setenv("COSMIC_RAY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("COSMIC_RAY_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("COSMIC_RAY_KAFKA_SASL_USERNAME", "broker-user")
    monkeypatch.setenv("COSMIC_RAY_KAFKA_SASL_PASSWORD", secret)
    settings = Settings()
    conf = consumer_conf("broker.example:9093", "g", settings)
    assert conf["sasl.password"] == secret and conf["security.protocol"] == "SASL_SSL"
    assert conf["auto.offset.reset"] == "earliest" and conf["enable.auto.commit"] is False
    assert secret not in repr(settings)
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("kafka settings %s", redacted(conf))
    assert secret not in caplog.text and "broker-user" in caplog.text
