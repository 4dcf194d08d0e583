import uvicorn

from services.social_gateway.app import create_app
from services.social_gateway.settings import SocialGatewaySettings

settings = SocialGatewaySettings()
# log_config=None: uvicorn's loggers go through Brug's JSON pipeline instead of their own.
uvicorn.run(
    create_app(settings), host=settings.social_host, port=settings.social_port, log_config=None
)
