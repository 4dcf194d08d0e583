"""The GP withdraws a referral over HTTP: ``PUT``/``PATCH`` of its Task to ``cancelled`` or
of its ServiceRequest to ``revoked`` (``services/fhir_gateway/withdrawal.py`` does it)."""

from __future__ import annotations

import uuid

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response

from adapters.fhir.formats import XML_TYPES, xml_to_json
from adapters.fhir.outcomes import FhirProblem
from adapters.fhir.resources import task_resource
from adapters.ledger.repository import ReferralRow
from services.fhir_gateway.edge import Edge, FhirEdge
from services.fhir_gateway.submission import SERVICE
from services.fhir_gateway.web import (
    JSON_PATCH,
    fhir_response,
    infrastructure_guard,
    is_uuid,
    media_type,
    parse_json,
)
from services.fhir_gateway.withdrawal import requested_status

router = APIRouter()
log = structlog.get_logger(f"brug.{SERVICE}")


@router.put("/fhir/Task/{task_id}")
@router.patch("/fhir/Task/{task_id}")
async def withdraw_task(task_id: str, request: Request, edge: Edge) -> Response:
    """The GP withdraws the referral; the only change a GP may make to its Task."""
    client = edge.authenticate(request)
    asked = await _requested_status(edge, request, "Task")
    if asked != "cancelled" or not is_uuid(task_id):
        raise FhirProblem(
            422,
            "not-supported",
            "a GP changes its Task only to withdraw it: PUT the Task with status 'cancelled', "
            'or PATCH [{"op": "replace", "path": "/status", "value": "cancelled"}]',
            "Task.status",
        )
    async with infrastructure_guard():
        row = await edge.withdrawals.withdraw(uuid.UUID(task_id), client)
    log.info("referral withdrawn", client_id=client.client_id, task_id=task_id)
    return _task(request, row)


@router.put("/fhir/ServiceRequest/{service_request_id}")
@router.patch("/fhir/ServiceRequest/{service_request_id}")
async def revoke_service_request(service_request_id: str, request: Request, edge: Edge) -> Response:
    """The GP withdraws the referral by revoking its ServiceRequest; answers with the Task."""
    client = edge.authenticate(request)
    asked = await _requested_status(edge, request, "ServiceRequest")
    if asked != "revoked" or not is_uuid(service_request_id):
        raise FhirProblem(
            422,
            "not-supported",
            "a GP changes its ServiceRequest only to withdraw it: PUT it with status 'revoked', "
            'or PATCH [{"op": "replace", "path": "/status", "value": "revoked"}]',
            "ServiceRequest.status",
        )
    async with infrastructure_guard():
        row = await edge.withdrawals.withdraw_service_request(uuid.UUID(service_request_id), client)
    log.info("referral withdrawn", client_id=client.client_id, task_id=str(row.task_id))
    return _task(request, row)


async def _requested_status(edge: FhirEdge, request: Request, resource_type: str) -> str | None:
    """The status the PUT (the resource, JSON or XML) or PATCH (JSON Patch) asks for."""
    body = await edge.body(request, also=(JSON_PATCH,))
    if media_type(request) in XML_TYPES:
        body = xml_to_json(body, resource_type)
    return requested_status(request.method, parse_json(body), resource_type)


def _task(request: Request, row: ReferralRow) -> Response:
    return fhir_response(request, 200, task_resource(row), {"ETag": f'W/"{row.version}"'})
