"""The client's address, for per-IP limits and audit. Behind a load balancer every request comes from the
balancer, so the address is taken from X-Forwarded-For — but only when the peer that connected to us is a
configured trusted proxy (settings.TRUSTED_PROXIES), and then by the rightmost-untrusted rule: walk the header
from the right (the hops our own proxies appended), skip trusted proxies, and the first address that is not
one is the client. Anything to its left was written by the client and may be forged.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def _parse(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    raw = raw.strip()
    if raw.startswith("[") and "]" in raw:  # "[2001:db8::1]:443"
        raw = raw[1:raw.index("]")]
    elif raw.count(":") == 1:  # "203.0.113.9:51234"
        raw = raw.partition(":")[0]
    try:
        return ipaddress.ip_address(raw)
    except ValueError:
        return None


def _trusted(address, networks: Iterable[Network]) -> bool:
    return any(address in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client's IP given the connecting peer and the X-Forwarded-For header (or None when unknown)."""
    peer_address = _parse(peer or "")
    if peer_address is None:
        return None
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not forwarded_for or not _trusted(peer_address, networks):
        return str(peer_address)
    client = peer_address
    for hop in reversed(forwarded_for.split(",")):
        address = _parse(hop)
        if address is None:
            break  # garbage in the chain: the last trusted hop is as far as we can vouch for
        client = address
        if not _trusted(address, networks):
            break
    return str(client)


def from_request(request) -> str | None:
    """For Django requests (GraphQL, admin login)."""
    return client_address(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def from_scope(scope: dict) -> str | None:
    """For ASGI scopes (the WebSocket): the peer is scope["client"], headers are raw bytes."""
    peer = (scope.get("client") or (None,))[0]
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers") or []
                 if name.lower() == b"x-forwarded-for"]
    return client_address(peer, ",".join(forwarded) or None)
