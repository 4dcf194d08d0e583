"""Feedback: status events from welfare case systems, checked against the state machine and
applied to the referral the GP tracks (first cut of issue 4)."""
