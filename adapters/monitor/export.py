"""``brug monitor export``: the dataset's pseudonymous rows as a versioned package per the
contract (``contracts/monitor``): ``referrals.csv`` with the Frictionless Data Package
``datapackage.json`` that describes it, or ``referrals.json`` (an array of records, the
contract's ``dataset.schema.json`` per item).

This is the row-level dataset, for another installation or a researcher under agreement:
figures for the public go through ``domain/monitor/reports.py`` and its disclosure control.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from contracts.monitor import DATASET_VERSION, FIELDS, MonitorRecord
from contracts.monitor.rendering import (
    CSV_FILE,
    DATAPACKAGE_FILE,
    SCHEMA_ID,
    csv_value,
    datapackage,
)

JSON_FILE = "referrals.json"
Format = Literal["csv", "json"]


def csv_text(records: Sequence[MonitorRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for record in sorted(records, key=lambda r: (r.referral_month, r.pseudonym)):
        writer.writerow([csv_value(record, name) for name in FIELDS])
    return out.getvalue()


def json_text(records: Sequence[MonitorRecord], period: str | None) -> str:
    document = {
        "$schema": SCHEMA_ID,
        "version": DATASET_VERSION,
        "period": period,
        "records": [
            record.model_dump(mode="json")
            for record in sorted(records, key=lambda r: (r.referral_month, r.pseudonym))
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def write_package(
    records: Sequence[MonitorRecord], directory: Path, *, fmt: Format, period: str | None
) -> list[Path]:
    """Write the package into ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        target = directory / JSON_FILE
        target.write_text(json_text(records, period), encoding="utf-8")
        return [target]
    package = datapackage() | ({"period": period} if period else {})
    written = [directory / CSV_FILE, directory / DATAPACKAGE_FILE]
    written[0].write_text(csv_text(records), encoding="utf-8")
    written[1].write_text(json.dumps(package, indent=2) + "\n", encoding="utf-8")
    return written
