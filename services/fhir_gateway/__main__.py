import uvicorn

from services.fhir_gateway.app import create_app
from services.fhir_gateway.settings import GatewaySettings

settings = GatewaySettings()
# log_config=None: uvicorn's loggers go through Brug's JSON pipeline instead of their own.
uvicorn.run(
    create_app(settings),
    host=settings.fhir_host,
    port=settings.fhir_port,
    log_config=None,
    timeout_keep_alive=30,
)
