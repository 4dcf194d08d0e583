"""GP notify: FHIR Subscriptions (R4 Backport IG, ``rest-hook``, ``id-only``) for GP
systems: change notices, handshakes and heartbeats POSTed to their endpoints."""

SERVICE = "gp-notify"
