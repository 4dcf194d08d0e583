from __future__ import annotations

from pathlib import Path

from pydantic import Field

from adapters.runtime import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


class RouterSettings(ServiceSettings):
    directory_path: Path = Field(
        default=REPO_ROOT / "deploy" / "directory" / "sample.json",
        description="The welfare directory file (BRUG_DIRECTORY_PATH).",
    )
    details_base_url: str = Field(
        default="http://127.0.0.1:8080/social/v1/referrals/",
        description="Where case systems fetch a referral's details; the id is appended.",
    )
