from adapters.runtime import run
from services.router.app import app

run(app)
