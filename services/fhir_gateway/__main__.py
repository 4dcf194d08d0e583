import uvicorn

from services.fhir_gateway.app import app, settings

# log_config=None: uvicorn's loggers go through Brug's JSON pipeline instead of their own.
uvicorn.run(
    app, host=settings.fhir_host, port=settings.fhir_port, log_config=None, timeout_keep_alive=30
)
