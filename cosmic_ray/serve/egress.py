"""Where a webhook may point: public addresses only, unless the operator allows a host or network.

A webhook target chosen by a user must not reach the cluster's own services (Ray's job API, MLflow,
the event store) or a cloud metadata service (169.254.169.254). :func:`resolve_target` resolves the
URL's host and refuses it when any address is private, loopback, link-local, multicast, reserved or
unspecified, unless the host name, the address or a network (CIDR) containing it is in the
allow-list (``COSMIC_RAY_WEBHOOK_ALLOW``). It runs when a subscription is made and again before
every delivery, and the delivery connects to the address checked then (the host name goes in
``Host`` and TLS SNI), so a DNS answer that changes in between (rebinding) cannot move it.

Example:
    >>> resolve_target("http://169.254.169.254/latest/meta-data", allow=())
    Traceback (most recent call last):
    ...
    cosmic_ray.serve.egress.EgressRefused: webhook host 169.254.169.254 resolves to 169.254.169.254, a link-local address: refused (allow it with COSMIC_RAY_WEBHOOK_ALLOW)
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from cosmic_ray.core.errors import CosmicRayError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(CosmicRayError):
    """A webhook URL that may not be called (a bad scheme, no host, or an address that is not public)."""


@dataclass(frozen=True)
class Target:
    """A checked webhook target: the URL, its host name, and the address to connect to."""

    url: str
    host: str
    address: str


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _kind(ip.ipv4_mapped)
    for attribute, kind in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_private", "private"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attribute):
            return kind
    if not ip.is_global:
        return "non-global"
    return None


def _allowed(host: str, ip: IPAddress, allow: Sequence[str]) -> bool:
    for item in allow:
        item = item.strip().lower()
        if not item:
            continue
        if item == host.lower():
            return True
        try:
            if ip in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_url(url: str) -> tuple[str, int]:
    """The host and port of an ``http``/``https`` URL without user information.

    Raises:
        EgressRefused: another scheme, no host, or credentials in the URL's authority.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressRefused(f"not a valid webhook URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise EgressRefused(f"webhook URL scheme {parts.scheme!r} is not http or https")
    if not parts.hostname:
        raise EgressRefused("webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise EgressRefused("webhook URL carries user information: put the secret in its path instead")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve_target(url: str, allow: Sequence[str]) -> Target:
    """Resolve ``url``'s host and check every address it has.

    Raises:
        EgressRefused: a bad URL, a host that does not resolve, or an address that is not public and not allowed.
    """
    host, port = check_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:  # gaierror, an IDNA error, an embedded NUL
        raise EgressRefused(f"webhook host {host} does not resolve: {exc}") from None
    addresses = sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
    if not addresses:
        raise EgressRefused(f"webhook host {host} has no address")
    for text in addresses:
        ip = ipaddress.ip_address(text)
        kind = _kind(ip)
        if kind is not None and not _allowed(host, ip, allow):
            raise EgressRefused(
                f"webhook host {host} resolves to {text}, a {kind} address: refused "
                "(allow it with COSMIC_RAY_WEBHOOK_ALLOW)"
            )
    return Target(url=url, host=host, address=addresses[0])
