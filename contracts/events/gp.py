"""What GP systems on the bus receive: id-only change notices for the FHIR resources Brug
keeps for them. They carry ids, never content; the GP system reads the resource through
the FHIR API (where access is checked and the read is a receipt)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from contracts.cloudevents import EventData


class GpResourceChanged(EventData):
    """On ``brug.gp.changes.<client>.v1``, keyed by referral id (so in order per referral):
    a Task changed (new ``meta.versionId``) or a Communication arrived."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.gp.resource-changed.v1"

    referral_id: UUID
    resource_type: Literal["Task", "Communication"]
    resource_id: UUID
    version_id: int = Field(ge=1)
    task_id: UUID = Field(description="The referral's Task, also for a Communication.")
    changed_at: datetime

    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"

    def subject(self) -> str:
        return str(self.referral_id)
