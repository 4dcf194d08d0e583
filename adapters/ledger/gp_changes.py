"""What GP systems hear of: an id-only ``GpResourceChanged`` on
``brug.gp.changes.<client>.v1`` for every new version of a Task and every new
Communication, written to the outbox in the transaction of the change itself.

The ledger writes it wherever a Task version is made or a Communication stored, so no
caller can change a Task and forget to say so, and the relay publishes it like every other
event: in order per referral, after the change committed, whatever crashes in between.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal
from uuid import UUID

from sqlalchemy import Connection

from adapters.outbox.store import Outbox, cloudevent_message
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import GpResourceChanged

# The namespace the feedback service's announcement loop used: the same change keeps the
# same event id across the upgrade, so a GP system sees no repeats.
_NOTICE_IDS = uuid.UUID("0b9b1f7c-3f47-4a43-8a5e-9d0e1f6d2c11")
# The source of the notices: the ledger made them, whichever service changed it.
_SOURCE = "ledger"


def announce_change(
    connection: Connection,
    *,
    referral_id: UUID,
    client_id: str | None,
    task_id: UUID | None,
    resource: tuple[Literal["Task", "Communication"], UUID, int],
    at: datetime,
) -> None:
    """Queue the notice for ``resource`` (type, id, version) in the caller's transaction.
    A referral without a GP client or Task (a bare test row) has nobody to tell."""
    if client_id is None or task_id is None:
        return
    resource_type, resource_id, version = resource
    notice = GpResourceChanged(
        referral_id=referral_id,
        resource_type=resource_type,
        resource_id=resource_id,
        version_id=version,
        task_id=task_id,
        changed_at=at,
    )
    event_id = str(uuid.uuid5(_NOTICE_IDS, f"{notice.reference()}/_history/{version}"))
    event = CloudEvent[GpResourceChanged].wrap(notice, service=_SOURCE, event_id=event_id)
    Outbox(connection).add(
        cloudevent_message(event, topics.gp_changes(client_id), referral_id=referral_id)
    )
