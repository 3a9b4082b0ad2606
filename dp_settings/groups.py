"""The settings groups: the variables under one prefix (``DP_SMTP_*``, ``DP_PROXY_*``...), each a
field of :class:`dp_settings.model.PlatformSettings`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from dp_settings.fields import CommaList, Unset, secret_value, setting, split_commas


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
        "Comma-separated networks (CIDR) that HTTP nodes may reach although they are private or loopback "
        "(metadata and link-local addresses stay refused inside them).",
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
    allowed_networks: CommaList = setting(
        "Comma-separated networks (CIDR) the endpoint may be in although they are private or loopback "
        "(a local model server: `127.0.0.1/32`); HTTP nodes are not opened by it.",
        default=[],
        default_text="none",
    )


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
        return split_commas(secret_value(self.token) or "")


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
