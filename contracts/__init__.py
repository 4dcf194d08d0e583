"""Brug's wire formats: the CloudEvents envelope, event payloads, topics and code lists.

Pure data: nothing here does I/O or imports another Brug layer (checked by
import-linter, see pyproject.toml).
"""
