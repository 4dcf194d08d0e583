"""Monitor: Brug's own events folded into the national monitor's pseudonymous dataset."""

SERVICE = "monitor"
