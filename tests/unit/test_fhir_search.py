"""FHIR search parameters of the GP edge: what each one filters, and what is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from adapters.fhir.outcomes import FhirProblem
from services.fhir_gateway.search import communication_query, page_links, task_query

OWN = "01999001"


def test_task_filters_are_parsed_into_one_query() -> None:
    referral = uuid.uuid4()
    query = task_query(
        [
            ("focus", f"ServiceRequest/{referral}"),
            ("status", "accepted,in-progress"),
            ("owner", "urn:brug:organisation|dynamo-amsterdam"),
            ("_lastUpdated", "ge2026-11-01"),
            ("_lastUpdated", "lt2026-11-29T12:00:00Z"),
            ("_count", "10"),
            ("_offset", "20"),
        ],
        OWN,
    )
    assert query.referral_ids == [referral]
    assert query.statuses == ["accepted", "in-progress"]
    assert query.owners == ["dynamo-amsterdam"]
    assert query.updated == [
        ("ge", datetime(2026, 11, 1, tzinfo=UTC)),
        ("lt", datetime(2026, 11, 29, 12, tzinfo=UTC)),
    ]
    assert (query.count, query.offset, query.requester_agb) == (10, 20, OWN)


def test_a_date_without_prefix_means_that_whole_day() -> None:
    query = task_query([("_lastUpdated", "2026-11-29")], OWN)
    assert query.updated == [
        ("ge", datetime(2026, 11, 29, tzinfo=UTC)),
        ("lt", datetime(2026, 11, 30, tzinfo=UTC)),
    ]


def test_asking_for_another_practices_tasks_finds_nothing() -> None:
    assert (
        task_query([("requester", "http://fhir.nl/fhir/NamingSystem/agb-z|0999")], OWN).task_ids
        == []
    )
    assert task_query([("requester", OWN)], OWN).task_ids is None


@pytest.mark.parametrize(
    "params",
    [
        [("subject", "Patient/1")],  # not supported: refused, never silently ignored
        [("_id", "not-a-uuid")],
        [("_lastUpdated", "sa2026-11-01")],
        [("_lastUpdated", "yesterday")],
        [("_count", "many")],
        [("focus", f"Patient/{uuid.uuid4()}")],
        [("_sort", "status")],
    ],
)
def test_unsupported_or_malformed_task_parameters_are_refused(
    params: list[tuple[str, str]],
) -> None:
    with pytest.raises(FhirProblem) as refused:
        task_query(params, OWN)
    assert refused.value.status == 400
    assert refused.value.expression == params[0][0]


def test_communications_by_service_request_and_category() -> None:
    referral = uuid.uuid4()
    query = communication_query(
        [("based-on", f"http://x/fhir/ServiceRequest/{referral}"), ("category", "wor-feedback")],
        OWN,
    )
    assert query.referral_ids == [referral]
    assert query.categories == ["feedback"]
    with pytest.raises(FhirProblem):
        communication_query([("category", "gossip")], OWN)


def test_count_is_capped_and_pages_link_forward_and_back() -> None:
    assert task_query([("_count", "100000")], OWN).count == 200
    links = page_links(
        "http://x/fhir/Task", [("status", "completed")], offset=10, count=10, total=25
    )
    assert links["next"] == "http://x/fhir/Task?status=completed&_count=10&_offset=20"
    assert links["previous"] == "http://x/fhir/Task?status=completed&_count=10&_offset=0"
    last = page_links("http://x/fhir/Task", [], offset=20, count=10, total=25)
    assert "next" not in last
