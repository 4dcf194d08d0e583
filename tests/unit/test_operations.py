"""The console's decisions and shapes without infrastructure: charts, flow directions,
health from metrics text, lag sums, timeline durations, passwords, replay rules, the
referral a dead letter is about, and the directory watcher."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafka import TopicPartition

from adapters.directory import WatchedDirectory
from adapters.kafka_admin import _summed_lag
from adapters.ledger.operations import referral_id_of
from adapters.ledger.repository import ReferralRow
from adapters.ledger.timeline import Step, _with_durations, format_duration
from adapters.operators import OperatorRegistry, OperatorRole, hash_password, verify_password
from contracts.codes import ReferralStatus
from contracts.events.deadletter import DeadLetter
from deploy.devstack.stack import DEFAULT_DIRECTORY
from services.console.actions import replay_refusal
from services.console.charts import sparkline
from services.console.flows import describe_topic, health_from_metrics

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_a_sparkline_draws_one_bar_per_busy_minute_scaled_to_the_peak() -> None:
    svg = str(sparkline([0, 2, 0, 4]))
    assert svg.count("<rect") == 2
    assert 'height="34.0"' in svg  # the peak fills the chart above the baseline
    assert "4 messages, 0 min ago" in svg and "2 messages, 2 min ago" in svg
    assert str(sparkline([])) == ""


def test_topics_are_placed_in_the_direction_their_messages_travel() -> None:
    assert describe_topic("brug.social.referrals.dynamo-amsterdam.v1")[0] == "medical → social"
    assert describe_topic("brug.social.status.dynamo-amsterdam.v1")[0] == "social → medical"
    assert describe_topic("brug.deadletter.v1")[0] == "operations"
    assert describe_topic("something.else")[0] == "other"


def test_health_reads_the_version_and_start_time_from_a_services_metrics() -> None:
    text = (
        "# TYPE brug_build_info gauge\n"
        'brug_build_info{service="router",version="1.2.3"} 1.0\n'
        "# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds 1796029200.0\n"
    )
    health = health_from_metrics("router", text)
    assert health.up and health.version == "1.2.3"
    assert health.started_at == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert health.uptime(AT + timedelta(hours=2, minutes=5)) == "2 h 05 min"


def test_lag_is_summed_per_group_and_topic_and_never_negative() -> None:
    a0, a1 = TopicPartition("brug.a", 0), TopicPartition("brug.a", 1)
    committed = {"brug-router": {a0: 5, a1: -1}, "brug-other": {a0: 7}}
    lags = _summed_lag(committed, {a0: 7, a1: 3})
    assert [(lag.group, lag.topic, lag.lag) for lag in lags] == [
        ("brug-other", "brug.a", 0),
        ("brug-router", "brug.a", 5),  # 2 behind on p0; p1 never committed: all 3 records
    ]


def test_each_step_takes_the_time_since_the_step_before() -> None:
    steps = _with_durations(
        [
            Step(AT, "fhir_gateway", "received"),
            Step(AT + timedelta(milliseconds=40), "router", "routed"),
            Step(AT + timedelta(seconds=95), "social_gateway", "fetched"),
        ]
    )
    assert [step.took_text for step in steps] == ["", "+40 ms", "+95.0 s"]
    assert steps[1].line().startswith("2026-11-30 09:00:00.040      +40 ms  router ")
    assert format_duration(timedelta(hours=3)) == "3.0 h"


def test_passwords_are_checked_against_scrypt_hashes_only() -> None:
    stored = hash_password("correct horse")
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("correct horse", "plain-text")
    registry = OperatorRegistry.model_validate(
        {
            "operators": [
                {"username": "olga", "name": "O", "role": "operator", "password_scrypt": stored}
            ]
        }
    )
    operator = registry.authenticate("olga", "correct horse")
    assert operator is not None and operator.role is OperatorRole.OPERATOR
    assert not operator.may_reveal
    assert registry.authenticate("olga", "wrong") is None
    assert registry.authenticate("nobody", "correct horse") is None


def _referral(status: ReferralStatus) -> ReferralRow:
    return ReferralRow(uuid.uuid4(), "dynamo-amsterdam", "GM0363", status)


def test_a_replay_is_refused_for_withdrawn_ended_or_erased_referrals() -> None:
    assert replay_refusal(_referral(ReferralStatus.ON_HOLD), details_kept=True) is None
    assert "withdrawn" in (replay_refusal(_referral(ReferralStatus.CANCELLED), True) or "")
    assert "ended" in (replay_refusal(_referral(ReferralStatus.COMPLETED), True) or "")
    assert "erased" in (replay_refusal(_referral(ReferralStatus.REQUESTED), False) or "")
    assert "not in the ledger" in (replay_refusal(None, True) or "")


def _dead_letter(key: str | None, value: str) -> DeadLetter:
    return DeadLetter(
        reason="unroutable",
        detail="no organisation",
        service="router",
        original_topic="brug.referrals.submitted.v1",
        original_partition=0,
        original_offset=1,
        original_key=key,
        original_value=value,
        attempts=1,
        failed_at=AT,
    )


def test_a_dead_letter_is_tied_to_its_referral_by_key_or_cloudevent_subject() -> None:
    referral_id = uuid.uuid4()
    assert referral_id_of(_dead_letter(str(referral_id), "{}")) == referral_id
    by_subject = json.dumps({"subject": str(referral_id), "data": {}})
    assert referral_id_of(_dead_letter("request-7", by_subject)) == referral_id
    assert referral_id_of(_dead_letter(None, "{not json")) is None


def test_the_directory_is_read_again_when_it_changes_and_a_bad_change_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "directory.json"
    original = json.loads(DEFAULT_DIRECTORY.read_text())
    path.write_text(json.dumps(original))
    watched = WatchedDirectory(path)
    assert watched.current().version == original["version"]

    changed = {**original, "version": "changed"}
    path.write_text(json.dumps(changed))
    os.utime(path, ns=(1, 1))  # a distinct stamp even on coarse file systems
    assert watched.current().version == "changed"

    path.write_text('{"organisations": "not a list"}')
    assert watched.current().version == "changed"  # the last good one stays
