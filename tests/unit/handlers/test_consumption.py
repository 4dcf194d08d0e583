"""How every Kafka-consuming service reads its topics, as wired by its composition root:
each subscriber commits only what it handled (no auto commit), and one with several
workers keeps every partition in order (one consumer per partition, never two records of
one partition at once). A subscriber declared on a bare ``KafkaRouter()`` silently did
neither, and a referral's statuses were applied out of order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from faststream import AckPolicy, FastStream
from faststream.kafka.subscriber.usecase import (
    ConcurrentBetweenPartitionsSubscriber,
    ConcurrentDefaultSubscriber,
    DefaultSubscriber,
)

from adapters.runtime.kafka import service_router
from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.gp_notify.app import create_app as gp_notify_app
from services.gp_notify.settings import NotifySettings
from services.monitor.app import create_app as monitor_app
from services.monitor.settings import MonitorSettings
from services.router.app import create_app as router_app
from services.router.settings import RouterSettings
from services.webhook_delivery.app import create_app as webhook_app
from services.webhook_delivery.settings import WebhookSettings

SERVICES: dict[str, Callable[[str], FastStream]] = {
    "router": lambda url: router_app(RouterSettings(database_url=url, router_workers=3)),
    "feedback": lambda url: feedback_app(FeedbackSettings(database_url=url, feedback_workers=3)),
    "gp_notify": lambda url: gp_notify_app(NotifySettings(database_url=url, notify_workers=3)),
    "monitor": lambda url: monitor_app(MonitorSettings(database_url=url)),
    "webhook_delivery": lambda url: webhook_app(WebhookSettings(database_url=url)),
}


def _reading(subscriber: Any) -> tuple[AckPolicy, bool]:
    return subscriber.ack_policy, subscriber._connection_args.get("enable_auto_commit")


@pytest.mark.parametrize("service", SERVICES)
async def test_every_subscriber_commits_only_what_it_handled_and_keeps_partitions_in_order(
    service: str, handler_database: str
) -> None:
    app = SERVICES[service](handler_database)
    try:
        assert app.broker is not None
        subscribers = list(app.broker.subscribers)
        assert subscribers, f"{service} reads no topic"
        for subscriber in subscribers:
            assert _reading(subscriber) == (AckPolicy.NACK_ON_ERROR, False), subscriber
            assert not isinstance(subscriber, ConcurrentDefaultSubscriber), subscriber
        workers = [s for s in subscribers if isinstance(s, ConcurrentBetweenPartitionsSubscriber)]
        if service in {"router", "feedback", "gp_notify"}:
            assert workers and all(s.max_workers == 3 for s in workers)
    finally:
        await app.stop()


def test_a_router_subscriber_with_workers_runs_one_consumer_per_partition() -> None:
    async def handle(body: bytes) -> None: ...

    router = service_router()
    router.subscriber("brug.example.v1", group_id="brug-example")(handle)
    router.subscriber("brug.other.v1", group_id="brug-example", max_workers=3)(handle)
    router.subscriber(pattern=r"brug\.example\..*", group_id="brug-example")(handle)
    kinds = {type(s): _reading(s) for s in router.subscribers}
    assert kinds == {
        DefaultSubscriber: (AckPolicy.NACK_ON_ERROR, False),
        ConcurrentBetweenPartitionsSubscriber: (AckPolicy.NACK_ON_ERROR, False),
    }
