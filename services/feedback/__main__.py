"""Feedback: status events from welfare case systems, checked against the state machine and
applied to the referral the GP tracks."""

from adapters.runtime import run
from services.feedback.app import create_app

run(create_app())
