"""The FHIR R4 HTTP edge's building blocks: OperationOutcomes, the CapabilityStatement,
and the resources Brug serves (Task, transaction-response Bundles)."""
