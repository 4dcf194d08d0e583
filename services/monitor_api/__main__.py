from adapters.runtime.serving import serve
from services.monitor_api.app import create_app
from services.monitor_api.settings import MonitorApiSettings

settings = MonitorApiSettings()
serve(
    create_app(settings),
    host=settings.monitor_api_host,
    port=settings.monitor_api_port,
    reuse_port=settings.http_reuse_port,
)
