from adapters.runtime import run
from services.webhook_delivery.app import app

run(app)
