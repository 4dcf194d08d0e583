"""Webhook delivery: referral details to organisations without Kafka, signed, retried for
a day, then parked where operators look (the dead-letter topic)."""

SERVICE = "webhook-delivery"
