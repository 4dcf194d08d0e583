"""The operator console: message flows, one referral end to end, what is stuck, health."""

SERVICE = "console"
