"""Secrets: ``${env:NAME}`` references resolved at run time only, and redaction of their values.

A spec never holds a secret, only a reference such as ``"Bearer ${env:DP_SECRET_API_TOKEN}"``.
The reference is resolved inside the node, at run time, by a ``SecretScope`` that remembers every
value it handed out. Before anything leaves the node — output values, metadata, log lines, error
messages — it goes through the scope's ``redact``/``redact_value``, which replaces each resolved
value (and its URL-, JSON- and base64-encoded forms) by ``***``. So a secret that a server echoes
back, or that appears in an exception from a library, is not written to the event log or to run
storage (reliability test S6).

Only environment variables whose names match ``SecretsResource.allowed_names`` may be referenced
(default ``DP_SECRET_*``): a spec author cannot read ``AWS_SECRET_ACCESS_KEY`` or the database URL
of the platform by naming it. References are resolved only where the spec's author wrote them:
the spec renderer seals them before any template is filled (``secret_refs``), and ``resolve``
resolves sealed references only, so text that flow params, event payloads, upstream data or an
agent's arguments put into params — even text that composes ``${env:NAME}`` from pieces — stays
literal. ``resolve_written`` is for text the deployment's operator wrote whole (MCP server config).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import os
import re
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

import dagster as dg
from pydantic import Field

from dp_resources.secret_refs import ENV_REFERENCE, SEALED_REFERENCE, as_written, genuine, seal_written

REDACTED = "***"


class SecretError(ValueError):
    """A reference that may not or cannot be resolved; the message names the variable, never a value."""


def references(value: Any) -> list[str]:
    """Names of every environment variable referenced (written or sealed) anywhere inside ``value``."""
    found: list[str] = []
    if isinstance(value, str):
        found += ENV_REFERENCE.findall(value) + [m.group(1) for m in SEALED_REFERENCE.finditer(value) if genuine(m)]
    elif isinstance(value, Mapping):
        for item in value.values():
            found += references(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found += references(item)
    return list(dict.fromkeys(found))


class SecretScope:
    """The secrets one node run resolved, and the redaction of their values.

    Created per node call by ``SecretsResource.scope()``; tests may build one directly.
    """

    def __init__(self, allowed_names: list[str] | tuple[str, ...] = ("DP_SECRET_*",), min_length: int = 4,
                 environ: Mapping[str, str] | None = None):
        self.allowed_names = tuple(allowed_names)
        self.min_length = min_length
        self._environ = environ
        self._values: set[str] = set()

    # --- resolving --------------------------------------------------------------------------

    def allowed(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed_names)

    def secret(self, name: str, where: str = "") -> str:
        """The value of environment variable ``name``, remembered for redaction."""
        place = f"{where}: " if where else ""
        if not self.allowed(name):
            raise SecretError(
                f"{place}${{env:{name}}} is not an allowed secret name; the `secrets` resource "
                f"allows {', '.join(self.allowed_names) or 'none'} (set allowed_names to change it)"
            )
        environ = os.environ if self._environ is None else self._environ
        value = environ.get(name)
        if value is None or value == "":
            raise SecretError(f"{place}environment variable {name} is not set (referenced as ${{env:{name}}})")
        if len(value) < self.min_length:
            raise SecretError(
                f"{place}the value of {name} is shorter than {self.min_length} characters, too short "
                "to be redacted from logs reliably"
            )
        self.add(value)
        return value

    def resolve(self, value: Any, where: str = "") -> Any:
        """``value`` with every sealed reference (one the spec's author wrote) replaced by the secret.

        Plain ``${env:NAME}`` text is left as it is: it came from data, not from the author.
        """
        if isinstance(value, str):
            return SEALED_REFERENCE.sub(lambda m: self.secret(m.group(1), where) if genuine(m) else m.group(0), value)
        if isinstance(value, Mapping):
            return {key: self.resolve(item, f"{where}.{key}" if where else str(key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, tuple):
            return tuple(self.resolve(item, where) for item in value)
        return value

    def resolve_written(self, value: Any, where: str = "") -> Any:
        """``resolve`` for text the deployment's operator wrote whole (never templated), e.g. MCP config."""
        if isinstance(value, str):
            return self.resolve(seal_written(value), where)
        if isinstance(value, Mapping):
            return {k: self.resolve_written(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve_written(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    # --- redacting --------------------------------------------------------------------------

    def add(self, value: str) -> None:
        """Remember ``value`` (and its common encodings) as a secret to redact."""
        if not value:
            return
        forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1],
                 base64.b64encode(value.encode()).decode().rstrip("=")}
        self._values.update(f for f in forms if len(f) >= min(self.min_length, len(value)))

    def add_basic_auth(self, username: str, password: str) -> None:
        self.add(password)
        self.add(base64.b64encode(f"{username}:{password}".encode()).decode())

    @property
    def active(self) -> bool:
        return bool(self._values)

    def holds_secret(self, text: str) -> bool:
        """Whether ``text`` contains a resolved secret (in any of its remembered forms)."""
        return isinstance(text, str) and any(value in text for value in self._values)

    def redact(self, text: str) -> str:
        """``text`` without any resolved secret (and with sealed references shown as written)."""
        if not isinstance(text, str):
            return text
        text = as_written(text)
        if not self._values:
            return text
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def redact_value(self, value: Any) -> Any:
        """``value`` with secrets removed from every string inside it (dicts, lists, frames)."""
        if not self._values:
            return as_written(value)
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, bytes):
            return self.redact(value.decode("utf-8", "replace")).encode()
        if isinstance(value, Mapping):
            return {self.redact(k) if isinstance(k, str) else k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.redact_value(v) for v in value)
        frame_type = _frame_type()
        if frame_type is not None and isinstance(value, frame_type):
            out = value.copy()
            out.columns = [self.redact(c) if isinstance(c, str) else c for c in out.columns]
            for column in out.columns:
                if out[column].dtype == object or str(out[column].dtype).startswith("str"):
                    out[column] = out[column].map(self.redact_value)
            return out
        return value

    def safe_error(self, exc: BaseException, where: str = "") -> Exception:
        """An exception to raise instead of ``exc``: same type when possible, message redacted.

        Raise it ``from None``: the original (whose message, arguments or cause may hold a
        secret) must not travel with it into Dagster's error record.
        """
        message = self.redact(str(exc))
        if where and not message.startswith(where):
            message = f"{where}: {message}"
        try:
            rebuilt = type(exc)(message)
        except Exception:  # noqa: BLE001 - exception types with other constructors
            rebuilt = _same_type(exc, message)
        if isinstance(rebuilt, Exception) and str(rebuilt) == message:
            return rebuilt
        return ToolError(f"{type(exc).__name__}: {message}")


    @contextmanager
    def logs_redacted(self) -> Iterator[None]:
        """While open, records of HTTP/MCP client libraries (httpx logs every URL at INFO) are redacted."""
        _LOG_FILTER.install()
        _LOG_FILTER.scopes.add(self)
        try:
            yield
        finally:
            _LOG_FILTER.scopes.discard(self)


class _RedactingFilter(logging.Filter):
    """A filter on the client libraries' loggers that removes the active scopes' secrets."""

    def __init__(self) -> None:
        super().__init__()
        self.scopes: weakref.WeakSet[SecretScope] = weakref.WeakSet()

    def install(self) -> None:
        names = set(LIBRARY_LOGGERS) | {n for n in list(logging.root.manager.loggerDict)
                                        if n.split(".")[0] in LIBRARY_LOGGERS}
        for name in names:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        scopes = [scope for scope in list(self.scopes) if scope.active]
        if not scopes:
            return True
        message = record.getMessage()
        redacted = message
        for scope in scopes:
            redacted = scope.redact(redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            for scope in scopes:
                text = scope.redact(text)
            record.exc_text = text
        return True


LIBRARY_LOGGERS = ("httpx", "httpcore", "httpx2", "httpcore2", "mcp", "anyio", "urllib3")
_LOG_FILTER = _RedactingFilter()


def _same_type(exc: BaseException, message: str) -> BaseException | None:
    """An exception of ``exc``'s type whose constructor takes more than a message (``HttpStatusError``):
    made without calling it, keeping its attributes (callers use ``response``), with ``message`` as
    its only argument. The caller keeps it only if it prints as ``message``."""
    try:
        rebuilt = type(exc).__new__(type(exc))
        BaseException.__init__(rebuilt, message)
        rebuilt.__dict__.update({k: v for k, v in vars(exc).items() if not k.startswith("__")})
        return rebuilt
    except Exception:  # noqa: BLE001 - types that cannot be made this way fall back to ToolError
        return None


class ToolError(RuntimeError):
    """A tool or agent node failed; the message is already free of secrets."""


def _frame_type() -> type | None:
    import sys

    pandas = sys.modules.get("pandas")
    return pandas.DataFrame if pandas is not None else None


class SecretsResource(dg.ConfigurableResource):
    """Which environment variables specs may reference as ``${env:NAME}``, resolved at run time."""

    allowed_names: list[str] = Field(
        default_factory=lambda: ["DP_SECRET_*"],
        description="Glob patterns of environment variable names that specs may reference as "
        "secrets (`${env:NAME}`). Anything else is refused.",
    )
    min_length: int = Field(
        default=4, ge=1, description="Shortest secret value accepted (shorter ones cannot be redacted safely)."
    )

    def scope(self) -> SecretScope:
        return SecretScope(list(self.allowed_names), self.min_length)


def scope_for(resources: Mapping[str, Any]) -> SecretScope:
    """The node's secret scope: from the ``secrets`` resource, or the defaults when none is wired."""
    resource = resources.get("secrets")
    return resource.scope() if resource is not None else SecretScope()
