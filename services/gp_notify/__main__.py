from adapters.runtime import run
from services.gp_notify.app import app

run(app)
