"""FHIR XML at the edge: a GP system that speaks XML gets the same processing, in XML."""

from __future__ import annotations

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.task import Task

from tests.e2e.conftest import new_bundle

pytestmark = pytest.mark.integration

XML = {"Content-Type": "application/fhir+xml"}


def test_an_xml_bundle_is_accepted_and_answered_in_xml(gp: httpx.Client) -> None:
    xml = Bundle.model_validate(new_bundle()).model_dump_xml()

    reply = gp.post("", content=xml, headers=XML)

    assert reply.status_code == 201, reply.text
    assert reply.headers["content-type"].startswith("application/fhir+xml")
    response = Bundle.model_validate_xml(reply.content)
    assert response.type == "transaction-response"
    assert len(response.entry) == len(new_bundle()["entry"])
    [tracking] = [e.response.outcome for e in response.entry if e.response.outcome is not None]
    task_id = tracking.issue[0].details.text.split("/")[1]

    read = gp.get(f"/Task/{task_id}", headers={"Accept": "application/fhir+xml"})
    assert read.status_code == 200
    assert Task.model_validate_xml(read.content).status == "requested"
    assert gp.get(f"/Task/{task_id}?_format=json").json()["id"] == task_id


def test_broken_xml_gets_an_operation_outcome_in_xml(gp: httpx.Client) -> None:
    reply = gp.post("", content=b"<Bundle xmlns='http://hl7.org/fhir'><type", headers=XML)

    assert reply.status_code == 400
    outcome = OperationOutcome.model_validate_xml(reply.content)
    assert outcome.issue[0].code == "structure"
