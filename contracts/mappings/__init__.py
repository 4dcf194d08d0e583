"""Versioned code tables: code → WoR theme, and PractitionerRole code → referrer discipline
(for the monitor). The tables are data shipped inside this package
(read once with importlib.resources, here and nowhere else); the lookup is pure.

Each row names its code system, code, display, theme and the source it was taken from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from contracts.codes import ReferrerDiscipline, WorTheme

WOR_THEMES_FILE = "wor_themes.v2.json"
REFERRER_DISCIPLINES_FILE = "referrer_disciplines.v1.json"


@dataclass(frozen=True)
class ThemeMapping:
    system: str
    code: str
    display: str
    theme: WorTheme
    source: str


@dataclass(frozen=True)
class ThemeTable:
    version: str
    themes: dict[tuple[str, str], WorTheme]
    rows: tuple[ThemeMapping, ...] = ()

    def theme_for(self, system: str, code: str) -> WorTheme | None:
        """The theme for a code; ICPC subcodes (``Z15.01``) fall back to their rubric."""
        found = self.themes.get((system, code))
        if found is None and "." in code:
            found = self.themes.get((system, code.split(".", 1)[0]))
        return found


@cache
def wor_theme_table() -> ThemeTable:
    document = json.loads(files(__package__).joinpath(WOR_THEMES_FILE).read_text("utf-8"))
    rows = tuple(
        ThemeMapping(
            system=m["system"],
            code=m["code"],
            display=m["display"],
            theme=WorTheme(m["theme"]),
            source=m["source"],
        )
        for m in document["mappings"]
    )
    return ThemeTable(
        version=f"{document['table']}.v{document['version']}",
        themes={(row.system, row.code): row.theme for row in rows},
        rows=rows,
    )


@dataclass(frozen=True)
class DisciplineTable:
    version: str
    disciplines: dict[tuple[str, str], ReferrerDiscipline]

    def discipline_for(self, system: str, code: str) -> ReferrerDiscipline | None:
        return self.disciplines.get((system, code))


@cache
def referrer_discipline_table() -> DisciplineTable:
    text = files(__package__).joinpath(REFERRER_DISCIPLINES_FILE).read_text("utf-8")
    document = json.loads(text)
    return DisciplineTable(
        version=f"{document['table']}.v{document['version']}",
        disciplines={
            (m["system"], m["code"]): ReferrerDiscipline(m["discipline"])
            for m in document["mappings"]
        },
    )
