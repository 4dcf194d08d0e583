"""A FHIR-aware fuzzer's strategy: real Bundles (the sample referral, a fresh identifier
each), mutated where they live. Shared by the CI test (``tests/unit/handlers/
test_fuzz_intake.py``, 500 cases) and the bench (``bench/fuzz_intake.py``, 10,000).

Each case takes one to four mutations at elements drawn from the Bundle as it stands:
deleted, retyped (a number, a list, an object, null where a string was, …), a NUL or a
lone surrogate put into a string, a huge number, a huge string, deep nesting, or any
text; then, on the serialised body, sometimes a duplicated key, or a cut in the middle.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import strategies as st

from deploy.demo import sample_bundle

Path = tuple[str | int, ...]

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_ANY_VALUE = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(document: Any, prefix: Path = ()) -> list[Path]:
    """Every element's path in ``document`` (objects' keys and lists' indexes)."""
    found: list[Path] = []
    if isinstance(document, dict):
        for key, value in document.items():
            found.append((*prefix, key))
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.append((*prefix, index))
            found += paths(value, (*prefix, index))
    return found


def _parent(document: Any, path: Path) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


def _with_character(value: Any, character: str, at: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    at = min(at, len(text))
    return text[:at] + character + text[at:]


@st.composite
def _mutation(draw: st.DrawFn, bundle: dict[str, Any]) -> None:
    """One mutation of ``bundle``, in place."""
    candidates = paths(bundle)
    path = draw(st.sampled_from(candidates))
    parent = _parent(bundle, path)
    key = path[-1]
    current = parent[key]
    kind = draw(
        st.sampled_from(
            ["delete", "retype", "nul", "surrogate", "number", "string", "nest", "text"]
        )
    )
    if kind == "delete":
        del parent[key]
        return
    if kind == "retype":
        new: Any = draw(_ANY_VALUE.filter(lambda v: type(v) is not type(current)))
    elif kind == "nul":
        new = _with_character(current, "\x00", draw(st.integers(0, 40)))
    elif kind == "surrogate":
        surrogate = chr(draw(st.integers(0xD800, 0xDFFF)))
        new = _with_character(current, surrogate, draw(st.integers(0, 40)))
    elif kind == "number":
        new = draw(st.sampled_from([10**400, -(10**30), 2**63, 2**31, 1e308, -0.0, 5e-324, 0, -1]))
    elif kind == "string":
        new = draw(st.sampled_from(["x", "é", "\u202e", "😀", "\ufeff"])) * draw(
            st.sampled_from([256, 301, 5_000, 100_000])
        )
    elif kind == "nest":
        new = _nested(draw(st.sampled_from([10, 40, 63, 64, 65, 200])))
    else:
        new = draw(st.text(max_size=30))
    parent[key] = new


_KEY = re.compile(r'"([A-Za-z]+)": ')


@st.composite
def bundle_bodies(draw: st.DrawFn) -> bytes:
    """The body of one fuzzed submission."""
    bundle = sample_bundle(f"FUZZ-{draw(st.uuids())}")
    for _ in range(draw(st.integers(1, 4))):
        if not paths(bundle):
            break
        draw(_mutation(bundle))
    text = json.dumps(bundle, ensure_ascii=draw(st.booleans()))
    finish = draw(st.sampled_from(["as-is", "as-is", "as-is", "duplicate-key", "cut", "deep"]))
    if finish == "duplicate-key" and (keys := list(_KEY.finditer(text))):
        key = draw(st.sampled_from(keys))
        duplicate = f'"{key.group(1)}": {json.dumps(draw(_SCALARS))}, '
        text = text[: key.start()] + duplicate + text[key.start() :]
    elif finish == "deep":  # deeper than the stdlib parser recurses
        depth = draw(st.sampled_from([65, 1_000, 100_000]))
        text = (
            text[:-1] + ', "deep": ' + "[" * depth + "]" * draw(st.sampled_from([0, depth])) + "}"
        )
    elif finish == "cut":
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    return text.encode("utf-8", "surrogatepass")
