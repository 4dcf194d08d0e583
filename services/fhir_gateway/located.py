"""A request's resources with the FHIRPath each was found at, and the references among
them (``urn:uuid:…``, ``Type/id``, ``#contained``): what the translation reads from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Located:
    """A resource from the request with the FHIRPath it was found at."""

    resource: dict[str, Any]
    path: str
    request: dict[str, Any] | None = None


class References:
    """Resolves references within one request: ``urn:uuid:…``, ``Type/id``, ``#contained``."""

    def __init__(self, located: list[Located]) -> None:
        self.located = located
        self.by_reference: dict[str, Located] = {}
        for item in located:
            resource = item.resource
            if full_url := (item.request or {}).get("fullUrl"):
                self.by_reference[full_url] = item
            if "id" in resource:
                self.by_reference[f"{resource['resourceType']}/{resource['id']}"] = item
                self.by_reference[f"#{resource['id']}"] = item

    def resolve(self, reference: dict[str, Any] | None, expected: str) -> Located | None:
        target = (reference or {}).get("reference")
        found = self.by_reference.get(target) if target else None
        return found if found and found.resource["resourceType"] == expected else None

    def all_of(self, resource_type: str) -> list[Located]:
        return [item for item in self.located if item.resource["resourceType"] == resource_type]
