"""Versioned code → WoR theme tables. The tables are data shipped inside this package
(read once with importlib.resources); the lookup is pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from contracts.codes import WorTheme


@dataclass(frozen=True)
class ThemeTable:
    version: str
    themes: dict[tuple[str, str], WorTheme]

    def theme_for(self, system: str, code: str) -> WorTheme | None:
        """The theme for a code; ICPC subcodes (``Z15.01``) fall back to their rubric."""
        found = self.themes.get((system, code))
        if found is None and "." in code:
            found = self.themes.get((system, code.split(".", 1)[0]))
        return found


@cache
def wor_theme_table() -> ThemeTable:
    document = json.loads(files(__package__).joinpath("wor_themes.v1.json").read_text())
    return ThemeTable(
        version=f"{document['table']}.v{document['version']}",
        themes={(m["system"], m["code"]): WorTheme(m["theme"]) for m in document["mappings"]},
    )
