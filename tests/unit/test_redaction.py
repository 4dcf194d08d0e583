"""The log redaction processor: personal data never reaches a log line."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
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


# --- identifiers pass unchanged (issue 18) ------------------------------------------------

_DIGITS = "0123456789"
_HEX = "0123456789abcdef"


def _uuid_with(run: str, offset: int, filler: str) -> uuid.UUID:
    """A UUID whose 32 hex digits hold ``run`` (a phone or BSN) at ``offset``."""
    digits = (filler[:offset] + run + filler)[:32]
    return uuid.UUID(hex=digits)


_personal_runs = st.one_of(
    st.text(_DIGITS, min_size=8, max_size=8).map(lambda d: "06" + d),  # a mobile number
    st.text(_DIGITS, min_size=9, max_size=9),  # BSN-shaped
)

# Random uuid4s and the crafted ones the issue is about: all-decimal groups, and groups
# carrying a phone number or a nine-digit run, where the old patterns bit.
uuids = st.one_of(
    st.uuids(),
    st.uuids(version=4),
    st.text(_DIGITS, min_size=32, max_size=32).map(lambda d: uuid.UUID(hex=d)),
    st.just(uuid.UUID("12345678-1234-1234-1234-123456789012")),
    st.builds(
        _uuid_with,
        _personal_runs,
        st.integers(min_value=0, max_value=22),
        st.text(_HEX, min_size=32, max_size=32),
    ),
)

# Every spelling an id takes in our logs and in clients' requests.
uuid_spellings = st.sampled_from(
    [
        str,
        lambda u: str(u).upper(),
        lambda u: u.hex,
        lambda u: u.hex.upper(),
        lambda u: f"urn:uuid:{u}",
        lambda u: f"{{{u}}}",
    ]
)
trace_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
span_ids = st.binary(min_size=8, max_size=8).map(bytes.hex)
id_keys = st.sampled_from(
    [
        "referral_id",
        "id",
        "event_id",
        "dead_letter_id",
        "causation_id",
        "correlation_id",
        "task_id",
        "request_id",
        "X-Request-ID",
        "referralId",
    ]
)

# Seeded personal data, each with the marker it must turn into.
_postcodes = st.builds(
    lambda d, letters, space: f"{d}{space}{letters}",
    st.integers(min_value=1000, max_value=9999),
    st.text("ABCDEFGHJKLMNPRTUVWXYZ", min_size=2, max_size=2),
    st.sampled_from(["", " "]),
)
personal = st.tuples(
    st.text(_DIGITS, min_size=9, max_size=9).map(lambda b: (f"burger {b}", "burger [bsn]")),
    st.text(_DIGITS, min_size=8, max_size=8).flatmap(
        lambda d: st.sampled_from([f"06{d}", f"06-{d}", f"+31 6{d}"]).map(
            lambda phone: (f"tel {phone}", "tel [phone]")
        )
    ),
    st.from_regex(r"[a-z]{2,8}\.[a-z]{2,8}", fullmatch=True).map(
        lambda local: (f"mail {local}@example.nl", "mail [email]")
    ),
    _postcodes.map(lambda pc: (f"postcode {pc}", "postcode [postcode]")),
    st.sampled_from(["De Vries", "Jansen", "van der Berg", "Bakker"]).map(
        lambda name: (f"mevrouw {name}", "[name]")
    ),
)
separators = st.sampled_from([" ", ", ", "; ", " / ", "\n", " | "])


def _free_text(ids: list[str], seeded: tuple[tuple[str, str], ...], sep: str) -> tuple[str, str]:
    """Ids interleaved with personal data: the text logged and the text expected out."""
    raw = [f"referral {ids[0]} is not in the ledger"]
    expected = list(raw)
    for index, (leak, marker) in enumerate(seeded):
        raw += [leak, ids[(index + 1) % len(ids)]]
        expected += [marker, ids[(index + 1) % len(ids)]]
    return sep.join(raw), sep.join(expected)


@settings(max_examples=300, deadline=None)
@given(uuids, uuid_spellings, id_keys, trace_ids, span_ids, personal, separators)
def test_uuids_and_trace_ids_survive_next_to_personal_data(
    referral: uuid.UUID,
    spell: Any,
    key: str,
    trace_id: str,
    span_id: str,
    seeded: tuple[tuple[str, str], ...],
    sep: str,
) -> None:
    ident = spell(referral)
    text, expected_text = _free_text([ident, trace_id, span_id, str(referral)], seeded, sep)
    event = {
        "event": text,
        key: ident if key not in ("request_id", "X-Request-ID") else str(referral),
        "trace_id": trace_id,
        "span_id": span_id,
        "traceparent": f"00-{trace_id}-{span_id}-01",
        "dead_letters": [ident, {"dead_letter_id": ident, "detail": text}],
        "bsn": seeded[0][0],
    }

    redacted = redact_personal_data(None, "error", dict(event))

    assert redacted["event"] == expected_text
    assert redacted[key] == event[key]
    assert redacted["trace_id"] == trace_id
    assert redacted["span_id"] == span_id
    assert redacted["traceparent"] == event["traceparent"]
    assert redacted["dead_letters"] == [ident, {"dead_letter_id": ident, "detail": expected_text}]
    assert redacted["bsn"] == REDACTED
    output = json.dumps(redacted)
    for leak, _marker in seeded:
        assert leak not in output


@settings(max_examples=100, deadline=None)
@given(uuids)
def test_the_uuid_patterns_bit_is_logged_whole(referral: uuid.UUID) -> None:
    message = f"dead letter {referral} for referral {referral.hex}: KeyError"
    assert redact_text(message) == message


@pytest.mark.parametrize(
    "value",
    # The old patterns logged these as "c1e39740-[phone]db-996b93c8b2b1",
    # "[phone]b9-41c4-8d7e-3f2a1b6c7d80" and "0af76519-1234-5678-9abc-[phone]de".
    [
        "c1e39740-0612-3456-78db-996b93c8b2b1",
        "06123456-78b9-41c4-8d7e-3f2a1b6c7d80",
        "0af76519-1234-5678-9abc-0612345678de",
    ],
)
def test_the_ids_from_the_issue_survive(value: str) -> None:
    event = {"referral_id": value, "event": f"referral {value} parked"}
    assert redact_personal_data(None, "info", dict(event)) == event


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("GM0363", "GM0363"),
        ("huisarts-demo", "huisarts-demo"),
        ("brug.intake:submitted:3", "brug.intake:submitted:3"),
        ("evt_2026-11-02T09:14:03Z", "evt_2026-11-02T09:14:03Z"),
        ("0af7651916cd43dd8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c"),
        ("12345678901234567890123456789012", "12345678901234567890123456789012"),
        # A bare number under an id key is where a BSN or phone number would sit.
        ("999993653", "[bsn]"),
        ("0612345678", "[phone]"),
        ("task_999993653", "task_[bsn]"),
        ("1012AB", "[postcode]"),
    ],
)
def test_id_key_values(value: str, expected: str) -> None:
    assert redact_personal_data(None, "info", {"task_id": value})["task_id"] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1c2e3974-0612-3456-7890-96b93c8b2b1a", "1c2e3974-0612-3456-7890-96b93c8b2b1a"),
        ("0612345678", "[phone]"),
        ("bsn:999993653", "bsn:[bsn]"),
        ("mevrouw De Vries", "[name]"),
        ("j.devries@example.nl", "[email]"),
    ],
)
def test_a_client_chosen_request_id_passes_only_when_uuid_shaped(value: str, expected: str) -> None:
    for key in ("request_id", "X-Request-ID", "x_request_id"):
        assert redact_personal_data(None, "info", {key: value})[key] == expected


@pytest.mark.parametrize(
    "text",
    [
        "patient 123456782 called",  # a BSN is not a hex id
        "call 0612345678 tomorrow",  # nor is a phone number
        "mail 1c2e3974-0612-3456-7890-96b93c8b2b1a@example.nl",  # an id as an e-mail's local part
        "mail j.devries@0af7651916cd43dd.example.nl",  # or in its domain
    ],
)
def test_personal_data_that_holds_or_resembles_an_id_is_still_masked(text: str) -> None:
    redacted = redact_text(text)
    assert redacted != text
    assert "[bsn]" in redacted or "[phone]" in redacted or "[email]" in redacted
    assert "example.nl" not in redacted and "123456782" not in redacted
    assert "0612345678" not in redacted
