"""JSON from outside, parsed so that no document can crash the parser or what comes after.

The stdlib parser recurses once per nesting level (a body of 100,000 ``[`` exhausts the
stack), accepts duplicate keys (the last wins, silently), ``NaN`` and ``Infinity`` (which
PostgreSQL's JSON types refuse), numbers too long for ``int()``, and strings holding NUL or
lone surrogates (which PostgreSQL cannot store and UTF-8 cannot encode). ``loads`` refuses
all of them with a ``JsonRefused`` saying which, and where.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

MAX_DEPTH = 64  # FHIR resources nest a dozen levels deep; nothing real comes near 64

# A JSON string (escapes included), and the brackets that remain outside strings.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
# C0 controls other than tab, CR and LF (FHIR strings may hold only those), and surrogates.
_BAD_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")

Refusal = Literal["syntax", "too-deep", "duplicate-key", "number", "character"]


class JsonRefused(ValueError):
    """``kind`` says why; ``path`` (``$.entry[0].resource``) where, when known."""

    def __init__(self, kind: Refusal, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.kind: Refusal = kind
        self.message = message
        self.path = path


def too_deep(body: bytes | str, max_depth: int = MAX_DEPTH) -> bool:
    """Whether brackets outside strings nest deeper than ``max_depth`` (a cheap pre-scan:
    regular expressions, no recursion; unbalanced input is left to the parser)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def loads(body: bytes | str, *, max_depth: int = MAX_DEPTH, strings: bool = True) -> Any:
    """The document in ``body``, or a ``JsonRefused``. With ``strings=False`` the caller
    checks the strings itself (``bad_string``, rooted where it likes)."""
    if too_deep(body, max_depth):
        raise JsonRefused("too-deep", f"the JSON nests deeper than {max_depth} levels")
    try:
        document = json.loads(
            body,
            object_pairs_hook=_without_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite,
        )
    except JsonRefused:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise JsonRefused("syntax", f"not valid JSON: {error}") from None
    except (ValueError, RecursionError) as error:  # e.g. an integer of 5,000 digits
        raise JsonRefused("number", f"not a usable JSON number: {error}") from None
    if strings and (found := bad_string(document)) is not None:
        raise JsonRefused(
            "character", "a string holds a control character or a lone surrogate", found
        )
    return document


def bad_string(document: Any, path: str = "$") -> str | None:
    """The path of the first key or string value holding a NUL, another C0 control other
    than tab, CR and LF, or a lone surrogate; None when there is none."""
    stack: list[tuple[Any, str]] = [(document, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if _BAD_CHARACTER.search(value):
                return where
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if _BAD_CHARACTER.search(key):
                    return where
                stack.append((item, f"{where}.{key}"))
        elif isinstance(value, list):
            stack.extend(
                (item, f"{where}[{index}]") for index, item in reversed(list(enumerate(value)))
            )
    return None


def _without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise JsonRefused(
            "duplicate-key", f"the key {duplicate[:64]!r} appears twice in one object"
        )
    return document


def _no_constant(name: str) -> Any:
    raise JsonRefused("number", f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JsonRefused("number", f"the number {text[:32]}… is too large")
    return number
