"""The webhook and idempotent-launch receiver (Starlette, served by uvicorn)."""

from dp_sensors.webhook.app import FlowCatalog, create_app, webhook_topic
from dp_sensors.webhook.launches import (
    IDEMPOTENCY_TAG,
    Launcher,
    LaunchLedger,
    LaunchRejected,
)
from dp_sensors.webhook.server import serve, serve_in_thread

__all__ = [
    "IDEMPOTENCY_TAG",
    "FlowCatalog",
    "LaunchLedger",
    "LaunchRejected",
    "Launcher",
    "create_app",
    "serve",
    "serve_in_thread",
    "webhook_topic",
]
