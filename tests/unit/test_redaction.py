"""The log redaction processor: personal data never reaches a log line."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from adapters.runtime.logging import REDACTED, configure_logging, redact_personal_data, redact_text


def _valid_bsn(digits: list[int]) -> str:
    """Nine digits passing the elfproef (weights 9..2 and -1)."""
    total = sum(d * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    last = total % 11
    return "".join(map(str, digits[:8])) + str(last)


@pytest.mark.parametrize(
    ("text", "leaked", "marker"),
    [
        ("patient BSN 999993653 submitted", "999993653", "[bsn]"),
        ("bsn 999.993.653", "999.993.653", "[bsn]"),
        ("mail j.devries@example.nl please", "j.devries@example.nl", "[email]"),
        ("call 06-12345678 tomorrow", "06-12345678", "[phone]"),
        ("call +31 6 12345678 tomorrow", "+31 6 12345678", "[phone]"),
        ("lives at 1012 AB in the centre", "1012 AB", "[postcode]"),
        ("address Kerkstraat 12 second floor", "Kerkstraat 12", "[address]"),
        ("moved to Van Woustraat 3-hs", "Van Woustraat 3-hs", "[address]"),
        ("spoke to mevrouw De Vries", "De Vries", "[name]"),
        ("called dhr. J. Jansen twice", "Jansen", "[name]"),
    ],
)
def test_personal_data_in_free_text_is_masked(text: str, leaked: str, marker: str) -> None:
    redacted = redact_text(text)
    assert leaked not in redacted
    assert marker in redacted


def test_ids_codes_and_timestamps_survive() -> None:
    text = "referral 0b5d3c1e-8f0a-4c55-9d7e-3f2a1b6c7d80 GM0363 at 2026-11-02T09:14:03Z offset 42"
    assert redact_text(text) == text


def test_sensitive_keys_are_blanked_at_any_depth() -> None:
    event = {
        "event": "received bundle",
        "referral_id": "abc",
        "patient": {"name": [{"family": "Jansen", "given": ["Jan"]}], "birthDate": "1946-03-02"},
        "contacts": [{"telecom": "0612345678"}],
    }
    redacted = redact_personal_data(None, "info", event)
    assert redacted["referral_id"] == "abc"
    assert redacted["patient"]["name"] == REDACTED
    assert redacted["patient"]["birthDate"] == REDACTED
    assert redacted["contacts"][0]["telecom"] == REDACTED
    assert "Jansen" not in json.dumps(redacted)


@given(st.lists(st.integers(min_value=0, max_value=9), min_size=9, max_size=9))
def test_every_elfproef_valid_bsn_is_masked(digits: list[int]) -> None:
    bsn = _valid_bsn(digits)
    if len(bsn) != 9:  # a remainder of 10 has no single check digit: not a BSN
        return
    assert bsn not in redact_text(f"burger {bsn}, referral")


def test_structlog_and_library_logs_come_out_as_redacted_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("unit-test")
    structlog.get_logger("brug.test").info("fetched", bsn="999993653", note="mevrouw De Vries")
    logging.getLogger("aiokafka.some.module").warning("error for 999993653 at Kerkstraat 12")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert [line["service"] for line in lines] == ["unit-test", "unit-test"]
    output = json.dumps(lines)
    for personal in ("999993653", "De Vries", "Kerkstraat 12"):
        assert personal not in output
    assert lines[0]["bsn"] == REDACTED
    assert "[bsn]" in lines[1]["event"] and "[address]" in lines[1]["event"]
