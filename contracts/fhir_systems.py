"""Identifier and code systems Brug reads from Dutch FHIR resources (nl-core / zib2020)."""

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
ICPC_1_NL = "http://hl7.org/fhir/sid/icpc-1-nl"
SNOMED_CT = "http://snomed.info/sct"
TASK_BUSINESS_STATUS = "urn:brug:codesystem:wor-business-status"
REFERRAL_IDENTIFIER = "urn:brug:referral-id"
