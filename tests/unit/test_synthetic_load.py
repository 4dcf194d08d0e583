"""The synthetic load's generator (deploy/synthetic_load.py): seeded, with the spreads of a
Welzijn op Recept programme, a unique marker per patient in every identifying field, and a
ground truth that agrees with itself."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from contracts.codes import AgeBand, ReferrerDiscipline, WorTheme
from deploy.synthetic_load import MUNICIPALITIES, PATHS, bundle, draw, expected_counts

OLDER = {AgeBand.FROM_65, AgeBand.FROM_75, AgeBand.FROM_85}


def test_the_same_seed_draws_the_same_referrals() -> None:
    assert draw(50, seed=3) == draw(50, seed=3)
    assert draw(50, seed=3) != draw(50, seed=4)


def test_the_spreads_are_those_of_a_welzijn_op_recept_programme() -> None:
    plans = draw(500, seed=14)
    n = len(plans)
    assert sum(p.age_band in OLDER for p in plans) > 0.6 * n
    assert sum(WorTheme.LONELINESS in p.themes for p in plans) > 0.6 * n
    disciplines = Counter(p.discipline for p in plans)
    assert disciplines.most_common(1)[0][0] is ReferrerDiscipline.GP
    assert {ReferrerDiscipline.POH_GGZ, ReferrerDiscipline.POH_S} <= set(disciplines)
    assert {p.municipality_code for p in plans} == set(MUNICIPALITIES)
    assert {p.path for p in plans} == set(PATHS)
    assert all(p.decline_reason is not None for p in plans if p.path == "declined")
    completed = [p for p in plans if p.path == "completed"]
    consented = [p for p in completed if p.ph_before is not None]
    assert 0.5 * len(completed) < len(consented) < len(completed)


def test_every_patient_has_its_own_marker_in_what_identifies_it() -> None:
    plans = draw(200, seed=14)
    assert len({p.marker for p in plans}) == len({p.bsn for p in plans}) == 200
    for plan in plans[:20]:
        digits = [int(d) for d in plan.bsn]
        assert (
            sum(d * w for d, w in zip(digits, [9, 8, 7, 6, 5, 4, 3, 2, -1], strict=True)) % 11 == 0
        )
        sent = bundle(plan, datetime.now(UTC), "WOR-1")
        types = [e["resource"]["resourceType"] for e in sent["entry"]]
        assert "Condition" not in types and "MedicationStatement" not in types
        patient = next(
            e["resource"] for e in sent["entry"] if e["resource"]["resourceType"] == "Patient"
        )
        assert plan.marker in json.dumps(patient["name"]) and plan.marker in json.dumps(
            patient["address"]
        )
        assert patient["identifier"][0]["value"] == plan.bsn
        assert patient["address"][0]["postalCode"].startswith(plan.pc4)


def test_the_ground_truth_adds_up() -> None:
    plans = draw(300, seed=14)
    national = expected_counts(plans, ("national", "NL"))
    assert national["referrals.all"] == 300
    by_municipality = [expected_counts(plans, ("municipality", m)) for m in MUNICIPALITIES]
    assert sum(by_municipality, Counter()) == national
    assert national["funnel.completed"] == sum(p.path == "completed" for p in plans)
    assert national["declines.all"] == sum(p.path == "declined" for p in plans)
    assert national["funnel.received"] == sum(p.path != "unanswered" for p in plans)
