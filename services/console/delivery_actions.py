"""What an operator may do with a parked webhook delivery: try it again now, or discard it.

Both are audited; a requeue is refused, like a replay, for a withdrawn, ended or erased referral.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from adapters.ledger.operations import Operations
from services.console.actions import ActionRefused, ActionResult, audit_action, check_referral


def requeue_delivery(engine: Engine, event_id: str, *, actor: str, note: str) -> ActionResult:
    with engine.begin() as connection:
        operations = Operations(connection)
        delivery = operations.parked_delivery(event_id)
        if delivery is None:
            raise ActionRefused("no parked webhook delivery with that id")
        check_referral(connection, delivery.referral_id)
        operations.requeue_delivery(event_id, datetime.now(UTC))
        audit_action(connection, actor, "requeued-delivery", delivery.referral_id, event_id, note)
    return ActionResult("requeued: the webhook is tried again now", delivery.referral_id)


def discard_delivery(engine: Engine, event_id: str, *, actor: str, note: str) -> ActionResult:
    if not note.strip():
        raise ActionRefused("say why it is discarded: a note is required")
    with engine.begin() as connection:
        operations = Operations(connection)
        delivery = operations.parked_delivery(event_id)
        if delivery is None or not operations.discard_delivery(event_id, datetime.now(UTC)):
            raise ActionRefused("no parked webhook delivery with that id")
        audit_action(connection, actor, "discarded-delivery", delivery.referral_id, event_id, note)
    return ActionResult("discarded", delivery.referral_id)
