"""``GET /fhir/AuditEvent``: a GP system reads who accessed its own referrals, as R4
AuditEvents (``adapters/fhir/audit_events.py``), oldest first, paged.

Search by ``entity`` (``ServiceRequest/{id}`` or ``Task/{id}``, comma-separated for OR) or
by ``patient`` (also ``patient:identifier``) as the BSN token
``http://fhir.nl/fhir/NamingSystem/bsn|{bsn}``: Brug keeps no Patient resource, so the
identifier is the only way to name one; the BSN is turned into its pseudonym and not kept.
One of them is required. Another practice's referrals are never found; the read itself is
audited (``read-audit-events``) on each referral it returned.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from adapters.clients import Client
from adapters.fhir.audit_events import AuditQuery, audit_event_resource, search_audit_events
from adapters.fhir.resources import searchset
from adapters.ledger.repository import Ledger
from adapters.pseudonyms import bsn_pseudonym
from contracts.fhir_systems import BSN
from services.fhir_gateway.bsn import is_valid_bsn
from services.fhir_gateway.edge import Edge
from services.fhir_gateway.search import Params, _all, _bad, _only, _paging, page_links
from services.fhir_gateway.web import fhir_response, infrastructure_guard

router = APIRouter()

PARAMETERS = {"entity", "patient", "patient:identifier"}


@router.get("/fhir/AuditEvent")
async def search_audit_events_route(request: Request, edge: Edge) -> Response:
    client = edge.authenticate(request)
    params = request.query_params.multi_items()
    query = audit_query(params, client.organisation, edge.settings.pseudonym_key.get_secret_value())
    async with infrastructure_guard(), edge.engine.begin() as connection:
        rows, total = await connection.run_sync(search_audit_events, query)
        await connection.run_sync(
            _audit_read, [r.referral_id for r in rows], query.patient_pseudonym, client
        )
    base_url = edge.settings.fhir_base_url
    links = page_links(
        f"{base_url}/AuditEvent", params, offset=query.offset, count=query.count, total=total
    )
    resources = [audit_event_resource(row) for row in rows]
    return fhir_response(request, 200, searchset(resources, total, base_url, links))


def audit_query(params: Params, organisation: str, pseudonym_key: str) -> AuditQuery:
    _only(params, PARAMETERS)
    count, offset = _paging(params)
    referral_ids: list[uuid.UUID] = []
    task_ids: list[uuid.UUID] = []
    for value in _split(params, "entity"):
        kind, _, identifier = value.rstrip("/").rpartition("/")
        kind = kind.rpartition("/")[2]
        try:
            as_uuid = uuid.UUID(identifier)
        except ValueError:
            raise _bad("entity", f"'{value[:80]}' is not a Brug id") from None
        if kind == "ServiceRequest":
            referral_ids.append(as_uuid)
        elif kind == "Task":
            task_ids.append(as_uuid)
        else:
            raise _bad("entity", "entity must be ServiceRequest/{id} or Task/{id}")
    patients = _split(params, "patient") + _split(params, "patient:identifier")
    if len(patients) > 1:
        raise _bad("patient", "one patient at a time")
    pseudonym = None
    if patients:
        system, _, bsn = patients[0].rpartition("|")
        if system != BSN or not is_valid_bsn(bsn):
            raise _bad("patient", f"patient must be the BSN token {BSN}|<nine digits, elfproef>")
        pseudonym = bsn_pseudonym(bsn, pseudonym_key)
    if not (referral_ids or task_ids or pseudonym):
        raise _bad("entity", "name the referral (entity=ServiceRequest/{id}) or the patient")
    return AuditQuery(
        requester_agb=organisation,
        referral_ids=referral_ids or None,
        task_ids=task_ids or None,
        patient_pseudonym=pseudonym,
        count=count,
        offset=offset,
    )


def _split(params: Params, name: str) -> list[str]:
    return [v.strip() for value in _all(params, name) for v in value.split(",") if v.strip()]


def _audit_read(
    connection: Connection,
    referral_ids: list[uuid.UUID],
    pseudonym: str | None,
    client: Client,
) -> None:
    """One row per referral returned; a patient search that found none, on the patient."""
    ledger = Ledger(connection)
    for referral_id in dict.fromkeys(referral_ids) or ([None] if pseudonym else []):
        ledger.audit(
            actor=f"client:{client.client_id}",
            action="read-audit-events",
            referral_id=referral_id,
            detail={"resource": "AuditEvent"},
            purpose="privacy-officer",
            patient_pseudonym=pseudonym,
        )
