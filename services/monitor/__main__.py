"""Monitor: consumes Brug's event topics into the minimal dataset (adapters/monitor)."""

from adapters.runtime import run
from services.monitor.app import create_app

run(create_app())
