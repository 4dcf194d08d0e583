"""Brug signs webhooks by the Standard Webhooks specification: every check verifies with the
``standardwebhooks`` library from PyPI, not with Brug's own code, so this proves interop."""

from __future__ import annotations

import ipaddress
import json
import time

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from adapters import outbound
from adapters.webhooks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    post_signed,
    secret_key,
    sign,
    signature_headers,
)
from contracts.directory import WelfareOrganisation
from services.webhook_delivery.delivery import require_secrets, signing_secrets

CURRENT = "whsec_YnJ1Zy11bml0LXdlYmhvb2sta2V5LWN1cnJlbnQ="  # b"brug-unit-webhook-key-current"
PREVIOUS = "whsec_YnJ1Zy11bml0LXdlYmhvb2sta2V5LXByZXZpb3Vz"  # b"brug-unit-webhook-key-previous"
STRANGER = "whsec_c29tZW9uZS1lbHNlcy13ZWJob29rLWtleQ=="  # b"someone-elses-webhook-key"
BODY = json.dumps({"event": {"id": "e-1"}, "details": {"name": "A. Jansen"}}).encode()
DELIVERY_ID = "5f0c3a52-2d7e-4f4b-9a0e-6a1e2b3c4d5e"
SECRET_ENV = "BRUG_TEST_WEBHOOK_SECRET"


def _headers(*secrets: str, timestamp: int | None = None, body: bytes = BODY) -> dict[str, str]:
    now = int(time.time()) if timestamp is None else timestamp
    return signature_headers(secrets, DELIVERY_ID, now, body)


def test_the_library_verifies_what_brug_signs() -> None:
    headers = _headers(CURRENT)
    assert headers[ID_HEADER] == DELIVERY_ID
    assert headers[SIGNATURE_HEADER].startswith("v1,")
    assert Webhook(CURRENT).verify(BODY, headers) == json.loads(BODY)


def test_the_specifications_example_signs_the_same() -> None:
    # The example of the specification and its libraries' test suites.
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_tampered_body_fails() -> None:
    headers = _headers(CURRENT)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(CURRENT).verify(BODY.replace(b"Jansen", b"Janssen"), headers)


def test_another_delivery_id_fails() -> None:
    headers = {**_headers(CURRENT), ID_HEADER: "another-delivery"}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(CURRENT).verify(BODY, headers)


def test_a_wrong_secret_fails() -> None:
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(STRANGER).verify(BODY, _headers(CURRENT))


@pytest.mark.parametrize(("offset", "message"), [(-301, "too old"), (301, "too new")])
def test_a_timestamp_beyond_the_libraries_five_minutes_fails(offset: int, message: str) -> None:
    headers = _headers(CURRENT, timestamp=int(time.time()) + offset)
    with pytest.raises(WebhookVerificationError, match=message):
        Webhook(CURRENT).verify(BODY, headers)


def test_during_rotation_both_the_new_and_the_old_secret_verify() -> None:
    headers = _headers(CURRENT, PREVIOUS)
    signatures = headers[SIGNATURE_HEADER].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    assert Webhook(CURRENT).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(PREVIOUS).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(STRANGER).verify(BODY, headers)


PUBLIC = ipaddress.ip_address("93.184.215.14")  # what the name "resolves" to: a value only


@pytest.fixture
def resolves_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """No lookup leaves the test: every name resolves to one public address."""

    async def resolve(host: str, port: int) -> list[outbound.IpAddress]:
        return [PUBLIC]

    monkeypatch.setattr(outbound, "resolve", resolve)


@pytest.mark.usefixtures("resolves_public")
async def test_a_post_carries_the_headers_and_retries_keep_the_webhook_id() -> None:
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500 if len(seen) == 1 else 204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        url = "https://xtra.example/brug"
        first = await post_signed(client, url, [CURRENT], BODY, DELIVERY_ID)
        second = await post_signed(client, url, [CURRENT], BODY, DELIVERY_ID)

    assert (first.ok, second.ok) == (False, True)
    assert [r.headers[ID_HEADER] for r in seen] == [DELIVERY_ID, DELIVERY_ID]
    for request in seen:
        assert request.url.host == str(PUBLIC), "sent to the address that was checked"
        assert request.headers["Host"] == "xtra.example"
        assert request.headers[TIMESTAMP_HEADER].isdigit()
        assert "Brug-Delivery-Id" not in request.headers
        assert Webhook(CURRENT).verify(request.content, dict(request.headers)) == json.loads(BODY)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("dev-webhook-secret-xtra", "is not a whsec_<base64> secret"),
        ("", "is not a whsec_<base64> secret"),
        ("whsec_not base64!", "is not base64"),
        ("whsec_", "key of 0 bytes"),
        ("whsec_c2hvcnQ=", "key of 5 bytes"),  # b"short"
    ],
)
def test_a_secret_not_whsec_and_base64_of_enough_bytes_is_refused(
    secret: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        secret_key(secret)


def test_base64_padding_may_be_left_off_as_the_libraries_allow() -> None:
    assert (
        secret_key(CURRENT.rstrip("=")) == secret_key(CURRENT) == b"brug-unit-webhook-key-current"
    )


def _organisation() -> WelfareOrganisation:
    return WelfareOrganisation.model_validate(
        {
            "id": "xtra",
            "name": "Xtra",
            "municipalities": ["GM0637"],
            "delivery": "webhook",
            "webhook_url": "https://xtra.example/brug",
            "webhook_secret_env": SECRET_ENV,
        }
    )


def test_the_previous_secret_is_signed_with_while_it_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, CURRENT)
    monkeypatch.delenv(f"{SECRET_ENV}_PREVIOUS", raising=False)
    assert signing_secrets(_organisation()) == [CURRENT]
    monkeypatch.setenv(f"{SECRET_ENV}_PREVIOUS", PREVIOUS)
    assert signing_secrets(_organisation()) == [CURRENT, PREVIOUS]


@pytest.mark.parametrize(
    ("current", "previous", "refusal"),
    [
        (None, None, f"{SECRET_ENV} is not set"),
        ("dev-webhook-secret-xtra", None, f"{SECRET_ENV} is not a whsec_"),
        (CURRENT, "old-plain-secret", f"{SECRET_ENV}_PREVIOUS is not a whsec_"),
    ],
)
def test_the_service_refuses_to_start_without_valid_secrets(
    monkeypatch: pytest.MonkeyPatch, current: str | None, previous: str | None, refusal: str
) -> None:
    for name, value in ((SECRET_ENV, current), (f"{SECRET_ENV}_PREVIOUS", previous)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match=refusal) as refused:
        require_secrets([_organisation()])
    for value in (current, previous):
        assert not value or value not in str(refused.value), "the error never shows a secret"


async def test_a_webhook_to_an_internal_address_is_refused_before_anything_is_sent() -> None:
    def receiver(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a request left for {request.url}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        for url in ("https://10.0.0.5/brug", "https://169.254.169.254/", "http://127.0.0.1:9/"):
            attempt = await post_signed(client, url, [CURRENT], BODY, DELIVERY_ID)
            assert not attempt.ok
            assert attempt.detail.startswith("endpoint not allowed"), attempt.detail


def test_the_directory_takes_only_https_webhooks_unless_loopback_http_is_allowed() -> None:
    base = {
        "id": "xtra-zoetermeer",
        "name": "Xtra",
        "municipalities": ["GM0637"],
        "delivery": "webhook",
        "webhook_secret_env": "BRUG_WEBHOOK_SECRET_XTRA",
    }
    WelfareOrganisation(**base, webhook_url="https://xtra.example/brug")
    with pytest.raises(ValueError, match="https"):
        WelfareOrganisation(**base, webhook_url="http://xtra.example/brug")
    dev = WelfareOrganisation(
        **base, webhook_url="http://127.0.0.1:8099/brug", allow_loopback_http=True
    )
    assert dev.allow_loopback_http
