"""The address rules for endpoints a client chooses (FHIR Subscriptions), as units on the
resolver's output: no request is sent anywhere, and no private or public address is dialled."""

from __future__ import annotations

import ipaddress

import pytest

from adapters import outbound
from adapters.outbound import Refused, check_addresses, check_url, pinned_target

INTERNAL = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.0.0.7",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # noqa: S104 -- a value under test, nothing binds to it
    "224.0.0.251",  # multicast
    "fc00::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
]
PUBLIC = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]  # values only


def _ips(*texts: str) -> list[outbound.IpAddress]:
    return [ipaddress.ip_address(text) for text in texts]


@pytest.mark.parametrize("address", INTERNAL)
def test_an_internal_address_is_refused(address: str) -> None:
    with pytest.raises(Refused, match="not a public address"):
        check_addresses(_ips(address), scheme="https", allow_loopback_http=False)


@pytest.mark.parametrize("address", PUBLIC)
def test_a_public_address_over_https_is_allowed(address: str) -> None:
    assert check_addresses(_ips(address), scheme="https", allow_loopback_http=False) == (
        ipaddress.ip_address(address)
    )


def test_a_name_with_one_internal_address_among_public_ones_is_refused() -> None:
    with pytest.raises(Refused):
        check_addresses(_ips(PUBLIC[0], "10.1.2.3"), scheme="https", allow_loopback_http=False)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(Refused, match="does not resolve"):
        check_addresses([], scheme="https", allow_loopback_http=False)


def test_plain_http_is_only_for_loopback_and_only_when_the_client_may() -> None:
    check_url("http://127.0.0.1:8765/hook", allow_loopback_http=True)
    check_addresses(_ips("127.0.0.1"), scheme="http", allow_loopback_http=True)
    for url in ("http://127.0.0.1:9186/metrics", "http://example.org/hook"):
        with pytest.raises(Refused, match="https"):
            check_url(url, allow_loopback_http=False)
    with pytest.raises(Refused, match="https"):
        check_url("http://example.org/hook", allow_loopback_http=True)
    with pytest.raises(Refused):  # the flag allows loopback, not the private network
        check_addresses(_ips("10.0.0.1"), scheme="http", allow_loopback_http=True)


@pytest.mark.parametrize(
    "url", ["ftp://example.org/x", "https://user:secret@example.org/hook", "https:///nohost"]
)
def test_other_schemes_credentials_and_hostless_urls_are_refused(url: str) -> None:
    with pytest.raises(Refused):
        check_url(url, allow_loopback_http=True)


async def test_the_request_goes_to_the_checked_address_under_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolves_public(host: str, port: int) -> list[outbound.IpAddress]:
        assert (host, port) == ("hooks.his.example", 8443)
        return _ips(PUBLIC[0])

    monkeypatch.setattr(outbound, "resolve", resolves_public)
    target = await pinned_target(
        "https://hooks.his.example:8443/brug?x=1", allow_loopback_http=False
    )
    assert target.url == f"https://{PUBLIC[0]}:8443/brug?x=1"
    assert target.host_header == "hooks.his.example:8443"
    assert target.sni_hostname == "hooks.his.example"  # TLS still checks the name


async def test_a_public_name_that_resolves_inside_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def rebinds(host: str, port: int) -> list[outbound.IpAddress]:
        return _ips("169.254.169.254")

    monkeypatch.setattr(outbound, "resolve", rebinds)
    with pytest.raises(Refused):
        await pinned_target("https://innocent.example/hook", allow_loopback_http=False)


async def test_an_ip_literal_resolves_to_itself_without_a_lookup() -> None:
    assert await outbound.resolve("::1", 443) == _ips("::1")
    target = await pinned_target("http://[::1]:8765/h", allow_loopback_http=True)
    assert target.url == "http://[::1]:8765/h"
    assert target.sni_hostname is None
