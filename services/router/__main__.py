"""Router: assigns each submitted referral to an organisation (its event via the outbox)."""

from adapters.runtime import run
from services.router.app import create_app

run(create_app())
