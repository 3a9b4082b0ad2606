"""The platform's settings: every ``DP_*`` environment variable, typed, described and defaulted.

One model, read once where a process starts (the code location, the webhook receiver, the proxy,
the CLI, a Celery worker, ``python -m dp_deploy``) and passed down. Each field names its variable
(``DP_`` + the field name, or ``DP_<GROUP>_<FIELD>`` inside a group such as ``smtp``); the
generated table in ``docs/settings.md`` lists them all.

Empty values keep the meaning they always had: a variable set to ``""`` counts as unset, except
``DP_FLOWS_DIR`` (empty turns the import of spec files off) and the few noted on their field.
Values that hold a password or token are ``SecretStr``: they never show in a ``repr`` or a log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator
from pydantic.json_schema import JsonDict
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The repository's root: its ``flows/`` is the default spec folder.
REPO_ROOT = Path(__file__).resolve().parent.parent
EXECUTORS = ("in_process", "multiprocess", "celery")


def _empty_is_unset(value: Any) -> Any:
    return None if value == "" else value


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


#: An optional value for which ``VAR=""`` means the same as not setting ``VAR``.
Unset = BeforeValidator(_empty_is_unset)
#: A comma-separated list (``a, b,c``); empty parts are dropped, ``""`` is the empty list.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


def setting(description: str, default: Any = None, *, default_text: str | None = None, **extra: Any) -> Any:
    """A field with its description and, when the real default is computed, how docs show it."""
    schema_extra: JsonDict | None = {"default_text": default_text} if default_text else None
    return Field(default=default, description=description, json_schema_extra=schema_extra, **extra)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class Group(BaseModel):
    """A group of settings under one prefix (``DP_SMTP_*``); unknown variables are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class StoreSettings(Group):
    """The flow store (published specs and their versions)."""

    url: Annotated[SecretStr | None, Unset] = setting(
        "SQLAlchemy URL of the flow store.", default_text="SQLite file `store.db` in DP_HOME"
    )


class HttpSettings(Group):
    """HTTP nodes and tools."""

    allowed_networks: CommaList = setting(
        "Comma-separated networks (CIDR) that HTTP nodes may reach although they are private or loopback.",
        default=[],
        default_text="none",
    )


class DbSettings(Group):
    """Named database connections: ``DP_DB_<NAME>_URL`` and ``DP_DB_<NAME>_QUERY_URL``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    writable_sql: CommaList = setting(
        "Connections whose user SQL may write (comma separated); adds to the databases resource's `writable_sql`.",
        default=[],
        default_text="none",
    )

    def url(self, name: str) -> str | None:
        """``DP_DB_<NAME>_URL``: the connection's SQLAlchemy URL (empty: unset)."""
        return self._variable(f"{name}_url")

    def query_url(self, name: str) -> str | None:
        """``DP_DB_<NAME>_QUERY_URL``: the read-only login user SQL runs under (empty: unset)."""
        return self._variable(f"{name}_query_url")

    def _variable(self, suffix: str) -> str | None:
        return (self.model_extra or {}).get(suffix.lower()) or None

    def __repr_args__(self) -> Any:  # connection URLs hold passwords
        yield "writable_sql", self.writable_sql
        yield "connections", sorted(self.model_extra or {})


class CelerySettings(Group):
    """The Celery executor and its workers."""

    broker: str | None = setting(
        "Celery broker URL, read when a Celery run starts.", default_text="none (required by Celery flows)"
    )
    backend: str | None = setting(
        "Persistent Celery result backend URL, read when a Celery run starts.",
        default_text="none (required by Celery flows)",
    )
    config: Annotated[str | None, Unset] = setting(
        "The worker YAML both the workers and the executor read (`deploy/celery-worker.yaml`).",
        default_text="built-in defaults",
    )

    def __repr_args__(self) -> Any:  # broker URLs hold passwords
        yield "config", self.config


class DuckDbSettings(Group):
    """The DuckDB engine (`policies.engine: duckdb`), run inside each step's process."""

    memory_limit: Annotated[str | None, Unset] = setting(
        "Memory DuckDB may use in one step (DuckDB's own spelling: `2GB`, `512MiB`); beyond it, it spills or fails.",
        default_text="2GB",
    )
    threads: Annotated[int | None, Unset] = setting(
        "Threads DuckDB uses in one step.", default_text="the machine's cores", ge=1
    )


class RabbitMqSettings(Group):
    """RabbitMQ, when it is the Celery broker."""

    consumer_timeout_seconds: Annotated[float | None, Unset] = setting(
        "The broker's `consumer_timeout` in seconds, checked against the longest step.",
        default_text="unknown (not checked)",
    )


class SmtpSettings(Group):
    """The one SMTP server for `SendNotification` nodes and `notify:` messages."""

    host: Annotated[str | None, Unset] = setting("SMTP server; unset: e-mail is not configured.")
    port: Annotated[int | None, Unset] = setting("SMTP port.", default_text="25, 465 (ssl) or 587 (starttls)", ge=0)
    security: Annotated[Literal["none", "starttls", "ssl"] | None, Unset] = setting(
        "none, starttls or ssl.", default_text="starttls"
    )
    user: Annotated[str | None, Unset] = setting("SMTP login; unset: no login.")
    password: Annotated[SecretStr | None, Unset] = setting("SMTP password.")
    from_: Annotated[str | None, Unset] = setting("Sender address.", default_text="dp-platform@localhost", alias="from")
    starttls: Annotated[str | None, Unset] = setting(
        "Deprecated: DP_SMTP_SECURITY (true, 1 or yes: starttls; anything else: none)."
    )

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    @field_validator("security", mode="before")
    @classmethod
    def _known_security(cls, value: Any) -> Any:
        if value and value not in ("none", "starttls", "ssl"):
            raise ValueError(f"DP_SMTP_SECURITY must be none, starttls or ssl, not {value!r}")
        return value


class LlmSettings(Group):
    """The chat-completions endpoint of `LlmAgent` nodes."""

    base_url: Annotated[str | None, Unset] = setting("Chat-completions API base URL (…/v1); required by LLM nodes.")
    model: Annotated[str | None, Unset] = setting("Default model name (a node's `model` wins).")
    api_key: Annotated[SecretStr | None, Unset] = setting("API key, sent as a bearer token.")


class ProxySettings(Group):
    """The authenticating proxy in front of the Dagster webserver (`python -m dp_proxy`)."""

    upstream: str = setting(
        "The webserver behind the proxy (`--upstream` wins); empty is refused.",
        default="http://127.0.0.1:3000",
    )
    users: Annotated[SecretStr | None, Unset] = setting(
        "`NAME:scrypt:...` entries, comma separated (`python -m dp_proxy hash-password NAME`)."
    )
    token: Annotated[SecretStr | None, Unset] = setting("Bearer token(s) for scripts, comma separated.")
    groups: Annotated[str | None, Unset] = setting(
        'Groups of the proxy\'s users for roles: `GROUP=USER USER;GROUP=USER` (docs/security.md, "Roles").',
        default_text="none",
    )
    allowed_origins: CommaList = setting(
        "Origins allowed to send mutations and open WebSockets, comma separated.",
        default=[],
        default_text="the proxy's own origin only",
    )
    csrf_header: Annotated[str | None, Unset] = setting(
        "Header scripts send with mutations instead of an Origin.", default_text="X-Dagster-Request"
    )
    login_burst: Annotated[int | None, Unset] = setting("Failed logins a client may make at once.", default_text="10")
    login_per_minute: Annotated[float | None, Unset] = setting(
        "Failed logins per minute a client regains after the burst.", default_text="2"
    )
    login_lockout_seconds: Annotated[float | None, Unset] = setting(
        "How long a client that used its failed logins is locked out.", default_text="60"
    )
    oidc_issuer: Annotated[str | None, Unset] = setting(
        "OpenID Connect provider to sign people in with (its issuer URL; discovery at "
        "`/.well-known/openid-configuration`); unset: Basic and token logins only.",
        default_text="none",
    )
    oidc_client_id: Annotated[str | None, Unset] = setting("The proxy's client id at the OpenID Connect provider.")
    oidc_client_secret: Annotated[SecretStr | None, Unset] = setting(
        "The proxy's client secret at the OpenID Connect provider (unset: a public client, PKCE only)."
    )
    oidc_redirect_url: Annotated[str | None, Unset] = setting(
        "The callback URL registered at the provider: the proxy's public URL + `/_dp/oidc/callback`."
    )
    oidc_groups_claim: Annotated[str | None, Unset] = setting(
        "The ID token claim that lists the user's groups (for roles granted to groups).", default_text="groups"
    )
    session_key: Annotated[SecretStr | None, Unset] = setting(
        "Key the proxy signs its login cookies with; required with `DP_PROXY_OIDC_ISSUER`."
    )
    session_hours: Annotated[float | None, Unset] = setting(
        "How long an OpenID Connect sign-in lasts before the provider is asked again.", default_text="8"
    )

    def tokens(self) -> list[str]:
        return _comma_list(_secret(self.token) or "")


class AuthSettings(Group):
    """Roles (docs/security.md, "Roles"): who a command or server acts for."""

    token: Annotated[SecretStr | None, Unset] = setting(
        "Service token `dp` acts with against the store (`dp roles token-create`); unset: the local admin, "
        "as whoever holds the store's database login already is.",
        default_text="none",
    )
    enforce: Annotated[bool | None, Unset] = setting(
        "Check roles at the proxy and in the designer (callers named by the proxy or by a service token); "
        "off: the embedded default's single local admin, no login.",
        default_text="off",
    )
    identity_key: Annotated[SecretStr | None, Unset] = setting(
        "Key the proxy signs the caller's identity with for the servers behind it (the designer); "
        "required when `DP_AUTH_ENFORCE` is on there.",
        default_text="none",
    )


class WebhookSettings(Group):
    """The webhook receiver's tokens and the notification webhooks.

    ``DP_WEBHOOK_TOKEN_<FLOW_ID>`` opens one flow, ``DP_WEBHOOK_TOKEN`` every flow without its
    own; ``DP_WEBHOOK_<NAME>_URL`` is the URL of notification webhook ``<name>``.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    token: Annotated[SecretStr | None, Unset] = setting(
        "Bearer token of every flow without its own `DP_WEBHOOK_TOKEN_<FLOW_ID>`; unset: refused."
    )

    def flow_token(self, flow_id: str) -> str | None:
        """``DP_WEBHOOK_TOKEN_<FLOW_ID>`` (empty: unset)."""
        return (self.model_extra or {}).get(f"token_{flow_id}".lower()) or None

    def url(self, name: str) -> str | None:
        """``DP_WEBHOOK_<NAME>_URL`` (empty: unset)."""
        return (self.model_extra or {}).get(f"{name}_url".lower()) or None

    def urls(self) -> dict[str, str]:
        """Every notification webhook set: upper-case ``<NAME>`` -> URL (empty ones left out)."""
        return {
            key[: -len("_url")].upper(): value
            for key, value in (self.model_extra or {}).items()
            if key.endswith("_url") and value
        }

    def __repr_args__(self) -> Any:  # tokens and webhook URLs are secrets
        yield "variables", sorted(self.model_extra or {})


class DagsterSettings(Group):
    """How our commands and the receiver reach the Dagster webserver."""

    graphql_url: Annotated[str | None, Unset] = setting(
        "Dagster GraphQL endpoint for `dp launch`, `dp status` and the receiver's launches.",
        default_text="http://127.0.0.1:3000/graphql",
    )
    token: Annotated[SecretStr | None, Unset] = setting(
        "Bearer token for the authenticating proxy in front of the webserver."
    )


class PlatformSettings(BaseSettings):
    """Every setting of the platform, from the environment (see the module docstring)."""

    model_config = SettingsConfigDict(
        env_prefix="DP_",
        env_nested_delimiter="_",
        env_nested_max_split=1,  # DP_PROXY_LOGIN_BURST is proxy.login_burst
        extra="ignore",
        frozen=True,
    )

    home: Annotated[str | None, Unset] = setting(
        "The local home: SQLite flow store, run outputs and data root of the embedded default.",
        default_text="./.dp_home",
    )
    flows_dir: str | None = setting(
        "Spec files imported into the store when the code location loads; empty: no import.",
        default_text="the repository's flows/",
    )
    data_dir: Annotated[str | None, Unset] = setting(
        "The root that file nodes read from and write to.", default_text="DP_HOME/data"
    )
    outputs_url: Annotated[str | None, Unset] = setting(
        "Where run outputs are kept: a folder or any fsspec URL.", default_text="DP_HOME/outputs"
    )
    tables_url: Annotated[SecretStr | None, Unset] = setting(
        "PostgreSQL URL of `storage.format: table` outputs (read when such a flow runs).",
        default_text="none (required by table outputs)",
    )
    executor: Annotated[Literal["in_process", "multiprocess", "celery"] | None, Unset] = setting(
        "Executor of every flow whose spec names none: in_process, multiprocess or celery.",
        default_text="in_process",
    )
    sensor_interval_seconds: Annotated[int | None, Unset] = setting(
        "Seconds between sensor ticks of triggers that declare no interval (a whole number, ≥ 1).",
        default_text="30",
    )
    events_url: Annotated[SecretStr | None, Unset] = setting(
        "Event bus: `redis://...[?stream=NAME]` or a SQLAlchemy URL.", default_text="the flow store"
    )
    launches_url: Annotated[SecretStr | None, Unset] = setting(
        "Database of the receiver's launch ledger.", default_text="the flow store"
    )
    code_location: Annotated[str | None, Unset] = setting(
        "Code location name for launches.", default_text="the one that holds the flow"
    )
    mcp_config: Annotated[str | None, Unset] = setting(
        "YAML/JSON file of the MCP servers flows may use.", default_text="none"
    )
    allowed_secret_names: CommaList = setting(
        "Glob patterns (comma separated) of the variables a spec may reference as `${env:NAME}`.",
        default=[],
        default_text="DP_SECRET_*",
    )
    webserver_url: Annotated[str | None, Unset] = setting(
        "Base URL of the Dagster UI, for links in notifications.", default_text="no link"
    )
    invoke_max_wait_seconds: Annotated[float | None, Unset] = setting(
        "Longest a `POST /flows/{id}/invoke` or `dp invoke` waits for its run before answering 202 "
        "with the run id (a caller's own timeout is capped at it).",
        default_text="60",
        gt=0,
        le=3600,
    )
    invoke_max_rows: Annotated[int | None, Unset] = setting(
        "Rows of each result node that an invoke answer carries (the rest is in the run's outputs).",
        default_text="1000",
        ge=0,
        le=100_000,
    )
    dagster_home: Annotated[str | None, Unset] = setting(
        "Dagster's instance folder (`dagster.yaml`); Dagster reads it too.",
        default_text="none",
        validation_alias="DAGSTER_HOME",
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    db: DbSettings = Field(default_factory=DbSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    rabbitmq: RabbitMqSettings = Field(default_factory=RabbitMqSettings)
    duckdb: DuckDbSettings = Field(default_factory=DuckDbSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    dagster: DagsterSettings = Field(default_factory=DagsterSettings)

    # --- where things are (the working directory is read when asked, as before) --------------

    def dp_home(self) -> Path:
        return Path(self.home or Path.cwd() / ".dp_home").resolve()

    def flows_folder(self) -> Path | None:
        """The folder of spec files to import on load; ``DP_FLOWS_DIR=""`` turns the import off."""
        if self.flows_dir is None:
            return REPO_ROOT / "flows"
        return Path(self.flows_dir).resolve() if self.flows_dir else None

    def store_url(self) -> str:
        return _secret(self.store.url) or f"sqlite:///{self.dp_home() / 'store.db'}"

    def data_folder(self) -> Path:
        return Path(self.data_dir or self.dp_home() / "data").resolve()

    def outputs_base(self) -> str:
        return self.outputs_url or str(self.dp_home() / "outputs")

    def dagster_home_folder(self) -> Path | None:
        return Path(self.dagster_home).resolve() if self.dagster_home else None

    def invoke_wait_cap(self) -> float:
        """``DP_INVOKE_MAX_WAIT_SECONDS``, else 60 s."""
        return self.invoke_max_wait_seconds or 60.0

    def invoke_row_limit(self) -> int:
        """``DP_INVOKE_MAX_ROWS``, else 1,000."""
        return 1000 if self.invoke_max_rows is None else self.invoke_max_rows

    def events_bus_url(self) -> str:
        """``DP_EVENTS_URL``, else the flow store's database."""
        return _secret(self.events_url) or self.store_url()

    def launch_ledger_url(self) -> str:
        """``DP_LAUNCHES_URL``, else the flow store's database."""
        return _secret(self.launches_url) or self.store_url()

    def default_executor(self) -> str:
        return self.executor or "in_process"

    def sensor_interval(self, default: int = 30) -> int:
        """``DP_SENSOR_INTERVAL_SECONDS``, else ``default``."""
        return self.sensor_interval_seconds or default

    @field_validator("executor", mode="before")
    @classmethod
    def _known_executor(cls, value: Any) -> Any:
        if value and value not in EXECUTORS:
            raise ValueError(f"DP_EXECUTOR={value!r}: choose one of {', '.join(EXECUTORS)}")
        return value

    @field_validator("sensor_interval_seconds", mode="before")
    @classmethod
    def _whole_seconds(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"DP_SENSOR_INTERVAL_SECONDS={value!r} is not a whole number of seconds") from None
        if isinstance(value, int) and value < 1:
            raise ValueError("DP_SENSOR_INTERVAL_SECONDS must be at least 1 second")
        return value
