"""The code → WoR theme table (``contracts/mappings/``): versioned data, a source for each
row, every theme a ``WorTheme``, every code well-formed (ICPC: a chapter letter and two
digits; SNOMED CT: a concept id whose last digit is its Verhoeff check digit)."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any

import pytest

from contracts.codes import WorTheme
from contracts.fhir_systems import ICPC_1_NL, SNOMED_CT
from contracts.mappings import WOR_THEMES_FILE, wor_theme_table

ICPC_RUBRIC = re.compile(r"^[A-Z][0-9]{2}$")
SNOMED_ID = re.compile(r"^[1-9][0-9]{5,17}$")

# Verhoeff's dihedral group D5: multiplication and permutation tables.
_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def verhoeff_valid(number: str) -> bool:
    check = 0
    for position, digit in enumerate(reversed(number)):
        check = _D[check][_P[position % 8][int(digit)]]
    return check == 0


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        files("contracts.mappings").joinpath(WOR_THEMES_FILE).read_text("utf-8")
    )
    return document


ROWS = _document()["mappings"]


def test_verhoeff_accepts_known_ids_and_rejects_a_changed_digit() -> None:
    assert verhoeff_valid("422650009")  # Social isolation (finding)
    assert verhoeff_valid("236")  # the textbook example
    assert not verhoeff_valid("422650008")
    assert not verhoeff_valid("422560009")  # two digits swapped


def test_the_table_is_versioned_and_its_file_names_the_version() -> None:
    document = _document()
    assert document["table"] == "wor-themes" and document["version"].isdigit()
    assert f"wor_themes.v{document['version']}.json" == WOR_THEMES_FILE
    assert wor_theme_table().version == f"wor-themes.v{document['version']}"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row['system']}|{row['code']}")
def test_every_row_has_a_known_theme_a_source_and_a_well_formed_code(row: dict[str, Any]) -> None:
    assert row["theme"] in {theme.value for theme in WorTheme}
    assert row["source"].strip(), "every row names its source"
    assert row["display"].strip()
    if row["system"] == ICPC_1_NL:
        assert ICPC_RUBRIC.match(row["code"]), "ICPC: a chapter letter and two digits"
    else:
        assert row["system"] == SNOMED_CT
        assert SNOMED_ID.match(row["code"]), "SNOMED CT: 6 to 18 digits"
        assert verhoeff_valid(row["code"]), "SNOMED CT: a valid Verhoeff check digit"


def test_no_code_is_listed_twice_and_the_loader_keeps_every_row() -> None:
    keys = [(row["system"], row["code"]) for row in ROWS]
    assert len(keys) == len(set(keys))
    table = wor_theme_table()
    assert len(table.rows) == len(ROWS) == len(table.themes)
    assert all(row.source for row in table.rows)


def test_the_table_covers_the_z_chapter_the_p_complaints_and_40_snomed_findings() -> None:
    icpc = {row["code"] for row in ROWS if row["system"] == ICPC_1_NL}
    z_chapter = {f"Z{n:02d}" for n in range(1, 30)} - {"Z17", "Z26"}  # not in ICPC-1
    assert z_chapter <= icpc
    assert {"P01", "P02", "P03", "P06"} <= icpc
    snomed = [row for row in ROWS if row["system"] == SNOMED_CT]
    assert len(snomed) >= 40
    covered = {row["theme"] for row in snomed}
    assert {"loneliness", "grief-loss", "finances", "housing", "carer-strain", "meaning"} <= covered


@pytest.mark.parametrize(
    ("system", "code", "theme"),
    [
        (ICPC_1_NL, "Z06", WorTheme.MEANING),
        (ICPC_1_NL, "P01", WorTheme.LOW_MOOD),
        (ICPC_1_NL, "Z09.01", WorTheme.OTHER),
        (SNOMED_CT, "276045000", WorTheme.CARER_STRAIN),
        (SNOMED_CT, "33553000", WorTheme.GRIEF_LOSS),
        (SNOMED_CT, "32911000", WorTheme.HOUSING),
    ],
)
def test_new_rows_map_as_listed(system: str, code: str, theme: WorTheme) -> None:
    assert wor_theme_table().theme_for(system, code) is theme
