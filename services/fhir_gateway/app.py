"""FHIR gateway: ``POST [base]`` (transaction), ``POST [base]/ServiceRequest``, Task read,
search and withdrawal, Communication read and search, ``GET [base]/metadata`` — FastAPI
in front, Kafka behind."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaMessage
from sqlalchemy.exc import OperationalError

from adapters.clients import (
    Client,
    ClientKind,
    Unauthenticated,
    authenticate_bearer,
    load_clients,
)
from adapters.database import make_async_engine
from adapters.directory import load_directory
from adapters.fhir.capability import capability_statement
from adapters.fhir.formats import (
    FHIR_JSON,
    FHIR_XML,
    JSON_TYPES,
    XML_TYPES,
    json_to_xml,
    wants_xml,
    xml_to_json,
)
from adapters.fhir.outcomes import FhirProblem, operation_outcome
from adapters.fhir.resources import task_resource
from adapters.ledger.repository import Ledger, StoredResponse
from adapters.postcodes import load_postcode_table
from adapters.runtime import Unprocessable, configure_logging, instrument_http, make_broker
from adapters.runtime.kafka import consumer_group
from adapters.runtime.service import brug_version, make_asyncapi
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import FeedbackReceivedByGp, ReferralSubmitted, ReferralWithdrawn
from contracts.mappings import wor_theme_table
from services.fhir_gateway.reads import Reads
from services.fhir_gateway.settings import GatewaySettings
from services.fhir_gateway.submission import SERVICE, Remember, Reply, Submissions
from services.fhir_gateway.subscriptions import subscription_routes
from services.fhir_gateway.translation import (
    Located,
    parse_bundle,
    parse_service_request,
    read_referral,
)
from services.fhir_gateway.withdrawal import Withdrawals, requested_status

ACCEPTED_TYPES = JSON_TYPES | XML_TYPES
RETRY_AFTER_SECONDS = "10"

settings = GatewaySettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
log = structlog.get_logger(f"brug.{SERVICE}")
clients = load_clients(settings.clients_path)
directory = load_directory(settings.directory_path)
postcodes = load_postcode_table(settings.postcode_table_path)
themes = wor_theme_table()
broker = make_broker(settings, service=SERVICE)
asyncapi = make_asyncapi(
    broker,
    service=SERVICE,
    description="The medical edge's Kafka side: every accepted referral, minimised.",
)
outcomes = broker.publisher(
    "brug.gp.outcomes.{client_id}.v1",
    title="brug.gp.outcomes.{client_id}.v1",
    description="The answer to a Bundle a GP system put on its inbound topic. Key: its key.",
)
referrals_submitted = broker.publisher(
    topics.REFERRALS_SUBMITTED,
    title=topics.REFERRALS_SUBMITTED,
    description="A referral accepted from a GP system and stored. Key: referral id.",
    schema=CloudEvent[ReferralSubmitted],
)
engine = make_async_engine(settings.database_url)
social_referrals = broker.publisher(
    "brug.social.referrals.{organisation_id}.v1",
    title="brug.social.referrals.{organisation_id}.v1",
    description="The GP's withdrawal, and receipts for feedback the GP system read, to the "
    "organisation the referral went to. Key: referral id.",
    schema=CloudEvent[ReferralWithdrawn | FeedbackReceivedByGp],
)
withdrawals = Withdrawals(engine=engine)
reads = Reads(engine=engine, base_url=settings.fhir_base_url)
submissions = Submissions(engine=engine, retention=timedelta(days=settings.details_retention_days))


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await broker.start()
    log.info("brug service ready", port=settings.fhir_port, directory_version=directory.version)
    yield
    await broker.stop()
    await engine.dispose()


app = FastAPI(title="Brug FHIR gateway", version=brug_version(), lifespan=lifespan)
instrument_http(app, SERVICE)
app.include_router(
    subscription_routes(
        authenticate=lambda request: authenticate(request, ClientKind.GP),
        respond=lambda *response: fhir_response(*response),
        engine=engine,
        base_url=settings.fhir_base_url,
    )
)


@app.exception_handler(FhirProblem)
async def _problem(request: Request, problem: FhirProblem) -> Response:
    return fhir_response(request, problem.status, problem.outcome(), problem.headers)


@app.get("/fhir/metadata")
async def metadata(request: Request) -> Response:
    statement = capability_statement(settings.fhir_base_url, brug_version())
    return fhir_response(request, 200, statement)


@app.post("/fhir")
@app.post("/fhir/", include_in_schema=False)  # clients that join the base URL with "/"
async def transaction(request: Request) -> Response:
    return await _submission(request, parse_bundle, as_transaction=True)


@app.post("/fhir/ServiceRequest")
async def create_service_request(request: Request) -> Response:
    return await _submission(request, parse_service_request, as_transaction=False)


@app.get("/fhir/Task/{task_id}")
async def read_task(task_id: str, request: Request) -> Response:
    client = authenticate(request, ClientKind.GP)
    if not _is_uuid(task_id):
        raise FhirProblem(404, "not-found", f"Task/{task_id} is not known", "Task.id")
    async with _infrastructure_guard():
        task = await reads.task(uuid.UUID(task_id), client)
    return fhir_response(request, 200, task, {"ETag": f'W/"{task["meta"]["versionId"]}"'})


@app.get("/fhir/Task")
async def search_tasks(request: Request) -> Response:
    client = authenticate(request, ClientKind.GP)
    async with _infrastructure_guard():
        bundle = await reads.search_tasks(request.query_params.multi_items(), client)
    return fhir_response(request, 200, bundle)


@app.get("/fhir/Communication/{communication_id}")
async def read_communication(communication_id: str, request: Request) -> Response:
    client = authenticate(request, ClientKind.GP)
    if not _is_uuid(communication_id):
        raise FhirProblem(404, "not-found", f"Communication/{communication_id} is not known")
    async with _infrastructure_guard():
        communication = await reads.communication(uuid.UUID(communication_id), client)
    return fhir_response(request, 200, communication)


@app.get("/fhir/Communication")
async def search_communications(request: Request) -> Response:
    client = authenticate(request, ClientKind.GP)
    async with _infrastructure_guard():
        bundle = await reads.search_communications(request.query_params.multi_items(), client)
    return fhir_response(request, 200, bundle)


@app.put("/fhir/Task/{task_id}")
@app.patch("/fhir/Task/{task_id}")
async def withdraw_task(task_id: str, request: Request) -> Response:
    """The GP withdraws the referral; the only change a GP may make to its Task."""
    client = authenticate(request, ClientKind.GP)
    body = await _read_body(request, also=("application/json-patch+json",))
    if _media_type(request) in XML_TYPES:
        body = xml_to_json(body, "Task")
    if requested_status(request.method, _json(body)) != "cancelled" or not _is_uuid(task_id):
        raise FhirProblem(
            422,
            "not-supported",
            "a GP changes its Task only to withdraw it: PUT the Task with status 'cancelled', "
            'or PATCH [{"op": "replace", "path": "/status", "value": "cancelled"}]',
            "Task.status",
        )
    async with _infrastructure_guard():
        row = await withdrawals.withdraw(uuid.UUID(task_id), client)
    log.info("referral withdrawn", client_id=client.client_id, task_id=task_id)
    return fhir_response(request, 200, task_resource(row), {"ETag": f'W/"{row.version}"'})


@app.put("/fhir/ServiceRequest/{service_request_id}")
@app.patch("/fhir/ServiceRequest/{service_request_id}")
async def revoke_service_request(service_request_id: str, request: Request) -> Response:
    """The GP withdraws the referral by revoking its ServiceRequest; answers with the Task."""
    client = authenticate(request, ClientKind.GP)
    body = await _read_body(request, also=("application/json-patch+json",))
    if _media_type(request) in XML_TYPES:
        body = xml_to_json(body, "ServiceRequest")
    asked = requested_status(request.method, _json(body), "ServiceRequest")
    if asked != "revoked" or not _is_uuid(service_request_id):
        raise FhirProblem(
            422,
            "not-supported",
            "a GP changes its ServiceRequest only to withdraw it: PUT it with status 'revoked', "
            'or PATCH [{"op": "replace", "path": "/status", "value": "revoked"}]',
            "ServiceRequest.status",
        )
    async with _infrastructure_guard():
        row = await withdrawals.withdraw_service_request(uuid.UUID(service_request_id), client)
    log.info("referral withdrawn", client_id=client.client_id, task_id=str(row.task_id))
    return fhir_response(request, 200, task_resource(row), {"ETag": f'W/"{row.version}"'})


async def _submission(request: Request, parse: Any, *, as_transaction: bool) -> Response:
    client = authenticate(request, ClientKind.GP)
    body = await _read_body(request)
    if _media_type(request) in XML_TYPES:
        body = xml_to_json(body, "Bundle" if as_transaction else "ServiceRequest")
    reply = await process_submission(
        client,
        body,
        parse,
        request_id=request.headers.get("x-request-id"),
        traceparent=request.headers.get("traceparent"),
        as_transaction=as_transaction,
    )
    return fhir_response(request, reply.status, reply.body, _location_header(reply))


async def process_submission(
    client: Client,
    body: bytes,
    parse: Any,
    *,
    request_id: str | None,
    traceparent: str | None,
    as_transaction: bool = True,
) -> Reply:
    """One submission, whether it came over HTTP or Kafka: the same checks, the same answer."""
    request_hash = hashlib.sha256(body).hexdigest()
    if request_id and (stored := await _stored_reply(client, request_id)):
        return _replay(stored, request_hash)
    located: list[Located] = parse(_json(body))
    intake = read_referral(
        located,
        today=datetime.now(UTC).date(),
        postcodes=postcodes,
        directory=directory,
        themes=themes,
    )
    if intake.requester_agb != client.organisation:
        raise FhirProblem(
            403,
            "forbidden",
            "this client submits referrals for its own organisation only "
            f"(AGB {client.organisation}), not for AGB {intake.requester_agb}",
            "ServiceRequest.requester",
        )
    _check_if_none_exist(intake.if_none_exist, intake.service_request_system)
    async with _infrastructure_guard():
        reply = await submissions.submit(
            intake,
            client,
            traceparent,
            shape=(lambda reply: reply) if as_transaction else _as_create,
            remember=Remember(request_id, request_hash) if request_id else None,
        )
    log.info(
        "referral submitted" if reply.status == 201 else "referral resubmitted",
        client_id=client.client_id,
        status=reply.status,
    )
    return reply


@broker.subscriber(pattern=topics.GP_REFERRALS_PATTERN, group_id=consumer_group(SERVICE))
async def handle_kafka_submission(body: Any, message: KafkaMessage) -> None:
    """GP systems on the bus: the Bundle on ``brug.gp.referrals.<client>.v1``, the answer on
    ``brug.gp.outcomes.<client>.v1`` under the same key. The topic is the identity (Kafka ACLs
    let only that GP system write it); the key is the request id."""
    record: Any = message.raw_message  # one ConsumerRecord: this is not a batch subscriber
    client_id = topics.client_of_gp_topic(record.topic)
    client = next((c for c in clients.clients if c.client_id == client_id), None)
    if client is None or client.kind is not ClientKind.GP:
        raise Unprocessable("invalid-payload", f"no GP system is registered for {record.topic}")
    request_id = (
        record.key.decode() if record.key else f"{record.topic}/{record.partition}/{record.offset}"
    )
    try:
        reply = await process_submission(
            client,
            record.value or b"",
            parse_bundle,
            request_id=request_id,
            traceparent=message.headers.get("traceparent"),
        )
    except FhirProblem as problem:
        if problem.status == 503:
            raise ConnectionError(problem.diagnostics) from None  # retried, with backoff
        reply = Reply(problem.status, problem.outcome())
    await outcomes.publish(
        json.dumps(reply.body).encode(),
        topic=topics.gp_outcomes(client.client_id),
        key=record.key,
        headers={"content-type": FHIR_JSON, "brug-status": str(reply.status)},
    )


def authenticate(request: Request, kind: ClientKind) -> Client:
    try:
        return authenticate_bearer(clients, request.headers.get("authorization"), kind)
    except Unauthenticated as refused:
        code = "login" if "required" in refused.detail else "security"
        raise FhirProblem(
            401, code, refused.detail, headers={"WWW-Authenticate": refused.challenge}
        ) from None


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_body(request: Request, also: tuple[str, ...] = ()) -> bytes:
    media_type = _media_type(request)
    if media_type not in ACCEPTED_TYPES and media_type not in also:
        raise FhirProblem(
            415,
            "not-supported",
            f"content type {media_type or '(none)'} is not supported; send "
            "application/fhir+json, application/json or application/fhir+xml",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise _too_large()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_body_bytes:
            raise _too_large()
    return body


def _too_large() -> FhirProblem:
    return FhirProblem(413, "too-long", f"the request body exceeds {settings.max_body_bytes} bytes")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FhirProblem(400, "structure", f"the body is not valid JSON: {error}") from None


def _check_if_none_exist(criteria: str | None, identifier_system: str) -> None:
    """Conditional create is answered by the identifier check in ``Submissions.submit``;
    only ``identifier=system|value`` matching the ServiceRequest's own is supported."""
    if not criteria:
        return
    name, _, value = criteria.partition("=")
    if name != "identifier" or not value.startswith(f"{identifier_system}|"):
        raise FhirProblem(
            400,
            "not-supported",
            "ifNoneExist supports only identifier=<system>|<value> of the ServiceRequest",
            "Bundle.entry.request.ifNoneExist",
        )


async def _stored_reply(client: Client, request_id: str) -> StoredResponse | None:
    async with _infrastructure_guard(), _database() as connection:
        return await connection.run_sync(
            lambda c: Ledger(c).stored_response(client.client_id, request_id)
        )


def _replay(stored: StoredResponse, request_hash: str) -> Reply:
    if stored.request_hash != request_hash:
        raise FhirProblem(
            409,
            "duplicate",
            "this X-Request-ID was already used for a different request body",
        )
    return Reply(stored.status, stored.body["body"], stored.body.get("location"))


def _as_create(reply: Reply) -> Reply:
    """``POST [base]/ServiceRequest`` answers as a create: an OperationOutcome naming the Task."""
    task = next(
        e for e in reply.body["entry"] if e.get("resource", {}).get("resourceType") == "Task"
    )
    service_request = reply.body["entry"][0]["response"]["location"]
    outcome = operation_outcome(
        "information",
        "informational",
        f"referral accepted as {service_request}; tracked by {task['response']['location']}",
    )
    outcome["issue"][0]["details"] = {"text": task["response"]["location"]}
    return Reply(reply.status, outcome, location=service_request)


def _location_header(reply: Reply) -> dict[str, str]:
    return {"Location": f"{settings.fhir_base_url}/{reply.location}"} if reply.location else {}


def fhir_response(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """JSON, or XML when the client asked for it (``_format``, ``Accept``) or sent XML."""
    if wants_xml(
        request.headers.get("content-type", ""),
        request.headers.get("accept", ""),
        request.query_params.get("_format"),
    ):
        return Response(json_to_xml(body), status, headers, media_type=FHIR_XML)
    return JSONResponse(body, status_code=status, headers=headers, media_type=FHIR_JSON)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _database(write: bool = False) -> Any:
    return engine.begin() if write else engine.connect()


@asynccontextmanager
async def _infrastructure_guard() -> AsyncIterator[None]:
    """Broker or database unavailable → 503 with Retry-After; nothing was accepted."""
    try:
        yield
    except (OperationalError, TimeoutError, OSError) as error:
        raise _unavailable(error) from None
    except Exception as error:
        if type(error).__module__.startswith(("aiokafka", "kafka")):
            raise _unavailable(error) from None
        raise


def _unavailable(error: BaseException) -> FhirProblem:
    log.warning("infrastructure unavailable", error_type=type(error).__name__)
    return FhirProblem(
        503,
        "transient",
        "Brug cannot make the referral durable right now; nothing was accepted, retry later",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )
