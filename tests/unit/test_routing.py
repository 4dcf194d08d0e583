"""Routing decisions and the welfare directory they come from."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.directory import DirectoryError, load_directory
from adapters.runtime import Unprocessable
from contracts.codes import AgeBand, Urgency, WorTheme
from contracts.directory import WelfareDirectory
from contracts.events import ReferralSubmitted
from deploy.devstack.stack import DEFAULT_DIRECTORY
from services.router.routing import route

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _directory() -> WelfareDirectory:
    return WelfareDirectory.model_validate(
        {
            "version": "t1",
            "organisations": [
                {
                    "id": "welzijn-lelystad",
                    "name": "Welzijn Lelystad",
                    "municipalities": ["GM0995"],
                },
                {
                    "id": "xtra",
                    "name": "Xtra",
                    "municipalities": ["GM0637", "GM1916"],
                    "delivery": "webhook",
                    "webhook_url": "https://xtra.example/brug",
                    "webhook_secret_env": "XTRA_SECRET",
                },
            ],
        }
    )


def _submitted(municipality_code: str) -> ReferralSubmitted:
    return ReferralSubmitted(
        referral_id=uuid.UUID("0b5d3c1e-8f0a-4c55-9d7e-3f2a1b6c7d80"),
        municipality_code=municipality_code,
        themes=[WorTheme.GRIEF_LOSS],
        age_band=AgeBand.FROM_85,
        urgency=Urgency.URGENT,
        submitted_at=datetime(2026, 11, 23, 11, 59, tzinfo=UTC),
    )


def test_the_organisation_serving_the_municipality_gets_the_referral() -> None:
    created = route(_submitted("GM1916"), _directory(), details_base_url="https://brug/r/", now=NOW)
    assert created.organisation_id == "xtra"
    assert created.routed_at == NOW
    assert created.details_url == "https://brug/r/0b5d3c1e-8f0a-4c55-9d7e-3f2a1b6c7d80"
    assert (created.themes, created.age_band, created.urgency) == (
        [WorTheme.GRIEF_LOSS],
        AgeBand.FROM_85,
        Urgency.URGENT,
    )


def test_an_unserved_municipality_is_unprocessable_and_says_which() -> None:
    with pytest.raises(Unprocessable) as raised:
        route(_submitted("GM0363"), _directory(), details_base_url="https://brug/r", now=NOW)
    assert raised.value.reason == "unroutable"
    assert "GM0363" in raised.value.detail
    assert "t1" in raised.value.detail


def test_the_sample_directory_is_valid() -> None:
    directory = load_directory(DEFAULT_DIRECTORY)
    assert directory.organisation_for("GM0363") is not None


@pytest.mark.parametrize(
    ("organisations", "complaint"),
    [
        (
            [
                {"id": "a-org", "name": "A", "municipalities": ["GM0363"]},
                {"id": "b-org", "name": "B", "municipalities": ["GM0363"]},
            ],
            "served by both",
        ),
        (
            [
                {"id": "a-org", "name": "A", "municipalities": ["GM0363"]},
                {"id": "a-org", "name": "A2", "municipalities": ["GM0995"]},
            ],
            "appears twice",
        ),
        ([{"id": "a-org", "name": "A", "municipalities": ["Amsterdam"]}], "GMxxxx"),
        ([{"id": "A Org", "name": "A", "municipalities": ["GM0363"]}], "pattern"),
    ],
)
def test_an_invalid_directory_fails_at_load_with_the_reason(
    tmp_path: Path, organisations: list[dict[str, object]], complaint: str
) -> None:
    path = tmp_path / "directory.json"
    path.write_text(json.dumps({"version": "x", "organisations": organisations}))
    with pytest.raises(DirectoryError, match=complaint):
        load_directory(path)


def test_a_missing_directory_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="not found"):
        load_directory(tmp_path / "nope.json")
