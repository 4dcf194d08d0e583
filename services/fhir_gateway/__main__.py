from adapters.runtime.serving import serve
from services.fhir_gateway.app import create_app
from services.fhir_gateway.settings import GatewaySettings

settings = GatewaySettings()
serve(
    create_app(settings),
    host=settings.fhir_host,
    port=settings.fhir_port,
    reuse_port=settings.http_reuse_port,
    timeout_keep_alive=30,
)
