"""The authenticating reverse proxy in front of the Dagster webserver (docs/deploy.md).

``python -m dp_resources.proxy serve`` (or ``dp proxy serve``) runs it; settings come from
``DP_PROXY_*`` environment variables (:mod:`dp_resources.proxy.settings`).
"""

from dp_resources.proxy.app import DagsterProxy, create_app, serve
from dp_resources.proxy.auth import Authenticator, hash_password, verify_password
from dp_resources.proxy.settings import ProxySettings

__all__ = [
    "Authenticator",
    "DagsterProxy",
    "ProxySettings",
    "create_app",
    "hash_password",
    "serve",
    "verify_password",
]
