import uvicorn

from services.social_gateway.app import app, settings

# log_config=None: uvicorn's loggers go through Brug's JSON pipeline instead of their own.
uvicorn.run(app, host=settings.social_host, port=settings.social_port, log_config=None)
