"""The operator console: serves the pages with uvicorn on ``BRUG_CONSOLE_HOST:PORT``."""

import uvicorn

from services.console.app import create_app
from services.console.settings import ConsoleSettings

settings = ConsoleSettings()
# log_config=None: uvicorn's loggers go through Brug's JSON pipeline instead of their own.
uvicorn.run(
    create_app(settings), host=settings.console_host, port=settings.console_port, log_config=None
)
