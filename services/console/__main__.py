"""The operator console: serves the pages with uvicorn on ``BRUG_CONSOLE_HOST:PORT``."""

from adapters.runtime.serving import serve
from services.console.app import create_app
from services.console.settings import ConsoleSettings

settings = ConsoleSettings()
serve(
    create_app(settings),
    host=settings.console_host,
    port=settings.console_port,
    reuse_port=settings.http_reuse_port,
)
