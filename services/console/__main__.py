import uvicorn

from services.console.app import app, settings

# log_config=None: uvicorn's loggers go through Brug's JSON pipeline instead of their own.
uvicorn.run(app, host=settings.console_host, port=settings.console_port, log_config=None)
