"""PC4 → municipality: the table Brug reads and the importer for CBS's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.postcodes import PostcodeTableError, import_cbs_rows, load_postcode_table
from contracts.postcodes import pc4_of

CBS_SAMPLE = """PC6;Huisnummer;Buurt2024;Wijk2024;Gemeente2024
1017GC;12;03630001;036300;363
1017GC;14;03630001;036300;363
8211AB;2;09950101;099501;995
3311AA;1;05050101;050501;505
3311AB;3;05050101;050501;505
3311AC;5;15660101;156601;1566
"""


@pytest.mark.parametrize(
    ("postcode", "pc4"),
    [
        ("1017 GC", "1017"),
        ("1017gc", "1017"),
        (" 8211 ", "8211"),
        ("0123 AB", None),
        ("ABCD", None),
    ],
)
def test_pc4_of(postcode: str, pc4: str | None) -> None:
    assert pc4_of(postcode) == pc4


def test_cbs_rows_reduce_to_pc4_with_the_majority_municipality() -> None:
    imported = import_cbs_rows(CBS_SAMPLE.splitlines())
    assert imported.municipality_by_pc4 == {"1017": "GM0363", "8211": "GM0995", "3311": "GM0505"}
    assert imported.split_pc4 == {"3311": {"GM0505": 2, "GM1566": 1}}


def test_an_import_round_trips_through_the_table_brug_reads(tmp_path: Path) -> None:
    path = tmp_path / "pc4.csv"
    path.write_text(import_cbs_rows(CBS_SAMPLE.splitlines()).to_csv("cbs-2024"))
    table = load_postcode_table(path)
    assert table.version == "cbs-2024"
    assert table.municipality_for("1017 GC") == "GM0363"
    assert table.municipality_for("9999 ZZ") is None


def test_a_file_that_is_not_a_cbs_table_is_refused() -> None:
    with pytest.raises(PostcodeTableError, match="not a CBS postcode table"):
        import_cbs_rows(["naam;adres", "x;y"])


def test_a_broken_line_in_the_table_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pc4.csv"
    path.write_text("pc4,municipality_code\n1017,GM0363\n1018,Amsterdam\n")
    with pytest.raises(PostcodeTableError, match=r"pc4\.csv:3"):
        load_postcode_table(path)
