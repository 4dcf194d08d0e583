"""What a GP system reads over HTTP: the CapabilityStatement, its Tasks and the
Communications from the welfare side, by id or by search (``services/fhir_gateway/reads.py``
does the reading, auditing and receipts)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from adapters.fhir.capability import capability_statement
from adapters.fhir.outcomes import FhirProblem
from adapters.runtime.service import brug_version
from services.fhir_gateway.edge import Edge
from services.fhir_gateway.web import fhir_response, infrastructure_guard, is_uuid

router = APIRouter()


@router.get("/fhir/metadata")
async def metadata(request: Request, edge: Edge) -> Response:
    statement = capability_statement(edge.settings.fhir_base_url, brug_version())
    return fhir_response(request, 200, statement)


@router.get("/fhir/Task/{task_id}")
async def read_task(task_id: str, request: Request, edge: Edge) -> Response:
    client = edge.authenticate(request)
    if not is_uuid(task_id):
        raise FhirProblem(404, "not-found", f"Task/{task_id} is not known", "Task.id")
    async with infrastructure_guard():
        task = await edge.reads.task(uuid.UUID(task_id), client)
    return fhir_response(request, 200, task, {"ETag": f'W/"{task["meta"]["versionId"]}"'})


@router.get("/fhir/Task")
async def search_tasks(request: Request, edge: Edge) -> Response:
    client = edge.authenticate(request)
    async with infrastructure_guard():
        bundle = await edge.reads.search_tasks(request.query_params.multi_items(), client)
    return fhir_response(request, 200, bundle)


@router.get("/fhir/Communication/{communication_id}")
async def read_communication(communication_id: str, request: Request, edge: Edge) -> Response:
    client = edge.authenticate(request)
    if not is_uuid(communication_id):
        raise FhirProblem(404, "not-found", f"Communication/{communication_id} is not known")
    async with infrastructure_guard():
        communication = await edge.reads.communication(uuid.UUID(communication_id), client)
    return fhir_response(request, 200, communication)


@router.get("/fhir/Communication")
async def search_communications(request: Request, edge: Edge) -> Response:
    client = edge.authenticate(request)
    async with infrastructure_guard():
        bundle = await edge.reads.search_communications(request.query_params.multi_items(), client)
    return fhir_response(request, 200, bundle)
