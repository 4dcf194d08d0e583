"""Webhook delivery: queues the referrals of webhook organisations and POSTs them, signed."""

from adapters.runtime import run
from services.webhook_delivery.app import create_app

run(create_app())
