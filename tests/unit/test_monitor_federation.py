"""Federation (issue 14): two installations export signed packages under their own keys,
a merge verifies them, combines their rows and applies disclosure control after the
merge. The rules (``domain/monitor/federation.py``) and the packages
(``adapters/monitor/packages.py``, ``brug monitor merge``) without infrastructure."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from adapters.monitor.export import csv_text
from adapters.monitor.packages import (
    new_signing_key,
    read_package,
    records_from_csv,
    signing_key,
    trust_entries,
    write_signed_package,
)
from contracts.codes import AgeBand, ReferrerDiscipline, WorTheme
from contracts.events.status import DeclineReason
from contracts.monitor import DATASET_VERSION, EndStatus, MonitorRecord
from deploy.monitor_cli import monitor_cli
from domain.monitor.disclosure import Threshold
from domain.monitor.federation import (
    PACKAGE_FORMAT,
    Manifest,
    Package,
    PackageRefused,
    check_mergeable,
)
from domain.monitor.periods import Period
from domain.monitor.reports import NATIONAL, protect_year

Q4 = Period.parse("2026-Q4")
K5 = Threshold(5)


def _record(
    n: int, municipality: str, organisation: str, *, declined: bool = False, waiting: bool = False
) -> MonitorRecord:
    return MonitorRecord(
        pseudonym=f"{n:064x}",
        referral_month="2026-10",
        municipality_code=municipality,
        organisation_id=organisation,
        referrer_discipline=ReferrerDiscipline.GP,
        age_band=AgeBand.FROM_75,
        themes=[WorTheme.LONELINESS],
        received_on=date(2026, 10, 5),
        accepted_on=None if declined or waiting else date(2026, 10, 6),
        ended_on=date(2026, 10, 7) if declined else None,
        end_status=EndStatus.DECLINED if declined else None,
        decline_reason=DeclineReason.NO_CAPACITY if declined else None,
    )


def _region(base: int, municipality: str, organisation: str) -> list[MonitorRecord]:
    """Twenty referrals in October: three declined for lack of capacity, two received and
    not yet decided (else received minus accepted would give the declines away)."""
    return [
        _record(base + i, municipality, organisation, declined=i < 3, waiting=3 <= i < 5)
        for i in range(20)
    ]


UTRECHT = _region(1000, "GM0344", "welzijn-utrecht")
AMSTERDAM = _region(2000, "GM0363", "dynamo-amsterdam")


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    return {name: new_signing_key() for name in ("brug-utrecht", "brug-amsterdam")}


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, tuple[str, str]]) -> Path:
    """Each installation's signed export, under its own key."""
    root = tmp_path_factory.mktemp("exports")
    for name, records in (("brug-utrecht", UTRECHT), ("brug-amsterdam", AMSTERDAM)):
        write_signed_package(
            records,
            root / name,
            installation=name,
            period="2026-Q4",
            key=signing_key(keys[name][0]),
        )
    return root


@pytest.fixture
def exported(signed: Path, tmp_path: Path) -> dict[str, Path]:
    """A copy of the exports to tamper with."""
    return {
        name: shutil.copytree(signed / name, tmp_path / name)
        for name in ("brug-utrecht", "brug-amsterdam")
    }


def _trust(keys: dict[str, tuple[str, str]]) -> list[str]:
    return [f"{name}={public}" for name, (_, public) in keys.items()]


def _merge(exported: dict[str, Path], keys: dict[str, tuple[str, str]], *more: str) -> Result:
    args = ["merge", *map(str, exported.values()), "--period", "2026-Q4", *more]
    for entry in _trust(keys):
        args += ["--trust", entry]
    return CliRunner().invoke(monitor_cli, args)


@pytest.fixture(scope="module")
def merged(signed: Path, keys: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """``brug monitor merge --format json`` of the two exports."""
    folders = {name: signed / name for name in ("brug-utrecht", "brug-amsterdam")}
    result = _merge(folders, keys, "--format", "json")
    assert result.exit_code == 0, result.output
    assert UTRECHT[0].pseudonym not in result.output and "pseudonym" not in result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


# -- the two installations merged -----------------------------------------------------


def test_the_merged_national_figures_are_those_of_the_union_of_the_rows(
    merged: dict[str, Any],
) -> None:
    union = protect_year(UTRECHT + AMSTERDAM, 2026, K5)
    assert merged["national"] == union.report(NATIONAL, Q4)
    assert merged["national"]["counts"]["referrals"]["all"] == 40
    assert [m["scope"]["code"] for m in merged["municipalities"]] == ["GM0344", "GM0363"]
    assert merged["municipalities"][0] == union.report(("municipality", "GM0344"), Q4)
    assert merged["installations"] == [
        {"installation": "brug-utrecht", "referrals": 20},
        {"installation": "brug-amsterdam", "referrals": 20},
    ]


def test_a_figure_too_small_in_each_region_is_shown_nationally(merged: dict[str, Any]) -> None:
    """Three declines for lack of capacity in each region: each region's own report hides
    them (3 < 5), and two hidden cells add up to nothing. Suppressed after the merge, the
    nation's six are shown."""
    for region in (UTRECHT, AMSTERDAM):
        own = protect_year(region, 2026, K5).report(NATIONAL, Q4)
        assert own["counts"]["declines"]["no-capacity"] is None
        assert own["counts"]["referrals"]["all"] == 20
    assert merged["national"]["counts"]["declines"]["no-capacity"] == 6
    assert merged["national"]["counts"]["declines"]["all"] == 6
    for municipality in merged["municipalities"]:  # each region's three stay hidden
        assert municipality["counts"]["declines"]["no-capacity"] is None


def test_a_trust_file_and_the_text_report(
    exported: dict[str, Path], keys: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    trust_file = tmp_path / "trust.txt"
    trust_file.write_text("# the regions\n" + "\n".join(_trust(keys)) + "\n")
    args = ["merge", *map(str, exported.values()), "--period", "2026-10"]
    result = CliRunner().invoke(monitor_cli, [*args, "--trust-file", str(trust_file)])
    assert result.exit_code == 0, result.output
    assert (
        "national report 2026-10, disclosure k5, from brug-utrecht (20), brug-amsterdam (20)"
        in result.output
    )
    assert "referrals.all: 40" in result.output
    assert "declines.no-capacity: 6" in result.output
    line = _refusal(CliRunner().invoke(monitor_cli, [*args, "--trust", "brug-utrecht=abc"]))
    assert "not base64" in line or "not 32 bytes" in line


# -- what the merge refuses -----------------------------------------------------------


def _refusal(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("brug monitor merge: "), result.output
    return lines[0]


def test_a_csv_altered_by_one_byte_is_refused(
    exported: dict[str, Path], keys: dict[str, tuple[str, str]]
) -> None:
    csv_file = exported["brug-amsterdam"] / "referrals.csv"
    data = bytearray(csv_file.read_bytes())
    at = data.index(b"GM0363")
    data[at + 5] = ord("4")  # GM0363 -> GM0364 in one row
    csv_file.write_bytes(bytes(data))
    line = _refusal(_merge(exported, keys))
    assert "brug-amsterdam" in line and "referrals.csv was altered" in line


def test_a_package_signed_by_an_untrusted_key_is_refused(
    exported: dict[str, Path], keys: dict[str, tuple[str, str]]
) -> None:
    impostor, _ = new_signing_key()
    write_signed_package(
        AMSTERDAM,
        exported["brug-amsterdam"],
        installation="brug-amsterdam",
        period="2026-Q4",
        key=signing_key(impostor),
    )
    line = _refusal(_merge(exported, keys))
    assert "brug-amsterdam" in line and "signature does not verify" in line


def test_a_package_of_an_installation_nobody_trusts_is_refused(
    exported: dict[str, Path], keys: dict[str, tuple[str, str]]
) -> None:
    args = ["merge", *map(str, exported.values()), "--period", "2026-Q4"]
    args += ["--trust", _trust(keys)[0]]
    line = _refusal(CliRunner().invoke(monitor_cli, args))
    assert "brug-amsterdam" in line and "not trusted" in line


def test_an_edited_manifest_is_refused(
    exported: dict[str, Path], keys: dict[str, tuple[str, str]]
) -> None:
    manifest = exported["brug-utrecht"] / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b"2026-Q4", b"2026-Q3"))
    assert "signature does not verify" in _refusal(_merge(exported, keys))


def test_the_same_package_twice_is_refused(
    exported: dict[str, Path], keys: dict[str, tuple[str, str]]
) -> None:
    twice = {**exported, "again": exported["brug-utrecht"]}
    assert "brug-utrecht is in two packages" in _refusal(_merge(twice, keys))


# -- the pure rules -------------------------------------------------------------------


def _package(installation: str, records: list[MonitorRecord], **manifest: object) -> Package:
    fields: dict[str, object] = {
        "installation": installation,
        "period": "2026-Q4",
        "dataset_version": DATASET_VERSION,
        "files": {"referrals.csv": "0" * 64, "datapackage.json": "1" * 64},
    } | manifest
    return Package(Manifest(**fields), tuple(records))  # type: ignore[arg-type]


def test_a_manifest_round_trips_and_a_bad_one_is_refused() -> None:
    manifest = _package("brug-utrecht", []).manifest
    assert Manifest.parse(manifest.to_bytes()) == manifest
    document = json.loads(manifest.to_bytes())
    assert document["format"] == PACKAGE_FORMAT
    bad = [
        {"format": "brug-monitor-package/9"},
        {"installation": "Brug Utrecht"},
        {"period": "2026-Q5"},
        {"dataset_version": "one"},
        {"files": {}},
        {"files": {"../etc/passwd": "0" * 64}},
        {"files": {"manifest.json": "0" * 64}},
        {"files": {"referrals.csv": "not-a-digest"}},
    ]
    for change in bad:
        with pytest.raises(PackageRefused):
            Manifest.parse(json.dumps(document | change).encode())
    with pytest.raises(PackageRefused):
        Manifest.parse(b"[not json")


def test_packages_that_do_not_fit_together_are_refused() -> None:
    utrecht = _package("brug-utrecht", UTRECHT)
    cases = {
        "no packages": [],
        "in two packages": [utrecht, utrecht],
        "dataset version 0.9.0": [utrecht, _package("brug-a", AMSTERDAM, dataset_version="0.9.0")],
        "different periods": [utrecht, _package("brug-a", AMSTERDAM, period="2026-Q3")],
        "in both brug-utrecht and brug-a": [utrecht, _package("brug-a", UTRECHT[:1])],
    }
    for expected, packages in cases.items():
        with pytest.raises(PackageRefused, match=expected):
            check_mergeable(packages, DATASET_VERSION, Q4)
    with pytest.raises(PackageRefused, match="2026-10, outside the package's period 2026-Q3"):
        check_mergeable(
            [_package("brug-a", UTRECHT, period="2026-Q3")],
            DATASET_VERSION,
            Period.parse("2026-Q3"),
        )
    with pytest.raises(PackageRefused, match="cover 2026-Q4, not 2026"):
        check_mergeable([utrecht], DATASET_VERSION, Period.parse("2026"))
    check_mergeable([utrecht, _package("brug-a", AMSTERDAM)], DATASET_VERSION, Q4)


def test_the_csv_reads_back_as_the_records_it_was_written_from() -> None:
    records = UTRECHT + AMSTERDAM
    read = records_from_csv(csv_text(records).encode())
    assert sorted(read, key=lambda r: r.pseudonym) == sorted(records, key=lambda r: r.pseudonym)


def test_a_verified_package_holds_its_rows(tmp_path: Path) -> None:
    private, public = new_signing_key()
    write_signed_package(
        UTRECHT, tmp_path, installation="brug-utrecht", period=None, key=signing_key(private)
    )
    package = read_package(tmp_path, trust_entries([f"brug-utrecht={public}"]))
    assert package.manifest.period is None
    assert list(package.records) == sorted(UTRECHT, key=lambda r: r.pseudonym)
    assert len(base64.b64decode(private)) == 32


def test_export_signs_when_the_installation_has_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keygen = CliRunner().invoke(monitor_cli, ["keygen"])
    assert keygen.exit_code == 0, keygen.output
    private_line, public_line = keygen.output.strip().splitlines()
    private = private_line.removeprefix("BRUG_MONITOR_SIGNING_KEY=")
    public = public_line.removeprefix("public key: ")
    monkeypatch.setattr("deploy.monitor_cli._records", lambda url, period=None: UTRECHT)
    monkeypatch.setenv("BRUG_MONITOR_SIGNING_KEY", private)
    monkeypatch.setenv("BRUG_MONITOR_INSTALLATION", "brug-utrecht")
    args = ["export", "--period", "2026-Q4", "--out", str(tmp_path)]
    result = CliRunner().invoke(monitor_cli, args)
    assert result.exit_code == 0, result.output
    assert f"signed by brug-utrecht, public key {public}" in result.output
    package = read_package(tmp_path, trust_entries([f"brug-utrecht={public}"]))
    assert package.manifest.period == "2026-Q4" and len(package.records) == 20
    datapackage = json.loads((tmp_path / "datapackage.json").read_text())
    assert (datapackage["installation"], datapackage["version"]) == ("brug-utrecht", "1.0.0")

    monkeypatch.setenv("BRUG_MONITOR_SIGNING_KEY", "bm90LWEta2V5")
    refused = CliRunner().invoke(monitor_cli, args)
    assert refused.exit_code == 1 and "not 32 bytes" in refused.output
