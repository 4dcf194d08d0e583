"""Where Brug may send an HTTP request a client chose the address of (a FHIR Subscription's
endpoint): https to a public address, resolved once and pinned for the connection.

Without these rules a GP system could make Brug probe its own network (SSRF): subscribe
``http://127.0.0.1:9186/metrics`` and read from ``$status`` which ports are open. Plain http
is allowed only to loopback, and only for a client whose registry entry says so (a GP
vendor's development setup). The address is checked after resolving, so a public name that
resolves to a private address is refused too, and the request goes to the address that was
checked (the name is kept for the Host header and TLS), so a second lookup cannot swap it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The endpoint is not one Brug sends to; ``str()`` says why, without probing it."""


@dataclass(frozen=True)
class Target:
    """A checked endpoint: the URL to connect to (the resolved address) and what the
    request must still carry of the name."""

    url: str
    host_header: str
    sni_hostname: str | None


def check_url(url: str, *, allow_loopback_http: bool) -> None:
    """The scheme and form of an endpoint, before any lookup."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise Refused("the endpoint must be an https URL")
    if parts.username or parts.password:
        raise Refused("the endpoint must not carry credentials")
    if parts.scheme == "http" and not (allow_loopback_http and _names_loopback(parts.hostname)):
        raise Refused("the endpoint must be https")


def check_addresses(
    addresses: Iterable[IpAddress], *, scheme: str, allow_loopback_http: bool
) -> IpAddress:
    """The address to connect to, if every address the name resolves to may be reached."""
    found = list(addresses)
    if not found:
        raise Refused("the endpoint's host does not resolve")
    for address in found:
        if address.is_loopback and allow_loopback_http:
            continue  # the client's dev endpoint, allowed by its registry entry
        if not address.is_global or address.is_multicast:
            raise Refused("the endpoint's host is not a public address")
    if scheme == "http" and not all(address.is_loopback for address in found):
        raise Refused("the endpoint must be https")
    return found[0]


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def pinned_target(url: str, *, allow_loopback_http: bool) -> Target:
    """Check ``url``, resolve it, check every address, and return the request to make."""
    check_url(url, allow_loopback_http=allow_loopback_http)
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = check_addresses(
        await resolve(hostname, port),
        scheme=parts.scheme,
        allow_loopback_http=allow_loopback_http,
    )
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    host_header = parts.netloc.rpartition("@")[2]
    return Target(pinned, host_header, hostname if parts.scheme == "https" else None)


def _names_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
