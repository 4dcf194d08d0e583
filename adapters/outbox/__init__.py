"""The transactional outbox and its relay: how every domain event reaches Kafka."""

from adapters.outbox.store import Outbox, OutboxMessage, PendingMessage, cloudevent_message

__all__ = ["Outbox", "OutboxMessage", "PendingMessage", "cloudevent_message"]
