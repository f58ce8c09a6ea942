"""`[metrics] listen`: where the metrics are served, `host:port`."""

from __future__ import annotations

import ipaddress
import re

__all__ = ["format_address", "parse_listen"]

_FORM = "host:port (127.0.0.1:9464, or [::1]:9464 for IPv6)"
_BRACKETED = re.compile(r"\[([^\]]*)\]:([0-9]+)")
_PLAIN = re.compile(r"([^:\[\]]*):([0-9]+)")
# A host name: labels of letters, digits and hyphens (RFC 1123), dot-separated.
_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def parse_listen(text: object) -> tuple[str, int]:
    """`host:port` as (host, port): an IPv4 address or a host name before the colon, an IPv6
    address in brackets (`[::1]:9464`). No host means no address: one is always written, so a
    non-loopback address (`0.0.0.0:9464`) is never served by accident. Raises ValueError
    saying what is expected (one line, for the config's key)."""
    if not isinstance(text, str):
        raise ValueError(f"expected {_FORM}, got {text!r}")
    bracketed = _BRACKETED.fullmatch(text)
    plain = None if bracketed else _PLAIN.fullmatch(text)
    found = bracketed or plain
    if found is None or not found[1]:
        raise ValueError(f"expected {_FORM}, got {text!r}")
    host, digits = found[1], found[2]
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"expected an IPv6 address in brackets, got {text!r}") from None
    elif re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"expected an IPv4 address or a host name, got {text!r}") from None
    elif not _NAME.fullmatch(host):
        raise ValueError(f"expected {_FORM}, got {text!r}")
    port = int(digits)
    if not 1 <= port <= 65535:
        raise ValueError(f"expected a port from 1 to 65535, got {port} in {text!r}")
    return host, port


def format_address(host: str, port: int) -> str:
    """(host, port) as written in a URL: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
