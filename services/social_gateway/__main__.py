from adapters.runtime.serving import serve
from services.social_gateway.app import create_app
from services.social_gateway.settings import SocialGatewaySettings

settings = SocialGatewaySettings()
serve(
    create_app(settings),
    host=settings.social_host,
    port=settings.social_port,
    reuse_port=settings.http_reuse_port,
)
