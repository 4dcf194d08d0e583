from adapters.runtime import run
from services.relay.app import create_app

run(create_app())
