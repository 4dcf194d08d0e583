"""Feedback: status events from welfare case systems, checked against the state machine and
applied to the referral the GP tracks; id-only change notices for GP systems; the
service-level timers."""

import uuid

SERVICE = "feedback"
CLOUDEVENTS_JSON = {"content-type": "application/cloudevents+json"}
# The namespace of the ids of events this service makes (notices, overdue timers): derived,
# so a repeat after a crash carries the same id.
EVENT_IDS = uuid.UUID("0b9b1f7c-3f47-4a43-8a5e-9d0e1f6d2c11")
