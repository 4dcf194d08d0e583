"""Least privilege on Kafka: which principal may do what, derived from the welfare
directory and the client registry, and applied to the cluster idempotently.

Every Brug service, every GP system and every welfare case system is its own principal
(SASL/SCRAM user). A service gets the operations its handlers need on literal topic names
or on prefixes that end in the dot, and its own consumer groups. A GP system writes only
its own inbound topic and reads its own answers; a welfare organisation reads only its own
referral and problem topics and writes only its own status topic. The broker denies all
else (``allow.everyone.if.no.acl.found=false``); ``brug-admin`` is the one super user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

from adapters.clients import ClientKind, ClientRegistry
from adapters.kafka_security import KafkaCredentials
from contracts import topics

ADMIN_PRINCIPAL = "brug-admin"
# The services with a Kafka broker, as ``services/<name>`` (each its own principal).
SERVICES = (
    "fhir-gateway",
    "router",
    "social-gateway",
    "webhook-delivery",
    "feedback",
    "gp-notify",
    "console",
    "relay",
    "monitor",
)

Operation = Literal["READ", "WRITE", "DESCRIBE", "IDEMPOTENT_WRITE"]
Resource = Literal["TOPIC", "GROUP", "CLUSTER"]
Pattern = Literal["LITERAL", "PREFIXED"]


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: ``principal`` may ``operation`` on the named resource(s)."""

    principal: str
    operation: Operation
    resource: Resource
    name: str
    pattern: Pattern = "LITERAL"

    def __str__(self) -> str:
        wildcard = "*" if self.pattern == "PREFIXED" else ""
        return f"User:{self.principal} {self.operation} {self.resource} {self.name}{wildcard}"


def service_principal(service: str) -> str:
    """``fhir_gateway`` or ``fhir-gateway`` → ``brug-fhir-gateway``."""
    return f"brug-{service.replace('_', '-')}"


def _prefix(topic: str) -> str:
    """``brug.social.status.x.v1`` → ``brug.social.status.``: one family of topics."""
    return topic.rsplit(".", 2)[0] + "."


SOCIAL_REFERRALS = _prefix(topics.social_referrals("x0"))
SOCIAL_STATUS = _prefix(topics.social_status("x0"))
SOCIAL_PROBLEMS = _prefix(topics.social_problems("x0"))
GP_REFERRALS = _prefix(topics.gp_referrals("x0"))
GP_OUTCOMES = _prefix(topics.gp_outcomes("x0"))
GP_CHANGES = _prefix(topics.gp_changes("x0"))


def _topic(principal: str, operation: Operation, name: str) -> Grant:
    pattern: Pattern = "PREFIXED" if name.endswith(".") else "LITERAL"
    return Grant(principal, operation, "TOPIC", name, pattern)


def _groups(principal: str, group: str) -> list[Grant]:
    """The group itself and its per-party children (``brug-feedback.<organisation>``)."""
    return [
        Grant(principal, "READ", "GROUP", group),
        Grant(principal, "READ", "GROUP", f"{group}.", "PREFIXED"),
    ]


def _consumer(principal: str, group: str, *reads: str) -> list[Grant]:
    """A service that consumes ``reads`` in ``group`` and may park what it cannot handle."""
    return [
        *(_topic(principal, "READ", name) for name in reads),
        *_groups(principal, group),
        _topic(principal, "WRITE", topics.DEAD_LETTER),
    ]


def service_grants() -> list[Grant]:
    """What each Brug service needs (its handlers' topics, as in ``services/*``)."""
    relay = service_principal("relay")
    fhir = service_principal("fhir-gateway")
    feedback = service_principal("feedback")
    console = service_principal("console")
    return [
        # The relay publishes every event the outbox holds.
        *(
            _topic(relay, "WRITE", name)
            for name in (topics.REFERRALS_SUBMITTED, topics.OVERDUE, SOCIAL_REFERRALS)
        ),
        *(_topic(relay, "WRITE", name) for name in (SOCIAL_STATUS, GP_CHANGES)),
        *_consumer(fhir, "brug-fhir-gateway", GP_REFERRALS),
        _topic(fhir, "WRITE", GP_OUTCOMES),  # the answers to Kafka submissions
        *_consumer(service_principal("router"), "brug-router", topics.REFERRALS_SUBMITTED),
        *_consumer(feedback, "brug-feedback", SOCIAL_STATUS),
        _topic(feedback, "WRITE", SOCIAL_PROBLEMS),
        _topic(feedback, "WRITE", GP_CHANGES),
        *_consumer(service_principal("gp-notify"), "brug-gp_notify", GP_CHANGES),
        *_consumer(
            service_principal("webhook-delivery"), "brug-webhook-delivery", SOCIAL_REFERRALS
        ),
        # The monitor reads Brug's own events (adapters/monitor/projection.py) and writes
        # nothing: it parks nothing either, so no dead-letter topic.
        *(
            _topic(service_principal("monitor"), "READ", name)
            for name in (
                topics.REFERRALS_SUBMITTED,
                topics.OVERDUE,
                SOCIAL_REFERRALS,
                SOCIAL_STATUS,
            )
        ),
        *_groups(service_principal("monitor"), "brug-monitor"),
        # The console parks dead letters, shows every group's lag and replays a dead
        # letter to the topic it came from: the operator's view is the whole bus.
        *_consumer(console, "brug-console", topics.DEAD_LETTER),
        _topic(console, "DESCRIBE", "brug."),
        _topic(console, "WRITE", "brug."),
        Grant(console, "DESCRIBE", "GROUP", "*"),
        # Every service's broker has an idempotent producer (adapters/runtime/kafka.py),
        # which needs a producer id even where the service writes no topic of its own.
        *(
            Grant(service_principal(service), "IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster")
            for service in SERVICES
        ),
    ]


def party_grants(registry: ClientRegistry) -> list[Grant]:
    """What each GP system and welfare case system may do: its own topics only. A
    municipality reads its figures over HTTPS (monitor_api): nothing on Kafka."""
    grants: list[Grant] = []
    for client in registry.clients:
        name = client.client_id
        if client.kind is ClientKind.MUNICIPALITY:
            continue
        if client.kind is ClientKind.GP:
            grants += [
                _topic(name, "WRITE", topics.gp_referrals(name)),
                _topic(name, "READ", topics.gp_outcomes(name)),
                _topic(name, "READ", topics.gp_changes(name)),
            ]
        else:
            organisation = client.organisation
            grants += [
                _topic(name, "READ", topics.social_referrals(organisation)),
                _topic(name, "READ", topics.social_problems(organisation)),
                _topic(name, "WRITE", topics.social_status(organisation)),
            ]
        grants += _groups(name, name)
    return grants


def acl_plan(registry: ClientRegistry) -> list[Grant]:
    """Every ALLOW ACL Brug wants on its cluster, sorted."""
    return sorted(set(service_grants()) | set(party_grants(registry)))


@dataclass(frozen=True)
class AclChanges:
    added: list[Grant]
    removed: list[Grant]
    kept: int


def apply_acls(
    bootstrap_servers: str, plan: Iterable[Grant], credentials: KafkaCredentials
) -> AclChanges:
    """Make the cluster's ALLOW ACLs exactly ``plan``: add what is missing, remove what is
    stale. Idempotent; run as the super user."""
    wanted = set(plan)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id=ADMIN_PRINCIPAL, **credentials.kafka_python()
    )
    try:
        present = {grant for acl in _allow_acls(admin) if (grant := _grant(acl))}
        added = sorted(wanted - present)
        removed = sorted(present - wanted)
        if added:
            result = admin.create_acls([_acl(grant) for grant in added])
            if result["failed"]:
                raise RuntimeError(f"creating ACLs failed: {result['failed']}")
        for grant in removed:
            admin.delete_acls([_filter(grant)])  # type: ignore[arg-type]
        return AclChanges(added, removed, len(wanted & present))
    finally:
        admin.close()


def _allow_acls(admin: KafkaAdminClient) -> list[ACL]:
    everything = ACLFilter(
        principal=None,
        host="*",
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    acls, error = admin.describe_acls(everything)
    if error is not None and error.errno != 0:
        raise RuntimeError(f"describing ACLs failed: {error}")
    return list(acls)


def _acl(grant: Grant) -> ACL:
    return ACL(**_fields(grant), resource_pattern=ResourcePattern(*_pattern(grant)))


def _filter(grant: Grant) -> ACLFilter:
    return ACLFilter(**_fields(grant), resource_pattern=ResourcePatternFilter(*_pattern(grant)))


def _fields(grant: Grant) -> dict[str, object]:
    return {
        "principal": f"User:{grant.principal}",
        "host": "*",
        "operation": ACLOperation[grant.operation],
        "permission_type": ACLPermissionType.ALLOW,
    }


def _pattern(grant: Grant) -> tuple[ResourceType, str, ACLResourcePatternType]:
    return (
        ResourceType[grant.resource],
        grant.name,
        ACLResourcePatternType[grant.pattern],
    )


def _grant(acl: ACL) -> Grant | None:
    """The ACL as a grant, or None for one Brug does not manage (not ALLOW, another host)."""
    pattern = acl.resource_pattern
    if acl.host != "*" or not acl.principal.startswith("User:"):
        return None
    return Grant(
        acl.principal.removeprefix("User:"),
        acl.operation.name,  # type: ignore[arg-type]
        pattern.resource_type.name,  # type: ignore[arg-type]
        pattern.resource_name,
        pattern.pattern_type.name,  # type: ignore[arg-type]
    )
