"""The resources every flow may ask for, built from the deployment's settings.

Secrets and connection URLs stay environment variables (``dg.EnvVar``) that Dagster or the
resource reads when used, so building them costs nothing at load and shows only names in the UI.
"""

import os
import threading
from typing import Any

import dagster as dg

from dp_settings import PlatformSettings, fingerprint, load


def _env_vars_that_are_set(**fields: tuple[str, object]) -> dict[str, Any]:
    """``field=dg.EnvVar(NAME)`` for each variable the settings hold a value of: Dagster resolves
    it in the run and shows only its name (a field left out follows the settings when used).
    Typed ``Any``: the keyword arguments of a resource whose other fields take other types."""
    return {field: dg.EnvVar(name) for field, (name, value) in fields.items() if value is not None}


def default_resources(settings: PlatformSettings | None = None) -> dict[str, object]:
    """Every resource a node type or trigger may ask for, for the deployment's ``settings``
    (default: read now). Secrets and connection URLs stay environment variables that Dagster or
    the resource reads when used, so this costs nothing at load."""
    settings = settings or load()
    from dp_io import RunScopedIOManager
    from dp_io.table import TableIOManager
    from dp_resources.databases import DatabasesResource
    from dp_resources.files import FilesResource
    from dp_resources.http import HttpResource
    from dp_resources.llm import LlmResource
    from dp_resources.mcp_client import McpResource
    from dp_resources.notifications import NotificationsResource
    from dp_resources.sandbox import SandboxResource
    from dp_resources.secrets_resource import SecretsResource
    from dp_resources.shell import ShellResource
    from dp_sensors.events.resource import EventBusResource

    # The one notification resource, for SendNotification nodes and notify: sensors; the SMTP
    # password goes in as a dg.EnvVar (only its name in run config), the rest is read when sending.
    notifications = NotificationsResource(
        **_env_vars_that_are_set(smtp_password=("DP_SMTP_PASSWORD", settings.smtp.password))
    )
    return {
        "io_manager": RunScopedIOManager(),
        # storage.format: table in a spec; DP_TABLES_URL is read when a flow with one runs
        "table_io": TableIOManager(url=dg.EnvVar("DP_TABLES_URL")),
        "files": FilesResource(),
        "databases": DatabasesResource(),  # DP_DB_<NAME>_URL, DP_DB_<NAME>_QUERY_URL
        # private and metadata addresses refused unless DP_HTTP_ALLOWED_NETWORKS lists them
        "http": HttpResource(allowed_networks=list(settings.http.allowed_networks)),
        "notifications": notifications,  # DP_WEBHOOK_<NAME>_URL, DP_SMTP_*, DP_WEBSERVER_URL
        "sandbox": SandboxResource(),
        "secrets": SecretsResource(),  # ${env:NAME} references (DP_ALLOWED_SECRET_NAMES), redacted everywhere
        "shell": ShellResource(),  # off unless the deployment allows programs
        "mcp": McpResource.from_config_file(settings.mcp_config),  # servers from DP_MCP_CONFIG's file
        "llm": LlmResource(
            allowed_networks=list(settings.llm.allowed_networks),  # DP_LLM_ALLOWED_NETWORKS: a local model
            **_env_vars_that_are_set(
                base_url=("DP_LLM_BASE_URL", settings.llm.base_url),
                model=("DP_LLM_MODEL", settings.llm.model),
                api_key=("DP_LLM_API_KEY", settings.llm.api_key),
            ),
        ),
        # event triggers (DP_EVENTS_URL, else the flow store)
        "event_bus": EventBusResource(**_env_vars_that_are_set(url=("DP_EVENTS_URL", settings.events_url))),
        "notifier": notifications,  # the old key of notify:'s resource, for code that still asks for it
    }


_shared_lock = threading.Lock()
_shared: tuple[tuple[str, tuple[int, int] | None], dict[str, object]] | None = None


def shared_default_resources(settings: PlatformSettings) -> dict[str, object]:
    """:func:`default_resources` of ``settings``, built once per settings (and MCP config file)
    in this process; do not change the dict.

    Building them costs 30-100 ms (Dagster infers each resource's config schema), which every
    load of the location paid: a code server at each load, and every run worker again when it
    reconstructs its job. A warm run worker now takes them from the template it was forked
    from. Keyed on every settings value, so changed settings get new resources, and on the MCP
    config file's modification time and size, the one input read from a file."""
    global _shared
    key = (fingerprint(settings), _file_stamp(settings.mcp_config))
    shared = _shared
    if shared is not None and shared[0] == key:
        return shared[1]
    resources = default_resources(settings)
    with _shared_lock:
        _shared = (key, resources)
    return resources


def _file_stamp(path: str | None) -> tuple[int, int] | None:
    if not path:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None  # default_resources names the missing file
    return found.st_mtime_ns, found.st_size
