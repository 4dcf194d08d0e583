"""Social gateway: the welfare side's HTTPS edge. Case systems fetch a referral's details
(notified pull) with their organisation's credentials; every fetch is audited."""

SERVICE = "social-gateway"
