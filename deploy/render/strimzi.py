"""The directory and the client registry as Strimzi resources' specs.

One ACL plan (``adapters.kafka_acls.acl_plan``), two renderings: ``apply_acls`` puts it on
a cluster through the admin API, ``kafka_users`` writes it as each ``KafkaUser``'s
``spec.authorization.acls`` for Strimzi's User Operator.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from adapters.clients import ClientKind, ClientRegistry
from adapters.kafka_acls import Grant, acl_plan
from contracts import topics
from contracts.directory import WelfareDirectory

# Topic partitions, as `brug setup` creates them (adapters.kafka_admin.TopicSpec).
PARTITIONS = 3
REPLICAS = 3
# Kafka's names → Strimzi's (KafkaUser ``acls[].operations`` and ``resource``).
_OPERATIONS = {
    "READ": "Read",
    "WRITE": "Write",
    "DESCRIBE": "Describe",
    "IDEMPOTENT_WRITE": "IdempotentWrite",
}
_RESOURCE_TYPES = {"TOPIC": "topic", "GROUP": "group", "CLUSTER": "cluster"}
_PATTERNS = {"LITERAL": "literal", "PREFIXED": "prefix"}


def kafka_topics(
    directory: WelfareDirectory,
    registry: ClientRegistry,
    *,
    retention: Mapping[str, timedelta] | None = None,
    partitions: int = PARTITIONS,
    replicas: int = REPLICAS,
) -> list[dict[str, Any]]:
    """One ``KafkaTopic`` (name and spec) per topic Brug needs, as ``brug setup`` makes them
    (``retention``: ``all_topics``' keyword arguments)."""
    organisations = [organisation.id for organisation in directory.organisations]
    gp_systems = [c.client_id for c in registry.clients if c.kind is ClientKind.GP]
    return [
        {
            "name": name,
            "spec": {
                "topicName": name,
                "partitions": partitions,
                "replicas": replicas,
                **({"config": dict(config)} if config else {}),
            },
        }
        for name, config in topics.all_topics(organisations, gp_systems, **(retention or {}))
    ]


def strimzi_acl(grant: Grant) -> dict[str, Any]:
    """One grant as a Strimzi ``simple`` ACL rule."""
    resource: dict[str, Any] = {"type": _RESOURCE_TYPES[grant.resource]}
    if grant.resource != "CLUSTER":  # Strimzi's cluster resource has no name
        resource["name"] = grant.name
        resource["patternType"] = _PATTERNS[grant.pattern]
    return {"resource": resource, "operations": [_OPERATIONS[grant.operation]], "host": "*"}


def kafka_users(plan: Iterable[Grant]) -> list[dict[str, Any]]:
    """One ``KafkaUser`` (name and spec) per principal of ``plan``: SCRAM-SHA-512 (Strimzi
    writes the password into a Secret of the user's name) and its grants, nothing else."""
    by_principal: dict[str, list[Grant]] = defaultdict(list)
    for grant in plan:
        by_principal[grant.principal].append(grant)
    return [
        {
            "name": principal,
            "spec": {
                "authentication": {"type": "scram-sha-512"},
                "authorization": {
                    "type": "simple",
                    "acls": [strimzi_acl(grant) for grant in sorted(grants)],
                },
            },
        }
        for principal, grants in sorted(by_principal.items())
    ]


def users_of(registry: ClientRegistry) -> list[dict[str, Any]]:
    """Every principal's ``KafkaUser``: the services' and each GP and case system's."""
    return kafka_users(acl_plan(registry))
