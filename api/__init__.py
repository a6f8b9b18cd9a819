"""playerlog's HTTP API, command line and composition root."""

from api.app import create_app, create_asgi
from api.settings import Settings

__all__ = ["Settings", "create_app", "create_asgi"]
