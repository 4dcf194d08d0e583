"""Monitor API: the municipalities' read-only HTTPS edge on the monitor's figures."""

SERVICE = "monitor_api"
