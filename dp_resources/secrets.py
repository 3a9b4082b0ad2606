"""Secrets: the one resolver of ``${env:NAME}`` references, and the redaction of their values.

``${env:NAME}`` is the only way a spec refers to a secret (a node param such as ``"Bearer
${env:DP_SECRET_API_TOKEN}"``, a ``notify:`` webhook, a ``SendNotification`` target). Every node
type, trigger and resource that reads one goes through this module, which holds the whole policy:

- **Only the author's text counts.** Node params are rendered in steps (flow params by the runtime,
  upstream data and agent arguments inside the node), so by the time a node runs the author's text
  and the text templating put in are one string, and a caller could compose ``$`` + ``{env:NAME}``.
  The spec renderer therefore seals each reference in the author's literal text before any template
  is filled (``seal_written``: ``$[dp-secret:NAME:MAC]``, an HMAC under a key made once per process
  and never stored or sent), every substituted value goes through ``as_written`` (which unseals any
  seal in it), and ``SecretScope.resolve`` resolves sealed references only. Plain ``${env:NAME}``
  text is data and stays literal. ``resolve_written`` is for text nobody but the author or the
  operator wrote (a ``notify:`` entry, MCP server config).
- **Only allowed names.** A reference resolves only when its name matches the allow-list (default
  ``DP_SECRET_*``; ``DP_ALLOWED_SECRET_NAMES`` or the ``secrets`` resource change it), so an author
  cannot read ``AWS_SECRET_ACCESS_KEY`` or the platform's database URL by naming it.
- **Never shown.** The ``SecretScope`` that resolved a value redacts it (and its URL-, JSON- and
  base64-encoded forms) from outputs, metadata, errors and the client libraries' log records.
- **Never sent elsewhere.** Credential headers and headers holding a resolved value are dropped
  when a redirect leaves the first origin (``without_credentials``, used by ``HttpResource``).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from dp_settings import current

if TYPE_CHECKING:  # pandas is imported by whoever made the frame, never by this module
    import pandas as pd

REDACTED = "***"
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
SEALED_REFERENCE = re.compile(r"\$\[dp-secret:([A-Za-z_][A-Za-z0-9_]*):([0-9a-f]{32})\]")
DEFAULT_ALLOWED_NAMES = ("DP_SECRET_*",)
ALLOWED_NAMES_VARIABLE = "DP_ALLOWED_SECRET_NAMES"
# Headers that carry credentials by convention; they never follow a redirect to another origin.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)


def allowed_secret_names() -> tuple[str, ...]:
    """The deployment's allow-list: ``DP_ALLOWED_SECRET_NAMES`` (comma-separated globs), else ``DP_SECRET_*``."""
    return tuple(current().allowed_secret_names) or DEFAULT_ALLOWED_NAMES


class SecretError(ValueError):
    """A reference that may not or cannot be resolved; the message names the variable, never a value."""


# --- sealing: the author's references told apart from look-alike data --------------------------

# One random key per process, made on first use (no work at import). A forked child keeps it, so
# params rendered before a fork (a node under timeout_seconds) still resolve in the child.
_key: list[bytes] = []
_key_lock = threading.Lock()


def _mac(name: str) -> str:
    with _key_lock:
        if not _key:
            _key.append(os.urandom(32))
    return hmac.new(_key[0], name.encode(), hashlib.sha256).hexdigest()[:32]


def seal_written(text: str) -> str:
    """Text the spec author (or the operator) wrote, each ``${env:NAME}`` in it sealed as theirs."""
    return ENV_REFERENCE.sub(lambda m: f"$[dp-secret:{m.group(1)}:{_mac(m.group(1))}]", text)


def genuine(match: re.Match) -> bool:
    """Whether a ``SEALED_REFERENCE`` match was sealed by this process."""
    return hmac.compare_digest(match.group(2), _mac(match.group(1)))


def sealed_names(text: str) -> Iterator[str]:
    """Names of the genuine sealed references in ``text``."""
    for match in SEALED_REFERENCE.finditer(text):
        if genuine(match):
            yield match.group(1)


def as_written(value: Any) -> Any:
    """``value`` with every sealed reference inside its strings shown as plain ``${env:NAME}`` text.

    Applied to everything a template substitutes (so data never carries a seal into params) and
    to text shown or sent without resolving (prompts, messages, errors).
    """
    if isinstance(value, str):
        if "$[dp-secret:" not in value:
            return value
        return SEALED_REFERENCE.sub(lambda m: "${env:" + m.group(1) + "}", value)
    if isinstance(value, Mapping):
        return {as_written(k) if isinstance(k, str) else k: as_written(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_written(v) for v in value]
    if isinstance(value, tuple):
        return tuple(as_written(v) for v in value)
    return value


def references(value: Any) -> list[str]:
    """Names of every environment variable referenced (written or sealed) anywhere inside ``value``."""
    found: list[str] = []
    if isinstance(value, str):
        found += ENV_REFERENCE.findall(value) + list(sealed_names(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found += references(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found += references(item)
    return list(dict.fromkeys(found))


def without_credentials(headers: Mapping[str, str], sensitive: Collection[str] = ()) -> dict[str, str]:
    """``headers`` minus the conventional credential headers and the ``sensitive`` ones (any case)."""
    drop = CREDENTIAL_HEADERS | {name.lower() for name in sensitive}
    return {name: value for name, value in headers.items() if name.lower() not in drop}


# --- resolving and redacting ---------------------------------------------------------------------


class SecretScope:
    """The secrets one node run (or one notification) resolved, and the redaction of their values.

    Created per call by ``scope_for(resources)`` or ``SecretsResource.scope()``; tests may build
    one directly. ``allowed_names=None`` is the deployment's allow-list (``allowed_secret_names``).
    """

    def __init__(
        self,
        allowed_names: Collection[str] | None = None,
        min_length: int = 4,
        environ: Mapping[str, str] | None = None,
    ):
        self.allowed_names = tuple(allowed_secret_names() if allowed_names is None else allowed_names)
        self.min_length = min_length
        self._environ = environ
        self._values: set[str] = set()

    def allowed(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed_names)

    def secret(self, name: str, where: str = "") -> str:
        """The value of environment variable ``name``, remembered for redaction."""
        place = f"{where}: " if where else ""
        if not self.allowed(name):
            raise SecretError(
                f"{place}${{env:{name}}} is not an allowed secret name; the deployment allows "
                f"{', '.join(self.allowed_names) or 'none'} (name the variable so, or add it to "
                f"{ALLOWED_NAMES_VARIABLE})"
            )
        # Secret values are read here and only here: they are the deployment's variables, named by
        # an allowed reference, and no settings model can list them in advance.
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
            if "$[dp-secret:" not in value:
                return value
            return SEALED_REFERENCE.sub(lambda m: self.secret(m.group(1), where) if genuine(m) else m.group(0), value)
        if isinstance(value, Mapping):
            return {key: self.resolve(item, f"{where}.{key}" if where else str(key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, tuple):
            return tuple(self.resolve(item, where) for item in value)
        return value

    def resolve_written(self, value: Any, where: str = "") -> Any:
        """``resolve`` for text nobody but the author or operator wrote, whole and never templated."""
        if isinstance(value, str):
            return self.resolve(seal_written(value), where)
        if isinstance(value, Mapping):
            return {k: self.resolve_written(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve_written(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def add(self, value: str) -> None:
        """Remember ``value`` (and its common encodings) as a secret to redact."""
        if not value:
            return
        forms = {
            value,
            quote(value, safe=""),
            quote_plus(value),
            json.dumps(value)[1:-1],
            base64.b64encode(value.encode()).decode().rstrip("="),
        }
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

    def sensitive_headers(self, headers: Mapping[str, str]) -> list[str]:
        """Names of the headers holding a resolved secret: they stay on the first origin."""
        return [name for name, value in headers.items() if self.holds_secret(value)]

    def redact(self, text: str) -> str:
        """``text`` without any resolved secret (and with sealed references shown as written)."""
        if not isinstance(text, str):
            return text
        text = as_written(text)
        # Until none is left: a replacement can join its marker and the text beside it into a value
        # again (a secret ``a***`` in ``aa***``). Each replacement removes a character other than
        # ``*`` or shortens the text, so this ends; a value inside the marker itself cannot be removed.
        values = [value for value in sorted(self._values, key=len, reverse=True) if value not in REDACTED]
        while any(value in text for value in values):
            for value in values:
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
        rebuilt: BaseException | None
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
        names = set(LIBRARY_LOGGERS) | {
            n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in LIBRARY_LOGGERS
        }
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


def _frame_type() -> type[pd.DataFrame] | None:
    import sys

    pandas = sys.modules.get("pandas")
    return pandas.DataFrame if pandas is not None else None


def scope_for(resources: Mapping[str, Any]) -> SecretScope:
    """The node's secret scope: from the ``secrets`` resource, or the deployment's defaults."""
    resource = resources.get("secrets")
    return resource.scope() if resource is not None else SecretScope()
