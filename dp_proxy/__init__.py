"""The authenticating reverse proxy in front of the Dagster webserver (docs/deploy.md).

``python -m dp_proxy serve`` (or ``dp proxy serve``) runs it; settings come from
``DP_PROXY_*`` environment variables (:mod:`dp_proxy.settings`).
"""

from dp_proxy.app import DagsterProxy, create_app
from dp_proxy.auth import Authenticator, hash_password, verify_password
from dp_proxy.server import serve
from dp_proxy.settings import ProxySettings

__all__ = [
    "Authenticator",
    "DagsterProxy",
    "ProxySettings",
    "create_app",
    "hash_password",
    "serve",
    "verify_password",
]
