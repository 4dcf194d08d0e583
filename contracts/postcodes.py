"""Dutch postcodes → CBS municipality codes, by the four digits (PC4)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_POSTCODE = re.compile(r"^\s*([1-9][0-9]{3})\s?([A-Za-z]{2})?\s*$")


def pc4_of(postal_code: str) -> str | None:
    """``"1012 AB"``, ``"1012ab"`` or ``"1012"`` → ``"1012"``; anything else → None."""
    match = _POSTCODE.match(postal_code)
    return match.group(1) if match else None


@dataclass(frozen=True)
class PostcodeTable:
    """PC4 → municipality (``GMxxxx``). Where CBS places a PC4's addresses in several
    municipalities, the importer keeps the one with most addresses."""

    version: str
    municipality_by_pc4: dict[str, str]

    def municipality_for(self, postal_code: str) -> str | None:
        pc4 = pc4_of(postal_code)
        return self.municipality_by_pc4.get(pc4) if pc4 else None
