"""structlog JSON logging for every service, with personal data redacted on the way out.

Redaction is defence in depth: code should not log personal data at all, but a
stray ``repr`` of a payload or a library's error message must not leak a BSN,
name or address into log storage that has no retention rule.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from opentelemetry import trace

REDACTED = "[redacted]"

# Keys whose values are personal data wherever they appear (FHIR, zib and our own names).
SENSITIVE_KEYS = frozenset(
    {
        "bsn",
        "name",
        "names",
        "given",
        "family",
        "prefix",
        "initials",
        "naam",
        "voornaam",
        "achternaam",
        "patient_name",
        "address",
        "adres",
        "line",
        "street",
        "straat",
        "house_number",
        "huisnummer",
        "postcode",
        "postal_code",
        "postalcode",
        "city",
        "woonplaats",
        "phone",
        "telephone",
        "telefoon",
        "telecom",
        "email",
        "e_mail",
        "birth_date",
        "birthdate",
        "date_of_birth",
        "geboortedatum",
        "note",
        "text",
        "patient_instruction",
        "free_text",
    }
)

# An e-mail address, matched before ids so that an id in its local part or domain does
# not shield the rest of the address. The local part starts only where its run of
# characters starts: the same matches, but a long blob without an "@" (base64, a token)
# is scanned once instead of once per character.
_EMAIL = r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Phone before BSN: in "+31 612345678" the nine digits would otherwise become a BSN
    # and the country code stay behind.
    (re.compile(r"(?<!\w)(\+31|0031|0)[\s-]?[1-9](?:[\s-]?\d){8}(?!\d)"), "[phone]"),
    # BSN-like: nine digits, optionally grouped as 123.456.789 or 1234 56 789.
    (re.compile(r"(?<![\d-])\d{3}[.\s]?\d{3}[.\s]?\d{3}(?![\d-])"), "[bsn]"),
    (re.compile(r"(?<![\d-])\d{4}[.\s]?\d{2}[.\s]?\d{3}(?![\d-])"), "[bsn]"),
    (re.compile(_EMAIL), "[email]"),
    # Dutch postcode: four digits (not starting with 0), two capitals.
    (re.compile(r"\b[1-9]\d{3}\s?(?!SA|SD|SS)[A-Z]{2}\b"), "[postcode]"),
    # Street and house number: "Kerkstraat 12", "Van Woustraat 3-hs", "Lange Haven 4a".
    (
        re.compile(
            r"\b[A-Z][\w'-]*(?:\s[A-Z]?[\w'-]+)*?"
            r"(?:straat|laan|weg|plein|gracht|kade|dijk|singel|hof|pad|dreef|steeg|haven|markt)"
            r"\s+\d+(?:\s?[-a-zA-Z]{1,3})?\b"
        ),
        "[address]",
    ),
    # A name after a Dutch or English form of address: "mevrouw De Vries", "dhr. J. Jansen".
    (
        re.compile(
            r"\b(?:mevrouw|mevr\.|mw\.|meneer|de heer|dhr\.|mr\.|mrs\.|ms\.)\s+"
            r"(?:[A-Z]\.\s?)*(?:(?:van|de|der|den|ter|ten|het|la)\s+)*[A-Z][\w'-]+",
            re.IGNORECASE,
        ),
        "[name]",
    ),
)

# Identifiers in free text. The 8-4-4-4-12 hyphenation is a UUID's own signature: no BSN,
# phone number or postcode is written that way, so it counts whatever its digits.
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# A bare 32-hex (trace id, hyphenless UUID) or 16-hex (span id) token counts only if it
# holds an a-f letter. A run of 16 or 32 decimal digits could be an account or card number.
# Leaving it to the patterns costs nothing, because none of them match inside an unbroken
# digit run (they need a non-digit on both sides of the number).
_HEX_ID = r"(?=[0-9]*[a-fA-F])(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{16})"
_ID_TOKEN = re.compile(
    rf"(?P<email>{_EMAIL})|(?<![0-9A-Za-z])(?P<id>{_UUID}|{_HEX_ID})(?![0-9A-Za-z])"
)
_WHOLE_UUID = re.compile(rf"(?:urn:uuid:)?\{{?{_UUID}\}}?|[0-9a-fA-F]{{32}}")
_WHOLE_HEX_ID = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{16}")

# Keys whose value a client picks freely (the X-Request-ID header): only a UUID is
# trusted as an id there; anything else might carry data and is redacted as text.
_CLIENT_CHOSEN_ID_KEYS = frozenset({"request_id", "x_request_id"})
_ID_KEYS = frozenset({"id", "traceparent", "tracestate"})


def _redact_plain(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_text(text: str) -> str:
    """Mask personal data in ``text`` but keep the UUIDs and hex ids in it. The patterns
    run only on the text between ids, so a run of digits in an id never counts as a phone
    number or BSN. E-mail addresses come first, so that an id inside one does not keep
    the address."""
    parts: list[str] = []
    last = 0
    for match in _ID_TOKEN.finditer(text):
        parts.append(_redact_plain(text[last : match.start()]))
        parts.append(match["id"] or "[email]")
        last = match.end()
    parts.append(_redact_plain(text[last:]))
    return "".join(parts)


def _key_name(key: object) -> str:
    """``referralId`` and ``X-Request-ID`` become ``referral_id`` and ``x_request_id``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(key)).replace("-", "_").lower()


def _is_id_key(name: str) -> bool:
    return name in _ID_KEYS or name.endswith("_id")


def _redact_id(name: str, value: str) -> str:
    """The value of an id key passes unchanged if it is UUID- or trace/span-id-shaped.
    Decimal-only hex passes here too, because the key says what it is. Other values,
    slugs included, go through ``redact_text``. That leaves a slug such as ``GM0363`` or
    ``brug.intake:submitted`` alone and masks only a BSN, phone or postcode in it. An id
    a client chose (a FHIR Task id in a path) may hold one, and a bare nine-digit
    ``patient_id`` is a BSN."""
    if _WHOLE_UUID.fullmatch(value):
        return value
    if name not in _CLIENT_CHOSEN_ID_KEYS and _WHOLE_HEX_ID.fullmatch(value):
        return value
    return redact_text(value)


def _redact_item(key: object, item: Any) -> Any:
    if str(key).lower() in SENSITIVE_KEYS:
        return REDACTED
    name = _key_name(key)
    if isinstance(item, str) and _is_id_key(name):
        return _redact_id(name, item)
    return _redact(item)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: _redact_item(key, item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_redact(item) for item in value]
    return value


def redact_personal_data(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog processor: blank sensitive keys, mask BSN/postcode/phone/email/address/name,
    and leave UUIDs, trace ids and span ids, whether in id keys or in text, as they are."""
    return _redact(event_dict)  # type: ignore[no-any-return]


def add_trace_ids(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog processor: the current span's ``trace_id`` and ``span_id``, so a log line
    leads to its trace (and the trace to every line of the referral, in every service)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def bind_ids(*, referral_id: object = None, event_id: object = None) -> None:
    """Put the ids a piece of work is about on every later log line of it (structlog
    contextvars) and on the current span. Ids only: never anything personal."""
    ids = {
        key: str(value)
        for key, value in (("referral_id", referral_id), ("event_id", event_id))
        if value is not None
    }
    structlog.contextvars.bind_contextvars(**ids)
    span = trace.get_current_span()
    for key, value in ids.items():
        span.set_attribute(f"brug.{key}", value)


def _shared_processors() -> list[structlog.typing.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_personal_data,
        # After redaction: hex ids are not data, and a run of nine digits in one would
        # otherwise be masked as a BSN.
        add_trace_ids,
    ]


def configure_logging(service: str, level: str = "INFO", log_format: str = "json") -> None:
    """Send structlog and stdlib logging (FastStream, aiokafka) through one redacting pipeline."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.ExtraAdder(),
                *_shared_processors(),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    structlog.contextvars.bind_contextvars(service=service)
