"""What operators act on, against the real PostgreSQL: dead letters kept once, sessions that
expire, referrals found by any of their ids, parked deliveries requeued, and one referral's
timeline assembled from the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from adapters.database import make_engine
from adapters.ledger.operations import Operations
from adapters.ledger.repository import Ledger
from adapters.ledger.timeline import referral_timeline
from adapters.ledger.webhooks import WebhookQueue
from adapters.sealing import DEV_DEAD_LETTER_KEYS, Sealer
from contracts.codes import ReferralStatus
from contracts.events.deadletter import DeadLetter
from services.console.actions import ActionRefused, discard_dead_letter
from services.console.delivery_actions import requeue_delivery
from tests.conftest import database_of_its_own
from tests.integration.test_ledger import _intake

SEALER = Sealer.parse(DEV_DEAD_LETTER_KEYS)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url(database_url: str) -> Iterator[str]:
    """A ledger of its own: the change notices its rows queue name GP systems the shared
    broker has no topic for, and the running stacks' relays must not meet them."""
    with database_of_its_own(database_url, "brug_ledger_test") as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Engine:
    return make_engine(database_url)


def _dead_letter(referral_id: uuid.UUID) -> DeadLetter:
    return DeadLetter(
        reason="unroutable",
        detail="no welfare organisation serves municipality GM0363",
        service="router",
        original_topic="brug.referrals.submitted.v1",
        original_partition=1,
        original_offset=42,
        original_key=str(referral_id),
        original_value="{}",
        attempts=1,
        failed_at=datetime.now(UTC),
    )


def test_a_dead_letter_is_kept_once_and_discarded_only_with_a_note(engine: Engine) -> None:
    referral_id, letter_id = uuid.uuid4(), str(uuid.uuid4())
    with engine.begin() as connection:
        operations = Operations(connection)
        assert operations.record_dead_letter(letter_id, _dead_letter(referral_id), SEALER)
        assert not operations.record_dead_letter(letter_id, _dead_letter(referral_id), SEALER)
        parked = operations.dead_letters("parked", referral_id=referral_id)
        assert [letter.dead_letter_id for letter in parked] == [letter_id]

    with pytest.raises(ActionRefused, match="note is required"):
        discard_dead_letter(engine, letter_id, actor="operator:olga", note="")
    discard_dead_letter(engine, letter_id, actor="operator:olga", note="duplicate of another")
    with pytest.raises(ActionRefused, match="already discarded by operator:olga"):
        discard_dead_letter(engine, letter_id, actor="operator:pim", note="again")
    with engine.connect() as connection:
        letter = Operations(connection).dead_letter(letter_id)
    assert letter is not None and letter.state == "discarded"
    assert letter.note == "duplicate of another"


def test_a_session_lives_while_used_and_ends_after_its_idle_time(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        operations = Operations(connection)
        operations.open_session(
            "h1", "olga", "operator", "csrf", at=now, expires_at=now + timedelta(minutes=30)
        )
        used = operations.live_session(
            "h1", now=now + timedelta(minutes=29), extend_to=now + timedelta(minutes=59)
        )
        assert used is not None and used.username == "olga"
        assert operations.live_session("h1", now=now + timedelta(minutes=60), extend_to=now) is None
        operations.close_session("h1")


def test_a_referral_is_found_by_its_id_task_or_identifier_and_its_timeline_is_ordered(
    engine: Engine,
) -> None:
    referral_id, identifier = uuid.uuid4(), f"WOR-{uuid.uuid4()}"
    intake = _intake(referral_id, identifier, datetime.now(UTC) + timedelta(days=1))
    with engine.begin() as connection:
        ledger = Ledger(connection)
        ledger.record_intake(intake)
        ledger.audit(
            actor="client:his-test", action="submitted", referral_id=referral_id, detail={}
        )
        ledger.mark_submitted_event_published(referral_id, datetime.now(UTC))
        ledger.assign(referral_id, "dynamo-amsterdam", at=datetime.now(UTC))
        ledger.audit(
            actor="service:router",
            action="routed",
            referral_id=referral_id,
            detail={"organisation_id": "dynamo-amsterdam"},
        )
        ledger.audit(
            actor="operator:olga", action="viewed-timeline", referral_id=referral_id, detail={}
        )
    with engine.connect() as connection:
        operations = Operations(connection)
        for query in (str(referral_id), str(intake.task_id), identifier):
            assert operations.find_referral(query) == referral_id
        assert operations.find_referral("WOR-unknown") is None
        timeline = referral_timeline(connection, referral_id)
    assert timeline is not None
    steps = [step.step for step in timeline.steps]
    assert steps.index("received from the GP system and translated") < steps.index(
        "assigned to a welfare organisation"
    )
    assert "viewed-timeline" not in " ".join(steps)  # accesses are listed apart
    assert [access.actor for access in timeline.accesses] == ["operator:olga"]
    assert all(step.took is not None for step in timeline.steps[1:])


def test_a_parked_delivery_is_requeued_but_not_for_a_withdrawn_referral(engine: Engine) -> None:
    referral_id, event_id = uuid.uuid4(), str(uuid.uuid4())
    now = datetime.now(UTC)
    with engine.begin() as connection:
        Ledger(connection).record_intake(
            _intake(referral_id, f"WOR-{uuid.uuid4()}", now + timedelta(days=1))
        )
        queue = WebhookQueue(connection)
        queue.enqueue(event_id, referral_id, "xtra-zoetermeer", {"id": event_id}, now)
        queue.park(event_id, "HTTP 503", now)
    requeue_delivery(engine, event_id, actor="operator:olga", note="endpoint is back")
    with engine.connect() as connection:
        state = WebhookQueue(connection).state_of(event_id)
    assert state is not None and state[0] == "pending" and state[1] == 0

    with engine.begin() as connection:
        WebhookQueue(connection).park(event_id, "HTTP 503", now)
        Ledger(connection).change_status(
            referral_id, ReferralStatus.CANCELLED, source="gp:his-test", at=now
        )
    with pytest.raises(ActionRefused, match="withdrawn"):
        requeue_delivery(engine, event_id, actor="operator:olga", note="try again")
