"""When a failed record is parked, and when it is retried (the policy's decision only;
tests/integration/test_router.py shows parking against the real broker)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from adapters.runtime import Unprocessable
from adapters.runtime.deadletter import DeadLetterPolicy


class _Shape(BaseModel):
    referral_id: int


def _policy(max_attempts: int = 3) -> DeadLetterPolicy:
    broker: Any = object()  # the decision never touches the broker
    return DeadLetterPolicy(broker, service="unit", max_attempts=max_attempts)


def _validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        _Shape.model_validate({"referral_id": "not a number, 999993653"})
    return raised.value


def test_an_unprocessable_record_is_parked_at_once_with_the_handlers_reason() -> None:
    error = Unprocessable("unroutable", "no organisation serves GM9999")
    assert _policy().verdict(error, attempts=1) == ("unroutable", "no organisation serves GM9999")


def test_a_contract_violation_is_parked_at_once_and_the_detail_does_not_echo_values() -> None:
    reason, detail = _policy().verdict(_validation_error(), attempts=1) or ("", "")
    assert reason == "invalid-payload"
    assert "referral_id: int_parsing" in detail
    assert "999993653" not in detail


@pytest.mark.parametrize("error", [ConnectionRefusedError(), TimeoutError(), OSError("disk")])
def test_transient_failures_are_retried_however_often_they_happen(error: Exception) -> None:
    assert _policy(max_attempts=3).verdict(error, attempts=1000) is None


def test_other_failures_are_retried_up_to_the_limit_then_parked_as_gave_up() -> None:
    policy = _policy(max_attempts=3)
    error = KeyError("bug")
    assert policy.verdict(error, attempts=1) is None
    assert policy.verdict(error, attempts=2) is None
    assert policy.verdict(error, attempts=3) == ("gave-up", "KeyError after 3 attempts")


def test_driver_errors_count_as_transient_by_name() -> None:
    class OperationalError(Exception):  # what SQLAlchemy raises when PostgreSQL is down
        pass

    assert _policy(max_attempts=1).verdict(OperationalError(), attempts=50) is None
