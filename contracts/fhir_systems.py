"""Identifier and code systems Brug reads from Dutch FHIR resources (nl-core / zib2020)."""

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
ICPC_1_NL = "http://hl7.org/fhir/sid/icpc-1-nl"
SNOMED_CT = "http://snomed.info/sct"
TASK_BUSINESS_STATUS = "urn:brug:codesystem:wor-business-status"
REFERRAL_IDENTIFIER = "urn:brug:referral-id"
ORGANISATION = "urn:brug:organisation"
COMMUNICATION_CATEGORY = "urn:brug:codesystem:communication-category"
SIGNAL_KIND = "urn:brug:codesystem:signal-kind"
TASK_OUTPUT = "urn:brug:codesystem:task-output"
ACTIVITY_KIND = "urn:brug:codesystem:wor-activity-kind"
POSITIVE_HEALTH = "urn:brug:codesystem:positive-health"
# PractitionerRole.code for referrers without a national role code (POH-GGZ, POH-S):
# contracts/mappings/referrer_disciplines.v1.json.
REFERRER_DISCIPLINE = "urn:brug:codesystem:referrer-discipline"

# FHIR Subscriptions (R4 Subscriptions Backport IG): the one topic Brug offers GP systems.
# A Task of the GP changed (new version) or a Communication for the GP arrived.
REFERRAL_FEEDBACK_TOPIC = "https://brug.nl/fhir/SubscriptionTopic/referral-feedback"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
BACKPORT_SUBSCRIPTION_PROFILE = BACKPORT + "backport-subscription"
BACKPORT_STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
BACKPORT_NOTIFICATION_PROFILE = BACKPORT + "backport-subscription-notification-r4"
BACKPORT_PAYLOAD_CONTENT = BACKPORT + "backport-payload-content"
BACKPORT_HEARTBEAT_PERIOD = BACKPORT + "backport-heartbeat-period"
