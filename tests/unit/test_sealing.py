"""Sealing dead letters' originals at rest (adapters/sealing.py): AES-GCM, key ids, rotation."""

from __future__ import annotations

import base64
import os

import pytest

from adapters.runtime.settings import ServiceSettings
from adapters.sealing import DEV_DEAD_LETTER_KEYS, Sealer, SealError, is_sealed


def _key(kid: str) -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


BUNDLE = '{"resourceType":"Bundle","bsn":"999911120","diagnose":"Depressie é"}'


def test_a_sealed_value_opens_to_what_was_sealed_and_shows_nothing_of_it() -> None:
    sealer = Sealer.parse(_key("kid1"))
    sealed = sealer.seal(BUNDLE, bound_to="letter-1")
    assert sealed.startswith("sealed:v1:kid1:") and is_sealed(sealed)
    assert "999911120" not in sealed and "Depressie" not in sealed
    assert sealer.open(sealed, bound_to="letter-1") == BUNDLE
    assert sealer.seal(BUNDLE, bound_to="letter-1") != sealed, "a fresh nonce each time"


def test_rotation_the_newest_key_seals_and_the_old_one_still_opens() -> None:
    old, new = _key("kid0"), _key("kid1")
    before = Sealer.parse(old).seal(BUNDLE, bound_to="a")
    rotated = Sealer.parse(f"{new},{old}")
    assert rotated.open(before, bound_to="a") == BUNDLE
    after = rotated.seal(BUNDLE, bound_to="a")
    assert after.startswith("sealed:v1:kid1:")
    with pytest.raises(SealError, match="'kid1', which BRUG_DEAD_LETTER_KEYS does not hold"):
        Sealer.parse(old).open(after, bound_to="a")


def test_an_altered_value_or_another_rows_value_does_not_open() -> None:
    sealer = Sealer.parse(_key("kid1"))
    sealed = sealer.seal(BUNDLE, bound_to="letter-1")
    head, _, body = sealed.rpartition(":")
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(SealError, match="altered, or not this row's"):
        sealer.open(f"{head}:{base64.b64encode(raw).decode()}", bound_to="letter-1")
    with pytest.raises(SealError, match="altered, or not this row's"):
        sealer.open(sealed, bound_to="letter-2")
    with pytest.raises(SealError, match="not base64"):
        sealer.open(f"{head}:***", bound_to="letter-1")
    with pytest.raises(SealError, match="this version reads"):
        sealer.open(sealed.replace("sealed:v1:", "sealed:v9:"), bound_to="letter-1")
    with pytest.raises(SealError, match="altered, or not this row's"):
        Sealer.parse(_key("kid1")).open(sealed, bound_to="letter-1")  # same kid, other key


def test_a_value_from_before_sealing_reads_as_itself() -> None:
    assert Sealer.parse(_key("kid1")).open(BUNDLE, bound_to="x") == BUNDLE
    assert Sealer().open("", bound_to="x") == "", "an emptied (erased) original"


def test_without_a_key_nothing_seals_and_the_message_says_what_to_set() -> None:
    with pytest.raises(SealError, match="BRUG_DEAD_LETTER_KEYS is not set"):
        Sealer.parse("").seal(BUNDLE, bound_to="x")
    with pytest.raises(SealError, match="BRUG_DEAD_LETTER_KEYS is not set"):
        Sealer.parse(None).require()
    sealed = Sealer.parse(DEV_DEAD_LETTER_KEYS).seal(BUNDLE, bound_to="x")
    with pytest.raises(SealError, match="does not hold"):
        Sealer().open(sealed, bound_to="x")


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("kid1", "kid:<base64"),
        ("kid1:not base64!", "is not base64"),
        (f"kid1:{base64.b64encode(b'short').decode()}", "has 5 bytes, not 32"),
        (f"{_key('kid1')},{_key('kid1')}", "appears twice"),
        (f"k d:{base64.b64encode(bytes(32)).decode()}", "kid:<base64"),
    ],
    # Fixed ids: a random key in an id makes each pytest-xdist worker collect another test.
    ids=["no-key", "not-base64", "short-key", "kid-twice", "kid-with-space"],
)
def test_a_bad_setting_is_refused_without_showing_the_key(setting: str, says: str) -> None:
    with pytest.raises(SealError, match=says) as refused:
        Sealer.parse(setting)
    secret = setting.partition(":")[2]
    assert not secret or secret not in str(refused.value)


def test_the_setting_reaches_the_sealer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUG_DEAD_LETTER_KEYS", f" {_key('kid2')} , {DEV_DEAD_LETTER_KEYS} ")
    sealer = ServiceSettings().dead_letter_sealer()
    assert [kid for kid, _ in sealer.keys] == ["kid2", "dev1"]
    monkeypatch.delenv("BRUG_DEAD_LETTER_KEYS")
    assert not ServiceSettings().dead_letter_sealer().configured
