"""Every variable the platform knows, as rows: for ``docs/settings.md`` and the checks on it.

Three kinds: the model's fields (one variable each), the families of variables named after
something the deployment names (``DP_DB_<NAME>_URL``...), and the variables only
``docker-compose.yml`` reads (passwords it splices into URLs, the published port...).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dp_settings.model import PlatformSettings


@dataclass(frozen=True)
class Variable:
    name: str
    group: str  # "" for the top level
    type: str
    default: str
    description: str
    secret: bool = False


#: Families of variables named after a connection, flow or webhook: (pattern, group, meaning).
VARIABLE_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("DP_DB_<NAME>_URL", "db", "SQLAlchemy URL of database connection `<name>` (a spec's `connection:`)."),
    (
        "DP_DB_<NAME>_QUERY_URL",
        "db",
        "Read-only login of connection `<name>` that user SQL "
        "(`CustomSQLQuery`) runs under; required on PostgreSQL unless the connection is in DP_DB_WRITABLE_SQL.",
    ),
    (
        "DP_WEBHOOK_TOKEN_<FLOW_ID>",
        "webhook",
        "Bearer token of the receiver for flow `<flow_id>` only (replaces DP_WEBHOOK_TOKEN for it).",
    ),
    ("DP_WEBHOOK_<NAME>_URL", "webhook", "URL of notification webhook `<name>` (`SendNotification`)."),
    (
        "DP_SECRET_<NAME>",
        "secrets",
        "A secret a spec references as `${env:DP_SECRET_<NAME>}`; the "
        "`secrets` resource's `allowed_names` says which names specs may use (default `DP_SECRET_*`).",
    ),
)

#: Variables only docker-compose.yml reads (never the platform's code): name -> what it is.
COMPOSE_VARIABLES: dict[str, str] = {
    "DP_IMAGE": "The image every service runs (default `dp-platform:latest`).",
    "DP_STORE_PASSWORD": "Password of the `dp_store` login (the flow store).",
    "DP_SQL_PASSWORD": "Password of the `dp_sql` login (the nodes' data, written by TableWriter).",
    "DP_SQL_URL": "The `dp_sql` login's URL, set for tools run inside the containers.",
    "DP_QUERY_PASSWORD": "Password of the read-only `dp_query` login that user SQL runs under.",
    "DP_REDIS_PASSWORD": "Password of Redis, the Celery broker and result backend.",
    "DP_RABBITMQ_PASSWORD": "Password of RabbitMQ (profile `rabbitmq`).",
    "DP_CELERY_CONCURRENCY": "Steps each Celery worker runs at once (default 2).",
    "DP_VIEWER_PROXY_USERS": "DP_PROXY_USERS of the read-only viewer's proxy.",
    "DP_VIEWER_PROXY_ALLOWED_ORIGINS": "DP_PROXY_ALLOWED_ORIGINS of the read-only viewer's proxy.",
    "DP_DESIGNER_PROXY_ALLOWED_ORIGINS": "DP_PROXY_ALLOWED_ORIGINS of the designer's proxy.",
    "DP_WEBSERVER_PUBLIC_URL": "Dagster's UI as users reach it, for the designer's links (default http://127.0.0.1:8080).",
    "DP_PROXY_BIND": "Address the proxies' ports are published on (default 127.0.0.1).",
}


def _type_text(annotation: Any) -> str:
    text = re.sub(r"typing\.|Annotated\[|, (NoDecode|BeforeValidator)[^\]]*\]", "", str(annotation))
    text = re.sub(r"Optional\[(.*)\]", r"\1", text)
    text = text.replace("NoneType", "").replace(" | None", "").replace("None | ", "")
    text = re.sub(r"Literal\[([^\]]*)\]", lambda m: " | ".join(m.group(1).replace("'", "").split(", ")), text)
    text = text.replace("pydantic.types.SecretStr", "secret").replace("SecretStr", "secret")
    text = text.replace("list[str]", "comma-separated list")
    text = re.sub(r"<class '(\w+)'>", r"\1", text)
    return text.strip(" |")


def _default_text(info: FieldInfo) -> str:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if extra.get("default_text"):
        return str(extra["default_text"])
    default = info.get_default(call_default_factory=True)
    if default in (None, [], ""):
        return "none"
    return json.dumps(default) if not isinstance(default, str) else default


def _rows(model: type[BaseModel], prefix: str, group: str) -> list[Variable]:
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _rows(annotation, f"{prefix}{name.upper()}_", name)
            continue
        alias = info.validation_alias if isinstance(info.validation_alias, str) else ""
        # a variable outside DP_* (DAGSTER_HOME) is the field's whole alias
        env = alias if alias.isupper() else f"{prefix}{(info.alias or name).upper()}"
        rows.append(
            Variable(
                name=env,
                group=group,
                type=_type_text(annotation),
                default=_default_text(info),
                description=info.description or "",
                secret="SecretStr" in str(annotation),
            )
        )
    return rows


def variables() -> list[Variable]:
    """One row per variable of :class:`PlatformSettings`, in the model's order."""
    return _rows(PlatformSettings, "DP_", "")


def is_known(name: str) -> bool:
    """Whether ``name`` is a setting, one of a family (``DP_DB_<NAME>_URL``...) or compose's own."""
    if name in COMPOSE_VARIABLES or name in {v.name for v in variables()}:
        return True
    if name in {pattern for pattern, _, _ in VARIABLE_PATTERNS}:  # the family itself, as docs write it
        return True
    for pattern, _, _ in VARIABLE_PATTERNS:
        regex = (
            re.escape(pattern).replace(re.escape("<NAME>"), "[A-Z0-9_]+").replace(re.escape("<FLOW_ID>"), "[A-Z0-9_]+")
        )
        if re.fullmatch(regex, name):
            return True
    return False
