"""The ledger's tables as SQLAlchemy Core metadata; migrations must produce exactly this
(tests/integration/test_ledger.py compares them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

referrals = Table(
    "referrals",
    metadata,
    Column("referral_id", Uuid, primary_key=True),
    Column("organisation_id", String(63), nullable=True),
    Column("municipality_code", String(6), nullable=True),
    Column("status", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Id mappings: the GP's ServiceRequest identifier <-> referral <-> Task <-> organisation.
    Column("task_id", Uuid, nullable=True, unique=True),
    Column("client_id", String(64), nullable=True),
    Column("requester_agb", String(16), nullable=True),
    Column("service_request_system", String(255), nullable=True),
    Column("service_request_value", String(255), nullable=True),
    Column("themes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("age_band", String(8), nullable=True),
    Column("urgency", String(16), nullable=True),
    Column("status_reason", String(500), nullable=True),
    Column("version", Integer, nullable=False, server_default=text("1")),
    # The welfare side's view: its last status, the sender's sequence, the WoR business status.
    Column("welfare_status", String(32), nullable=True),
    Column("status_sequence", Integer, nullable=False, server_default=text("0")),
    # The latest status a case system POSTed over HTTPS (published, maybe not yet applied):
    # the social edge judges the next POST against it, so quick successive POSTs pass.
    Column("reported_status", String(32), nullable=True),
    Column("reported_sequence", Integer, nullable=False, server_default=text("0")),
    Column("business_status", String(64), nullable=True),
    # Set once Kafka acknowledged the gateway's / the router's event for this referral.
    Column("submitted_event_published_at", DateTime(timezone=True), nullable=True),
    Column("routed_event_published_at", DateTime(timezone=True), nullable=True),
    # The completion outcome the GP reads in Task.output (closing summary, activities).
    Column("outcome", JSONB, nullable=True),
    # Service-level timers: set when routed, stamped when they ran out (survive restarts).
    Column("received_due_at", DateTime(timezone=True), nullable=True),
    Column("contact_due_at", DateTime(timezone=True), nullable=True),
    Column("received_overdue_at", DateTime(timezone=True), nullable=True),
    Column("contact_overdue_at", DateTime(timezone=True), nullable=True),
    # The last Task version the GP system read (its notices are in the outbox).
    Column("gp_seen_version", Integer, nullable=False, server_default=text("0")),
    # The OpenTelemetry trace the referral's intake started: where engineers look next.
    Column("trace_id", String(32), nullable=True),
    # The keyed pseudonym of the patient's BSN (adapters/pseudonyms.py), never the BSN:
    # the audit trail copies it, so a patient's accesses can be found (brug audit report).
    Column("patient_pseudonym", String(64), nullable=True),
    # When retention or an erasure replaced the free texts (adapters/ledger/erasure.py).
    Column("erased_at", DateTime(timezone=True), nullable=True),
    # One referral per ServiceRequest identifier per GP organisation, whatever the retries.
    UniqueConstraint(
        "requester_agb",
        "service_request_system",
        "service_request_value",
        name="uq_referrals_service_request",
    ),
    Index("ix_referrals_requester_updated", "requester_agb", "updated_at"),
    Index("ix_referrals_patient_pseudonym", "patient_pseudonym"),
)

# The personal details, apart, so that erasure and retention touch one table only.
referral_details = Table(
    "referral_details",
    metadata,
    Column(
        "referral_id",
        Uuid,
        ForeignKey("referrals.referral_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("details", JSONB, nullable=False),
    Column("retain_until", DateTime(timezone=True), nullable=False),
    Index("ix_referral_details_retain_until", "retain_until"),
)

# Replies already given, per client and X-Request-ID, so a retry gets the same answer.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("client_id", String(64), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response_status", Integer, nullable=False),
    Column("response_body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("client_id", "request_id", name="pk_idempotency_keys"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

referral_status_history = Table(
    "referral_status_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "referral_id",
        Uuid,
        ForeignKey("referrals.referral_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", String(32), nullable=False),
    Column("source", String(63), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Index("ix_referral_status_history_referral", "referral_id", "occurred_at"),
)

# The NEN 7513 access log (adapters/ledger/audit_trail.py): who (client, person), what,
# when, on whom (the BSN's pseudonym), why (purpose) and the result. Insert only (a trigger
# refuses UPDATE, DELETE and TRUNCATE, migration 0015); each row is hash-chained to the one
# before it (seq without gaps, previous_hash, row_hash), checked by `brug audit verify`.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("referral_id", Uuid, nullable=True),
    Column("detail", JSONB, nullable=False, server_default="{}"),
    Column("person", String(128), nullable=True),
    Column("patient_pseudonym", String(64), nullable=True),
    Column("purpose", String(32), nullable=False),
    Column("result", String(16), nullable=False),
    # The hash chain (adapters/ledger/audit_trail.py): which one, and the row's place in it.
    Column("chain", SmallInteger, nullable=False, server_default=text("0")),
    Column("seq", BigInteger, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
    UniqueConstraint("chain", "seq", name="uq_audit_log_chain_seq"),
    Index("ix_audit_log_referral", "referral_id", "at"),
    Index("ix_audit_log_patient", "patient_pseudonym", "at"),
)

# Webhook deliveries: the state that lets retries survive restarts, and parks what fails.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column(
        "referral_id",
        Uuid,
        ForeignKey("referrals.referral_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("organisation_id", String(63), nullable=False),
    Column("event", JSONB, nullable=False),
    Column("state", String(16), nullable=False),  # pending | delivered | parked
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", String(500), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_finished_at", "finished_at"),
)

# FHIR Communications to the GP: the closing feedback (terugkoppeling) and welfare signals.
communications = Table(
    "communications",
    metadata,
    Column("communication_id", Uuid, primary_key=True),
    Column(
        "referral_id",
        Uuid,
        ForeignKey("referrals.referral_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("category", String(32), nullable=False),  # feedback | signal
    Column("sender", String(63), nullable=False),
    Column("payload", JSONB, nullable=False),
    # Unique per referral (see the constraint below), not across referrals.
    Column("signal_id", Uuid, nullable=True),
    # A signal that asks the GP to act also shows as a Task with this id.
    Column("action_task_id", Uuid, nullable=True, unique=True),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    # When Kafka acknowledged its notice to the GP system (the relay stamps it).
    Column("published_at", DateTime(timezone=True), nullable=True),
    # The receipt: when and how (pull | push) the GP system first had it.
    Column("gp_received_at", DateTime(timezone=True), nullable=True),
    Column("gp_received_channel", String(8), nullable=True),
    Column("erased_at", DateTime(timezone=True), nullable=True),  # payload replaced
    UniqueConstraint("referral_id", "signal_id", name="uq_communications_referral_signal"),
    Index("ix_communications_referral", "referral_id", "sent_at"),
    Index("ix_communications_sent_at", "sent_at"),
)

# FHIR R4 Subscriptions (Subscriptions Backport IG) of GP systems: rest-hook, id-only.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("subscription_id", Uuid, primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("organisation", String(16), nullable=False),  # the GP organisation's AGB
    Column("topic", String(255), nullable=False),
    Column("endpoint", String(2000), nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("heartbeat_seconds", Integer, nullable=True),
    Column("status", String(16), nullable=False),  # requested | active | error | off
    Column("events_since_start", BigInteger, nullable=False, server_default=text("0")),
    Column("last_sent_at", DateTime(timezone=True), nullable=True),
    Column("error", String(500), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),  # the Subscription as the GP posted it
    # Rest-hook retries (migration 0018): null retry_at is not failing.
    Column("failing_since", DateTime(timezone=True), nullable=True),
    Column("retry_attempts", Integer, nullable=False, server_default=text("0")),
    Column("retry_at", DateTime(timezone=True), nullable=True),
    Index("ix_subscriptions_organisation", "organisation", "status"),
    Index("ix_subscriptions_retry_at", "retry_at"),
)

# Every notification event of a Subscription, ids only (migration 0018): $events and retries.
subscription_events = Table(
    "subscription_events",
    metadata,
    Column(
        "subscription_id",
        Uuid,
        ForeignKey("subscriptions.subscription_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("event_number", BigInteger, primary_key=True),
    Column("referral_id", Uuid, nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", Uuid, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Index("ix_subscription_events_recorded_at", "recorded_at"),
)

# Dead letters the console consumed from brug.deadletter.v1, for operators to act on.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("dead_letter_id", String(64), primary_key=True),
    Column("referral_id", Uuid, nullable=True, index=True),
    Column("reason", String(32), nullable=False),
    Column("detail", String(2000), nullable=False),
    Column("service", String(63), nullable=False),
    Column("original_topic", String(255), nullable=False),
    Column("original_partition", Integer, nullable=False),
    Column("original_offset", BigInteger, nullable=False),
    Column("original_key", String(255), nullable=True),
    # May hold personal data (e.g. a GP's Bundle): shown only on an audited reveal.
    Column("original_value", Text, nullable=False),
    Column("original_headers", JSONB, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    # parked | replaying | replayed | discarded (domain/dead_letters.py)
    Column("state", String(16), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolved_by", String(128), nullable=True),
    Column("note", String(2000), nullable=True),
    Column("erased_at", DateTime(timezone=True), nullable=True),  # original_value emptied
    # A replay's claim, committed before it publishes, and its last failure (migration 0024).
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    Column("replay_error", String(500), nullable=True),
    Column("replay_failed_at", DateTime(timezone=True), nullable=True),
    Index("ix_dead_letters_failed_at", "failed_at"),
    Index("ix_dead_letters_parked", "failed_at", postgresql_where=text("state = 'parked'")),
)

# Console logins: only the token's hash is stored, so a database read cannot hijack one.
operator_sessions = Table(
    "operator_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Console login attempts, the throttle's memory shared by every replica: a row per attempt,
# kept as a failure unless the password proved right; rows older than the window are pruned.
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    Column("source_address", String(64), nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    Index("ix_login_failures_username", "username", "failed_at"),
    Index("ix_login_failures_source_address", "source_address", "failed_at"),
)

# Events that follow a ledger change, written in the same transaction; the relay publishes
# them in id order (so in order per referral) and stamps them. Referral events are thin;
# the statuses a case system POSTs carry its free texts until published (see PRIVACY.md).
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("event_type", String(128), nullable=False),
    Column("referral_id", Uuid, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True), nullable=True),
    # Kafka would not take it while it took others (adapters/outbox/relay.py): kept, not claimed.
    Column("parked_at", DateTime(timezone=True), nullable=True),
    Column("parked_reason", String(255), nullable=True),
    Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    Index("ix_outbox_published", "published_at", postgresql_where=text("published_at IS NOT NULL")),
)

# SMART client assertions already used (adapters/smart.py): a jti is refused while its
# assertion could still be valid; expired rows are pruned at the next token request.
client_assertions = Table(
    "client_assertions",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_client_assertions_expires_at", "expires_at"),
)


def _monitor_table(name: str) -> Table:
    """One pseudonymous row per referral of the national monitor's minimal dataset
    (``domain/monitor/dataset.py`` ``MonitorState``; ``adapters/monitor/``): days, codes and
    flags, no personal data. ``seen_events``: keyed digests of the events applied, so a
    redelivery changes nothing. The live table and the one ``brug monitor rebuild`` fills
    before it swaps them have the same shape (migration 0023)."""
    return Table(
        name,
        metadata,
        Column("pseudonym", String(64), primary_key=True),
        Column("submitted_on", Date, nullable=True),
        Column("municipality_code", String(6), nullable=True),
        Column("organisation_id", String(63), nullable=True),
        Column("referrer_discipline", String(16), nullable=False),
        Column("channel", String(16), nullable=False),
        Column("age_band", String(8), nullable=True),
        Column("themes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Column("urgency", String(16), nullable=True),
        Column("welfare_status", String(32), nullable=True),
        Column("status_sequence", Integer, nullable=False, server_default=text("0")),
        Column("received_on", Date, nullable=True),
        Column("accepted_on", Date, nullable=True),
        Column("first_contact_on", Date, nullable=True),
        Column("welfare_ended_on", Date, nullable=True),
        Column("welfare_end", String(32), nullable=True),
        Column("decline_reason", String(32), nullable=True),
        Column("gp_withdrawn_on", Date, nullable=True),
        Column("activity_kinds", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Column("feedback_to_gp_on", Date, nullable=True),
        Column("feedback_to_gp_channel", String(8), nullable=True),
        Column("overdue_received", Boolean, nullable=False, server_default=text("false")),
        Column("overdue_first_contact", Boolean, nullable=False, server_default=text("false")),
        Column("signal_kinds", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Column("positive_health_consented", Boolean, nullable=False, server_default=text("false")),
        Column("positive_health_change", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("seen_events", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Index(f"ix_{name}_submitted_on", "submitted_on"),
    )


monitor_referrals = _monitor_table("monitor_referrals")
monitor_rebuild_referrals = _monitor_table("monitor_rebuild_referrals")
