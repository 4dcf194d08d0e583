"""FHIR OperationOutcome errors: every refusal at the HTTP edge says what, where and why."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome
from pydantic import ValidationError


class FhirProblem(Exception):
    """A request Brug refuses, carried to the edge as an OperationOutcome.

    ``code`` is from the FHIR IssueType value set; ``expression`` is the FHIRPath of
    the offending element. ``diagnostics`` goes to the client, never personal data.
    """

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        expression: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(
            "error" if self.status < 500 else "fatal", self.code, self.diagnostics, self.expression
        )


def operation_outcome(
    severity: str, code: str, diagnostics: str, expression: str | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    # Built through the model so what Brug sends is itself valid FHIR.
    return OperationOutcome.model_validate(
        {"resourceType": "OperationOutcome", "issue": [issue]}
    ).model_dump(mode="json", exclude_none=True)


def fhirpath_of(location: tuple[Any, ...], root: str) -> str:
    """A pydantic error location → FHIRPath, e.g. ('entry', 0, 'resource', 'birthDate')
    → ``Bundle.entry[0].resource.birthDate``."""
    path = root
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in {"__root__"}:
            path += f".{part}"
    return path


def structure_problem(error: ValidationError, root: str, what: str) -> FhirProblem:
    """A fhir.resources validation failure as a 400 naming its first offending element."""
    first = error.errors(include_input=False, include_url=False)[0]
    return FhirProblem(
        400,
        "structure",
        f"not valid {what}: {first['msg']} ({error.error_count()} problem(s))",
        fhirpath_of(tuple(first["loc"]), root),
    )
