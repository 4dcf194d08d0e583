"""Reading Brug's PC4 table, and importing it from CBS's postcode table.

CBS publishes, per year, which neighbourhood, district and municipality every address
(PC6 + house number) lies in, as ``;``-separated CSV with a header such as
``PC6;Huisnummer;Buurt2024;Wijk2024;Gemeente2024`` (municipality as a number, e.g. 363).
The importer reduces it to PC4 → ``GMxxxx``; a PC4 whose addresses lie in several
municipalities goes to the one with the most addresses, and the import reports those.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from contracts.postcodes import PostcodeTable, pc4_of


class PostcodeTableError(RuntimeError):
    pass


def load_postcode_table(path: Path) -> PostcodeTable:
    version = path.name
    mapping: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError as error:
        raise PostcodeTableError(f"postcode table not found: {path}") from error
    for number, line in enumerate(lines, start=1):
        if line.startswith("# version:"):
            version = line.partition(":")[2].strip()
        if not line or line.startswith("#") or line.startswith("pc4,"):
            continue
        pc4, _, municipality = line.partition(",")
        if pc4_of(pc4) != pc4 or not (municipality.startswith("GM") and len(municipality) == 6):
            raise PostcodeTableError(f"{path}:{number}: not 'pc4,GMxxxx': {line!r}")
        mapping[pc4] = municipality
    if not mapping:
        raise PostcodeTableError(f"postcode table {path} is empty")
    return PostcodeTable(version=version, municipality_by_pc4=mapping)


@dataclass(frozen=True)
class CbsImport:
    municipality_by_pc4: dict[str, str]
    split_pc4: dict[str, dict[str, int]]  # PC4s spread over several municipalities

    def to_csv(self, version: str) -> str:
        rows = [f"{pc4},{code}" for pc4, code in sorted(self.municipality_by_pc4.items())]
        header = [
            f"# Imported from a CBS postcode table. version: {version}",
            f"# version: {version}",
            "pc4,municipality_code",
        ]
        return "\n".join([*header, *rows]) + "\n"


def import_cbs_rows(lines: Iterable[str]) -> CbsImport:
    reader = csv.DictReader(lines, delimiter=";")
    fields = reader.fieldnames or []
    postcode_field = next((f for f in fields if f.strip().upper() in {"PC6", "POSTCODE"}), None)
    municipality_field = next((f for f in fields if f.strip().lower().startswith("gemeente")), None)
    if postcode_field is None or municipality_field is None:
        raise PostcodeTableError(f"not a CBS postcode table: header {fields}")
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in reader:
        pc4 = pc4_of(row[postcode_field].strip()[:4])
        number = row[municipality_field].strip().strip('"')
        if pc4 and number.isdigit():
            counts[pc4][f"GM{int(number):04d}"] += 1
    return CbsImport(
        municipality_by_pc4={pc4: c.most_common(1)[0][0] for pc4, c in counts.items()},
        split_pc4={pc4: dict(c) for pc4, c in counts.items() if len(c) > 1},
    )
