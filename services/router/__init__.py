"""Router: assigns each submitted referral to the welfare organisation serving its municipality."""

SERVICE = "router"
