"""Relay: publishes the outbox (every domain event, written with the change it follows) to Kafka."""
