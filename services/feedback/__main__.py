from adapters.runtime import run
from services.feedback.app import app

run(app)
