"""``brug dev up`` after a broker crash: the restarted broker answers metadata before it serves
admin requests, so provisioning is tried again on Kafka's retriable errors, within a deadline,
and any other error is raised at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka.errors import RequestTimedOutError, TopicAuthorizationFailedError

from deploy.devstack.provision import retry_while_kafka_starts


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def flaky(
    failures: list[Exception], result: str = "provisioned"
) -> tuple[Callable[[], str], list[int]]:
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return result

    return action, calls


def test_a_timed_out_admin_request_is_tried_again_until_it_succeeds() -> None:
    time = FakeTime()
    action, calls = flaky([RequestTimedOutError(), RequestTimedOutError()])
    result = retry_while_kafka_starts(action, clock=time.clock, sleep=time.sleep)
    assert result == "provisioned"
    assert len(calls) == 3
    assert time.slept == [1.0, 1.0]


def test_a_refusal_that_will_not_pass_is_raised_at_once() -> None:
    time = FakeTime()
    action, calls = flaky([TopicAuthorizationFailedError()])
    with pytest.raises(TopicAuthorizationFailedError):
        retry_while_kafka_starts(action, clock=time.clock, sleep=time.sleep)
    assert len(calls) == 1
    assert time.slept == []


def test_a_broker_that_never_gets_ready_fails_once_the_deadline_passed() -> None:
    time = FakeTime()
    action, calls = flaky([RequestTimedOutError() for _ in range(100)])
    with pytest.raises(RequestTimedOutError):
        retry_while_kafka_starts(action, within_seconds=5.0, clock=time.clock, sleep=time.sleep)
    assert len(calls) == 6  # at 0, 1, 2, 3, 4 and 5 s
    assert time.now == 5.0
