"""Reference welfare case system: consumes one organisation's referral events, fetches each
referral's details with the organisation's token, and files what it got.

    python -m deploy.simulator --organisation dynamo-amsterdam --token dev-welfare-dynamo-amsterdam

The "case file" (one JSON line per referral, ``--case-file``) stands in for the case
system's own database; its log carries ids only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer
from kafka.errors import KafkaError

from adapters.kafka_security import KafkaCredentials
from adapters.runtime.service import READY_LOG_LINE
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import FeedbackReceivedByGp, ReferralCreated, ReferralWithdrawn

READY_WITHIN_SECONDS = 40.0  # below `brug dev up`'s 60 s wait


def main(argv: list[str] | None = None) -> int:
    options = _options(argv)
    consumer = KafkaConsumer(
        topics.social_referrals(options.organisation),
        bootstrap_servers=options.bootstrap_servers,
        # Its principal's name (BRUG_KAFKA_USERNAME): the group its ACLs allow.
        group_id=f"case-{options.organisation}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **KafkaCredentials().kafka_python(),
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    seen: set[str] = set()
    # Ready once it is in its group, so a `brug dev up` that returned means referrals are
    # read; a join slower than that is announced anyway, and goes on in the loop. (Its
    # first poll's records were dropped before, and committed past.)
    ready_by: float | None = time.monotonic() + READY_WITHIN_SECONDS
    with httpx.Client(timeout=10.0) as http:
        while not stopping:
            try:
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        _handle(record.value, options, http, seen)
                consumer.commit()
                if ready_by is not None and (consumer.assignment() or time.monotonic() > ready_by):
                    _log(READY_LOG_LINE, organisation=options.organisation)
                    ready_by = None
            except KafkaError as error:
                # A broker restart (authenticating again, a rebalance) is a pause, not the
                # end: a case system keeps going, and uncommitted records come again.
                _log("kafka unavailable; retrying", error=type(error).__name__)
                time.sleep(1.0)
    consumer.close()
    return 0


def _handle(value: bytes, options: argparse.Namespace, http: httpx.Client, seen: set[str]) -> None:
    envelope = json.loads(value)
    if envelope["id"] in seen:  # duplicates are harmless: CloudEvents ids identify events
        return
    seen.add(envelope["id"])
    if envelope["type"] == ReferralWithdrawn.EVENT_TYPE:
        withdrawn = CloudEvent[ReferralWithdrawn].model_validate(envelope)
        _file(
            options,
            {
                "event_id": withdrawn.id,
                "referral_id": str(withdrawn.data.referral_id),
                "event": envelope,
                "withdrawn": True,
            },
        )
        _log("referral withdrawn", referral_id=str(withdrawn.data.referral_id))
        return
    if envelope["type"] == FeedbackReceivedByGp.EVENT_TYPE:
        receipt = CloudEvent[FeedbackReceivedByGp].model_validate(envelope)
        _file(
            options,
            {
                "event_id": receipt.id,
                "referral_id": str(receipt.data.referral_id),
                "receipt": receipt.data.model_dump(mode="json"),
            },
        )
        _log("feedback reached the GP", referral_id=str(receipt.data.referral_id))
        return
    event = CloudEvent[ReferralCreated].model_validate(envelope)
    headers = {"Authorization": f"Bearer {options.token}"}
    if event.traceparent:  # a case system that continues Brug's trace (W3C Trace Context)
        headers["traceparent"] = event.traceparent
    response = http.get(event.data.details_url, headers=headers)
    entry: dict[str, Any] = {
        "event_id": event.id,
        "referral_id": str(event.data.referral_id),
        "event": json.loads(value),
        "details_status": response.status_code,
        "details": response.json() if response.status_code == 200 else None,
    }
    _file(options, entry)
    _log("referral received", referral_id=entry["referral_id"], details_status=response.status_code)


def _file(options: argparse.Namespace, entry: dict[str, Any]) -> None:
    with options.case_file.open("a") as case_file:
        case_file.write(json.dumps(entry) + "\n")


def _log(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "service": "case-system-simulator", **fields}), flush=True)


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--organisation", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:19092")
    parser.add_argument("--case-file", type=Path, required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
