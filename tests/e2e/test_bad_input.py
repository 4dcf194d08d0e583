"""Every refused request gets an OperationOutcome with a precise code, diagnostics and
the FHIRPath of what is wrong, and the right HTTP status. Nothing is accepted."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from deploy.devstack.stack import DevStack
from tests.e2e.conftest import (
    GP_AMSTERDAM,
    GP_LELYSTAD,
    WELFARE_AMSTERDAM,
    new_bundle,
    resource,
    without,
)

pytestmark = pytest.mark.integration

Change = Callable[[dict[str, Any]], Any]


def _set(resource_type: str, **fields: Any) -> Change:
    def change(bundle: dict[str, Any]) -> dict[str, Any]:
        changed = copy.deepcopy(bundle)
        resource(changed, resource_type).update(fields)
        return changed

    return change


BAD_BUNDLES: list[tuple[str, Change, int, str, str | None]] = [
    (
        "wrong resourceType",
        lambda b: {**b, "resourceType": "Patient"},
        400,
        "invalid",
        "resourceType",
    ),
    (
        "a Bundle of the wrong type",
        lambda b: {**b, "type": "collection"},
        400,
        "invalid",
        "Bundle.type",
    ),
    ("not valid FHIR", lambda b: {**b, "entry": "nope"}, 400, "structure", "Bundle.entry"),
    ("missing Patient", lambda b: without(b, "Patient"), 422, "required", "ServiceRequest"),
    ("missing Consent", lambda b: without(b, "Consent"), 422, "required", "ofType(Consent)"),
    (
        "inactive Consent",
        _set("Consent", status="inactive"),
        422,
        "business-rule",
        "Consent).status",
    ),
    (
        "invalid BSN",
        _set(
            "Patient",
            identifier=[{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "123456789"}],
        ),
        422,
        "value",
        "identifier[0].value",
    ),
    (
        "no usable contact details",
        _set("Patient", telecom=[], address=[{"use": "home", "postalCode": "1017 GC"}]),
        422,
        "required",
        "Patient).telecom",
    ),
    (
        "a postcode no organisation serves",
        _set("Patient", address=[{"use": "home", "line": ["Domplein 9"], "postalCode": "3512 JE"}]),
        422,
        "business-rule",
        "postalCode",
    ),
    (
        "no ServiceRequest identifier",
        _set("ServiceRequest", identifier=[]),
        422,
        "required",
        "identifier",
    ),
]


@pytest.mark.parametrize(
    ("change", "status", "code", "expression"),
    [case[1:] for case in BAD_BUNDLES],
    ids=[case[0] for case in BAD_BUNDLES],
)
def test_a_bad_bundle_is_refused_with_an_operation_outcome(
    gp: httpx.Client, change: Change, status: int, code: str, expression: str | None
) -> None:
    reply = gp.post("", json=change(new_bundle()))
    _assert_outcome(reply, status, code, expression)


def test_malformed_json_is_refused(gp: httpx.Client) -> None:
    _assert_outcome(gp.post("", content=b'{"resourceType": "Bundle",'), 400, "structure", None)


def test_a_body_over_the_size_limit_is_refused(gp: httpx.Client) -> None:
    bundle = new_bundle()
    resource(bundle, "ServiceRequest")["note"][0]["text"] = "x" * 1_100_000
    _assert_outcome(gp.post("", content=json.dumps(bundle)), 413, "too-long", None)


def test_an_unsupported_content_type_is_refused(gp: httpx.Client) -> None:
    reply = gp.post("", content=b"resourceType: Bundle", headers={"Content-Type": "text/yaml"})
    _assert_outcome(reply, 415, "not-supported", None)


def test_a_missing_token_is_refused(stack: DevStack) -> None:
    reply = httpx.post(stack.fhir_base_url, json=new_bundle())
    _assert_outcome(reply, 401, "login", None)
    assert reply.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("token", ["not-a-token", WELFARE_AMSTERDAM], ids=["unknown", "welfare"])
def test_a_foreign_token_is_refused(stack: DevStack, token: str) -> None:
    reply = httpx.post(
        stack.fhir_base_url, json=new_bundle(), headers={"Authorization": f"Bearer {token}"}
    )
    _assert_outcome(reply, 401, "security", None)


def test_a_gp_system_submits_only_for_its_own_practice(stack: DevStack) -> None:
    reply = httpx.post(
        stack.fhir_base_url, json=new_bundle(), headers={"Authorization": f"Bearer {GP_LELYSTAD}"}
    )
    _assert_outcome(reply, 403, "forbidden", "ServiceRequest.requester")
    assert GP_AMSTERDAM != GP_LELYSTAD


def _assert_outcome(reply: httpx.Response, status: int, code: str, expression: str | None) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/fhir+json")
    outcome = reply.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["severity"] == "error"
    assert issue["code"] == code
    assert issue["diagnostics"]
    if expression is not None:
        assert expression in issue["expression"][0], issue
