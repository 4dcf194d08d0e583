"""The referral ledger in PostgreSQL: schema (tables.py), migrations, and the repository."""
