"""Submitting a referral over HTTP: ``POST [base]`` (a transaction Bundle) and
``POST [base]/ServiceRequest`` (a plain create), in FHIR JSON or XML."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from adapters.fhir.formats import XML_TYPES, xml_to_json
from contracts.codes import SubmissionChannel
from services.fhir_gateway.edge import Edge, FhirEdge
from services.fhir_gateway.intake import Parse, process_submission
from services.fhir_gateway.translation import parse_bundle, parse_service_request
from services.fhir_gateway.web import fhir_response, media_type

router = APIRouter()


@router.post("/fhir")
@router.post("/fhir/", include_in_schema=False)  # clients that join the base URL with "/"
async def transaction(request: Request, edge: Edge) -> Response:
    return await _submission(edge, request, parse_bundle, as_transaction=True)


@router.post("/fhir/ServiceRequest")
async def create_service_request(request: Request, edge: Edge) -> Response:
    return await _submission(edge, request, parse_service_request, as_transaction=False)


async def _submission(
    edge: FhirEdge, request: Request, parse: Parse, *, as_transaction: bool
) -> Response:
    client = edge.authenticate(request)
    body = await edge.body(request)
    if media_type(request) in XML_TYPES:
        body = xml_to_json(body, "Bundle" if as_transaction else "ServiceRequest")
    reply = await process_submission(
        edge,
        client,
        body,
        parse,
        request_id=request.headers.get("x-request-id"),
        traceparent=request.headers.get("traceparent"),
        channel=SubmissionChannel.FHIR_REST,
        as_transaction=as_transaction,
    )
    return fhir_response(request, reply.status, reply.body, edge.location_header(reply))
