"""A reference welfare case system, for the demo and the end-to-end tests (not a service)."""
