"""Synthetic referrals for demos and tests (issue 14): pure and seeded, no I/O.

``draw(n, seed)`` plans ``n`` referrals with the spreads a Welzijn op Recept programme
sees: mostly older people, mostly loneliness, mostly referred by the GP, a funnel that
narrows (some never answered, some declined with a reason, most accepted and many
completed, most of those with consented Positive Health). Each plan keeps its own ground
truth: the monitor record it must become (``expected_record``) and the report figures it
counts in (``expected_counts``), computed here from the plan, not by ``domain/monitor``.

Every patient carries a unique marker in name, address and every free text, so a scan can
show none of it reached the monitor (``Plan.markers``).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from contracts.codes import AgeBand, ReferrerDiscipline, SubmissionChannel, Urgency, WorTheme
from contracts.events.status import (
    ActivityKind,
    DeclineReason,
    PositiveHealthDimension,
    WelfareStatus,
)
from contracts.fhir_systems import REFERRER_DISCIPLINE
from contracts.monitor import POSITIVE_HEALTH_FIELDS, EndStatus, MonitorRecord
from deploy.devstack.paths import DEPLOY_DIR

W = WelfareStatus
SAMPLE_BUNDLE = DEPLOY_DIR / "samples" / "wor-referral-bundle.json"
PC4_TABLE = DEPLOY_DIR / "directory" / "pc4-municipality.sample.csv"

# The sample municipalities with a welfare organisation in the dev directory, the
# organisation, the referring practice (client id, AGB) and a share of the referrals.
MUNICIPALITIES: dict[str, tuple[str, str, str, int]] = {
    "GM0363": ("dynamo-amsterdam", "his-amsterdam-centrum", "01999001", 45),
    "GM0995": ("welzijn-lelystad", "his-lelystad-noord", "01999002", 25),
    "GM0505": ("buurtwerk-dordrecht", "his-lelystad-noord", "01999002", 15),
    "GM0637": ("xtra-zoetermeer", "his-amsterdam-centrum", "01999001", 15),
}
AGES: dict[AgeBand, tuple[int, int]] = {  # an age well inside the band, its weight
    AgeBand.FROM_18: (30, 5),
    AgeBand.FROM_40: (47, 8),
    AgeBand.FROM_55: (60, 12),
    AgeBand.FROM_65: (70, 25),
    AgeBand.FROM_75: (80, 32),
    AgeBand.FROM_85: (89, 18),
}
# A reason code per theme (contracts/mappings/wor_themes.v2.json) and how often a
# referral is about it: loneliness mostly, often with a second theme.
SNOMED, ICPC = "http://snomed.info/sct", "http://hl7.org/fhir/sid/icpc-1-nl"
THEMES: dict[WorTheme, tuple[str, str, int]] = {
    WorTheme.LONELINESS: (SNOMED, "267076002", 70),
    WorTheme.GRIEF_LOSS: (ICPC, "Z15", 15),
    WorTheme.LOW_MOOD: (ICPC, "P03", 20),
    WorTheme.MEANING: (ICPC, "Z05", 10),
    WorTheme.ACTIVITY_EXERCISE: (ICPC, "Z28", 15),
    WorTheme.FINANCES: (ICPC, "Z01", 8),
    WorTheme.CARER_STRAIN: (ICPC, "Z14", 8),
    WorTheme.HOUSING: (ICPC, "Z03", 5),
    WorTheme.OTHER: (ICPC, "Z29", 4),
}
# PractitionerRole codes (contracts/mappings/referrer_disciplines.v1.json); None: no code.
DISCIPLINES: tuple[tuple[ReferrerDiscipline, tuple[str, str] | None, int], ...] = (
    (ReferrerDiscipline.GP, (SNOMED, "62247001"), 30),
    (ReferrerDiscipline.GP, ("urn:oid:2.16.840.1.113883.2.4.6.7", "0101"), 25),
    (ReferrerDiscipline.POH_GGZ, (REFERRER_DISCIPLINE, "poh-ggz"), 20),
    (ReferrerDiscipline.POH_S, (REFERRER_DISCIPLINE, "poh-s"), 15),
    (ReferrerDiscipline.OTHER, (REFERRER_DISCIPLINE, "other"), 5),
    (ReferrerDiscipline.UNKNOWN, None, 5),
)
# What the case system does with the referral, and how often.
PATHS: dict[str, tuple[tuple[WelfareStatus, ...], int]] = {
    "unanswered": ((), 6),
    "received": ((W.RECEIVED,), 6),
    "accepted": ((W.RECEIVED, W.ACCEPTED), 8),
    "first-contact": ((W.RECEIVED, W.ACCEPTED, W.FIRST_CONTACT), 12),
    "completed": ((W.RECEIVED, W.ACCEPTED, W.FIRST_CONTACT, W.IN_PROGRESS, W.COMPLETED), 50),
    "declined": ((W.RECEIVED, W.DECLINED), 14),
    "unreachable": ((W.RECEIVED, W.UNREACHABLE), 4),
}
DECLINES: dict[DeclineReason, int] = {
    DeclineReason.NO_CAPACITY: 40,
    DeclineReason.OUTSIDE_TARGET_GROUP: 30,
    DeclineReason.PATIENT_DECLINED: 25,
    DeclineReason.OTHER: 5,
}
ACTIVITIES = (ActivityKind.SOCIAL_ACTIVITY, ActivityKind.EXERCISE, ActivityKind.BUDDY)
CONSENT_SHARE = 0.8  # of completions, with Positive Health before and after
GP_READS = 7  # of every 10 completions, the GP system reads the completed Task the same day


@dataclass(frozen=True)
class Plan:
    """One synthetic referral: who, where, about what, and what the case system does."""

    index: int
    marker: str
    municipality_code: str
    organisation_id: str
    gp_client: str
    gp_agb: str
    pc4: str
    age_band: AgeBand
    age: int
    bsn: str
    themes: tuple[WorTheme, ...]
    discipline: ReferrerDiscipline
    role_code: tuple[str, str] | None
    urgency: Urgency
    path: str
    decline_reason: DeclineReason | None
    activities: tuple[ActivityKind, ...]
    ph_before: dict[PositiveHealthDimension, int] | None
    ph_after: dict[PositiveHealthDimension, int] | None
    gp_reads: bool = False

    @property
    def statuses(self) -> tuple[WelfareStatus, ...]:
        return PATHS[self.path][0]

    @property
    def markers(self) -> tuple[str, str]:
        """What identifies the synthetic patient and must never reach the monitor."""
        return self.marker, self.bsn


def _weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _bsn(rng: random.Random) -> str:
    """A BSN that passes the eleven test, in the 999 range kept for testing."""
    while True:
        digits = [9, 9, 9, *(rng.randrange(10) for _ in range(5))]
        check = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            return "".join(map(str, [*digits, check]))


def _pc4s() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in PC4_TABLE.read_text().splitlines():
        if line and not line.startswith("#") and not line.startswith("pc4"):
            pc4, municipality = line.split(",")
            found.setdefault(municipality, []).append(pc4)
    return found


def draw(n: int, seed: int = 14) -> list[Plan]:
    """``n`` referrals, the same ones for the same seed."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible draw, not a secret
    pc4s = _pc4s()
    plans = []
    for index in range(n):
        municipality = _weighted(rng, {m: v[3] for m, v in MUNICIPALITIES.items()})
        organisation, gp_client, agb, _ = MUNICIPALITIES[municipality]
        band = _weighted(rng, {b: w for b, (_, w) in AGES.items()})
        themes = {t for t, (_, _, weight) in THEMES.items() if rng.randrange(100) < weight}
        if not themes:
            themes = {WorTheme.LONELINESS}
        discipline, role_code, _ = rng.choices(DISCIPLINES, [d[2] for d in DISCIPLINES])[0]
        path = _weighted(rng, {p: w for p, (_, w) in PATHS.items()})
        completed = path == "completed"
        consented = completed and rng.random() < CONSENT_SHARE
        before = {d: rng.randint(2, 6) for d in PositiveHealthDimension} if consented else None
        after = {d: v + rng.randint(-1, 3) for d, v in before.items()} if before else None
        plans.append(
            Plan(
                index=index,
                marker=f"Synth{seed}Mark{index:05d}",
                municipality_code=municipality,
                organisation_id=organisation,
                gp_client=gp_client,
                gp_agb=agb,
                pc4=rng.choice(pc4s[municipality]),
                age_band=band,
                age=AGES[band][0] + rng.randint(-2, 2),
                bsn=_bsn(rng),
                themes=tuple(sorted(themes)),
                discipline=discipline,
                role_code=role_code,
                urgency=Urgency.URGENT if rng.random() < 0.1 else Urgency.ROUTINE,
                path=path,
                decline_reason=_weighted(rng, DECLINES) if path == "declined" else None,
                activities=tuple(sorted(rng.sample(ACTIVITIES, rng.randint(1, 2))))
                if completed
                else (),
                ph_before=before,
                ph_after=after,
                gp_reads=completed and index % 10 < GP_READS,
            )
        )
    return plans


def bundle(plan: Plan, now: datetime, identifier: str) -> dict[str, Any]:
    """The GP system's transaction Bundle for ``plan`` (from the sample: without its
    Condition and medication, so the themes are the reason codes' alone)."""
    sample = json.loads(SAMPLE_BUNDLE.read_text())
    kept = ("ServiceRequest", "Patient", "Consent", "PractitionerRole", "Practitioner")
    entries = [
        e for e in sample["entry"] if e["resource"]["resourceType"] in (*kept, "Organization")
    ]
    sample["entry"] = entries
    by_type = {e["resource"]["resourceType"]: e for e in entries}
    request = by_type["ServiceRequest"]
    resource = request["resource"]
    system = resource["identifier"][0]["system"]
    resource["identifier"][0]["value"] = identifier
    request["request"]["ifNoneExist"] = f"identifier={system}|{identifier}"
    resource.pop("reasonReference", None)
    resource["reasonCode"] = [
        {"coding": [{"system": THEMES[t][0], "code": THEMES[t][1]}]} for t in plan.themes
    ]
    resource["priority"] = plan.urgency.value
    resource["authoredOn"] = now.isoformat()
    resource["note"] = [{"text": f"{plan.marker} komt weinig buiten."}]
    resource["patientInstruction"] = f"Vraag naar {plan.marker}."
    born = (now - timedelta(days=365 * plan.age + plan.age // 4 + 90)).date()
    by_type["Patient"]["resource"] |= {
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": plan.bsn}],
        "name": [{"use": "official", "family": plan.marker, "given": [f"{plan.marker}Voornaam"]}],
        "telecom": [{"system": "phone", "value": f"06-{10000000 + plan.index}", "use": "mobile"}],
        "birthDate": born.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [f"{plan.marker}straat {plan.index % 200 + 1}"],
                "postalCode": f"{plan.pc4} AB",
                "country": "NL",
            }
        ],
    }
    role = by_type["PractitionerRole"]["resource"]
    if plan.role_code is not None:
        role["code"] = [{"coding": [{"system": plan.role_code[0], "code": plan.role_code[1]}]}]
    by_type["Organization"]["resource"]["identifier"][0]["value"] = plan.gp_agb
    return sample


def status_fields(plan: Plan, status: WelfareStatus, now: datetime) -> dict[str, Any]:
    """What the case system says with ``status`` besides the status itself."""
    if status is W.DECLINED:
        return {
            "decline_reason": plan.decline_reason,
            "decline_text": f"{plan.marker}: past de groep niet",
        }
    if status is W.COMPLETED:
        outcome: dict[str, Any] = {
            "summary": f"{plan.marker} gaat nu wekelijks naar de groep.",
            "activities": [
                {"kind": kind, "description": f"{kind.value} met {plan.marker}"}
                for kind in plan.activities
            ],
        }
        if plan.ph_before is not None and plan.ph_after is not None:
            outcome["positive_health_consent"] = True
            outcome["positive_health_before"] = {"measured_on": now, "scores": plan.ph_before}
            outcome["positive_health_after"] = {"measured_on": now, "scores": plan.ph_after}
        return {"outcome": outcome}
    return {}


_ENDS = {
    W.COMPLETED: EndStatus.COMPLETED,
    W.DECLINED: EndStatus.DECLINED,
    W.UNREACHABLE: EndStatus.UNREACHABLE,
}


def expected_record(plan: Plan, pseudonym: str, day: date) -> MonitorRecord:
    """The row the monitor must make of ``plan`` when everything happens on ``day``."""
    statuses = plan.statuses
    ending = next((_ENDS[s] for s in statuses if s in _ENDS), None)
    contacted = W.FIRST_CONTACT in statuses
    consented = plan.ph_before is not None and plan.ph_after is not None
    return MonitorRecord(
        pseudonym=pseudonym,
        referral_month=day.strftime("%Y-%m"),
        municipality_code=plan.municipality_code,
        organisation_id=plan.organisation_id,
        referrer_discipline=plan.discipline,
        channel=SubmissionChannel.FHIR_REST,
        age_band=plan.age_band,
        themes=list(plan.themes),
        urgency=plan.urgency,
        received_on=day if statuses else None,
        accepted_on=day if W.ACCEPTED in statuses else None,
        first_contact_on=day if contacted else None,
        ended_on=day if ending else None,
        days_to_first_contact=0 if contacted else None,
        end_status=ending,
        decline_reason=plan.decline_reason,
        activity_kinds=list(plan.activities),
        feedback_to_gp_on=day if plan.gp_reads else None,
        feedback_to_gp_channel="pull" if plan.gp_reads else None,
        days_to_feedback_to_gp=0 if plan.gp_reads else None,
        positive_health_consented=consented,
        **(
            {
                POSITIVE_HEALTH_FIELDS[d]: plan.ph_after[d] - plan.ph_before[d]  # type: ignore[index]
                for d in PositiveHealthDimension
            }
            if consented
            else {}
        ),
    )


def _figures(plan: Plan) -> Iterable[str]:
    """The report cells (``figure.category``) ``plan`` counts in."""
    statuses = plan.statuses
    yield "referrals.all"
    yield f"referrals.{plan.discipline.value}"
    yield from (f"referrals_by_theme.{t.value}" for t in plan.themes)
    if statuses:
        yield "funnel.received"
    if W.ACCEPTED in statuses:
        yield "funnel.accepted"
    if W.FIRST_CONTACT in statuses:
        yield "funnel.first_contact"
    if W.COMPLETED in statuses:
        yield "funnel.completed"
    if plan.decline_reason is not None:
        yield "declines.all"
        yield f"declines.{plan.decline_reason.value}"
    if plan.ph_before is not None:
        yield "positive_health.consented"
    if plan.gp_reads:
        yield from ("gp_receipts.all", "gp_receipts.pull", "feedback_to_gp.within_30_days")


def expected_counts(plans: Sequence[Plan], scope: tuple[str, str]) -> Counter[str]:
    """The true count of every non-zero cell for a scope (national, a municipality, an
    organisation) over all the plans (they are all in one month)."""
    kind, code = scope
    counts: Counter[str] = Counter()
    for plan in plans:
        if (
            kind == "national"
            or (kind == "municipality" and code == plan.municipality_code)
            or (kind == "organisation" and code == plan.organisation_id)
        ):
            counts.update(_figures(plan))
    return counts
