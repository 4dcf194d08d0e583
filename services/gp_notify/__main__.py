"""GP notify: posts id-only notifications, handshakes and heartbeats to GP systems' FHIR
Subscription endpoints."""

from adapters.runtime import run
from services.gp_notify.app import create_app

run(create_app())
