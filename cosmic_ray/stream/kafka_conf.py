"""librdkafka settings for consumers and producers, built once from :class:`Settings` (SASL from the
environment). The password goes only into the client's configuration, never into a log line."""

from __future__ import annotations

from typing import Any

from cosmic_ray.core.config import Settings

SECRET_KEYS = ("sasl.password",)


def client_conf(bootstrap: str, settings: Settings | None = None) -> dict[str, Any]:
    """The settings every client of ``bootstrap`` shares (security protocol, SASL credentials).

    Args:
        bootstrap: ``host:port[,host:port...]`` of the brokers.
        settings: where the security settings come from (default: the environment).
    """
    settings = settings or Settings()
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        "client.id": "cosmic-ray",
    }
    if settings.kafka_sasl_mechanism:
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        conf["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password is not None:
        conf["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    return conf


def consumer_conf(bootstrap: str, group: str, settings: Settings | None = None) -> dict[str, Any]:
    """A consumer that commits by hand (only after the lake and the store have its batch) and
    starts a new group at the earliest offset."""
    return {
        **client_conf(bootstrap, settings),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        # a batch that takes long to classify must not make the group think the consumer died...
        "max.poll.interval.ms": 300_000,
        # ...while a restarted consumer rejoins in seconds (a long session timeout delays each join)
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 3_000,
    }


def producer_conf(bootstrap: str, settings: Settings | None = None) -> dict[str, Any]:
    """A producer whose every message is acknowledged by all in-sync replicas before it counts."""
    return {**client_conf(bootstrap, settings), "acks": "all", "linger.ms": 5}


def redacted(conf: dict[str, Any]) -> dict[str, Any]:
    """``conf`` fit for a log line: secret values replaced."""
    return {k: ("***" if k in SECRET_KEYS else v) for k, v in conf.items()}
