"""The ACL plan for the sample directory and the dev client registry: each party reaches
only what is its own, and every topic Brug creates has its writer and its readers."""

from __future__ import annotations

from adapters.clients import ClientKind, load_clients
from adapters.directory import load_directory
from adapters.kafka_acls import Grant, acl_plan, service_principal
from contracts import topics
from deploy.devstack.paths import REPO_ROOT
from deploy.devstack.stack import DEFAULT_CLIENTS, DEFAULT_DIRECTORY

REGISTRY = load_clients(DEFAULT_CLIENTS)
PLAN = acl_plan(REGISTRY)


def _reaches(grant: Grant, topic: str) -> bool:
    if grant.resource != "TOPIC":
        return False
    return topic.startswith(grant.name) if grant.pattern == "PREFIXED" else topic == grant.name


def _who(operation: str, topic: str) -> set[str]:
    return {g.principal for g in PLAN if g.operation == operation and _reaches(g, topic)}


def _all_topics() -> list[str]:
    organisations = [o.id for o in load_directory(DEFAULT_DIRECTORY).organisations]
    gp_systems = [c.client_id for c in REGISTRY.clients if c.kind is ClientKind.GP]
    return [name for name, _ in topics.all_topics(organisations, gp_systems)]


def test_a_welfare_organisation_reaches_only_its_own_topics() -> None:
    for client in (c for c in REGISTRY.clients if c.kind is ClientKind.WELFARE):
        own = {
            topics.social_referrals(client.organisation),
            topics.social_problems(client.organisation),
            topics.social_status(client.organisation),
        }
        reached = {
            t
            for t in _all_topics()
            for g in PLAN
            if g.principal == client.client_id and _reaches(g, t)
        }
        assert reached == own, client.client_id
        assert _who("WRITE", topics.social_status(client.organisation)) == {
            client.client_id,
            service_principal("relay"),  # the social edge's POSTs, through the outbox
            service_principal("console"),  # an operator's replay of a dead letter
        }


def test_a_municipality_has_no_kafka_access_at_all() -> None:
    municipalities = [c for c in REGISTRY.clients if c.kind is ClientKind.MUNICIPALITY]
    assert municipalities, "the dev registry has municipality clients"
    for client in municipalities:
        assert not [g for g in PLAN if g.principal == client.client_id], client.client_id


def test_a_gp_system_reaches_only_its_own_topics() -> None:
    for client in (c for c in REGISTRY.clients if c.kind is ClientKind.GP):
        name = client.client_id
        reached = {t for t in _all_topics() for g in PLAN if g.principal == name and _reaches(g, t)}
        assert reached == {
            topics.gp_referrals(name),
            topics.gp_outcomes(name),
            topics.gp_changes(name),
        }


def test_only_brug_writes_what_organisations_act_on() -> None:
    brug = {service_principal(s) for s in ("relay", "console")}
    for topic in (topics.REFERRALS_SUBMITTED, topics.social_referrals("dynamo-amsterdam")):
        assert _who("WRITE", topic) == brug, topic


def test_every_topic_has_a_writer_and_a_reader() -> None:
    for topic in _all_topics():
        assert _who("WRITE", topic), f"nobody may write {topic}"
        assert _who("READ", topic), f"nobody may read {topic}"


def test_the_monitor_reads_brugs_own_events_and_writes_nothing() -> None:
    monitor = service_principal("monitor")
    for topic in (
        topics.REFERRALS_SUBMITTED,
        topics.OVERDUE,
        topics.social_referrals("dynamo-amsterdam"),
        topics.social_status("dynamo-amsterdam"),
    ):
        assert monitor in _who("READ", topic), topic
    assert not [g for g in PLAN if g.principal == monitor and g.operation == "WRITE"]
    assert monitor not in _who("READ", topics.gp_referrals("his-amsterdam-centrum"))


def test_groups_are_the_principals_own() -> None:
    for grant in (g for g in PLAN if g.resource == "GROUP" and g.operation == "READ"):
        is_service = grant.principal.startswith("brug-")
        assert grant.name.startswith("brug-" if is_service else grant.principal), grant


def test_the_published_plan_for_the_dev_registry_is_current() -> None:
    """deploy/kafka/acl-plan.sample.txt is what `brug kafka acls` prints for it."""
    published = (REPO_ROOT / "deploy" / "kafka" / "acl-plan.sample.txt").read_text().splitlines()
    assert published == [*(f"  {grant}" for grant in PLAN), f"{len(PLAN)} ACLs in the plan"], (
        "run `brug kafka acls > deploy/kafka/acl-plan.sample.txt`"
    )
