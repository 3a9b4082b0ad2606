"""The proxy's settings: the ``DP_PROXY_*`` variables of :mod:`dp_settings` plus fixed limits.

They are read only when :meth:`ProxySettings.from_env` runs (``python -m dp_proxy serve``):

- ``DP_PROXY_UPSTREAM``: the webserver behind the proxy (``http://127.0.0.1:3000``).
- ``DP_PROXY_USERS``: ``name:scrypt:...`` entries (HTTP Basic).
- ``DP_PROXY_TOKEN``: one or more bearer tokens, comma separated (for scripts and other tools).
- ``DP_PROXY_ALLOWED_ORIGINS``: origins allowed to send mutations and open WebSockets, comma
  separated (``https://dagster.example.com``). Unset: only the proxy's own origin (the ``Host``
  the browser used).
- ``DP_PROXY_GROUPS``: the users' groups, for roles granted to a group (``analysts=ann bob;ops=carol``).
- ``DP_PROXY_CSRF_HEADER``: the custom header that scripts send instead of an Origin
  (default ``X-Dagster-Request``).
- ``DP_PROXY_LOGIN_BURST`` / ``DP_PROXY_LOGIN_PER_MINUTE`` / ``DP_PROXY_LOGIN_LOCKOUT_SECONDS``:
  failed logins a client may make at once, how fast that allowance comes back, and how long an
  exhausted client is locked out (429).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from dp_proxy.auth import parse_users
from dp_proxy.oidc import OidcSettings
from dp_settings import load
from dp_settings.groups import ProxySettings as ProxyVariables


def parse_groups(text: str) -> dict[str, list[str]]:
    """``analysts=ann bob;ops=carol`` -> ``{"analysts": ["ann", "bob"], "ops": ["carol"]}``."""
    groups: dict[str, list[str]] = {}
    for part in text.split(";"):
        name, sep, members = part.partition("=")
        if not part.strip():
            continue
        if not sep or not name.strip():
            raise ValueError(f"DP_PROXY_GROUPS: {part.strip()[:80]!r} is not GROUP=USER USER")
        groups.setdefault(name.strip(), []).extend(members.split())
    return groups


class ProxySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream: str = Field(description="Base URL of the Dagster webserver behind the proxy.")
    users: dict[str, str] = Field(default_factory=dict, description="User name -> scrypt hash (HTTP Basic).")
    tokens: list[SecretStr] = Field(default_factory=list, description="Bearer tokens.")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to mutate and open WebSockets; empty: same origin only.",
    )
    csrf_header: str = Field(
        default="X-Dagster-Request",
        description="Header a non-browser client sends with mutations when it sends no Origin.",
    )
    realm: str = "dp-platform"
    connect_timeout_seconds: float = Field(default=10, gt=0)
    read_timeout_seconds: float = Field(default=300, gt=0)
    request_timeout_seconds: float = Field(
        default=60, gt=0, description="A client must send a whole request (headers, body) within."
    )
    login_burst: int = Field(default=10, ge=1, description="Failed logins a client may make at once.")
    login_per_minute: float = Field(
        default=2, gt=0, description="Failed logins per minute a client regains after the burst."
    )
    login_lockout_seconds: float = Field(
        default=60, ge=0, description="How long a client that used its failed logins is locked out."
    )
    password_check_threads: int = Field(
        default=2, ge=1, description="Password hashes computed at once (each costs ~16 MiB, CPU)."
    )
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="Group -> its users (DP_PROXY_GROUPS), for roles granted to groups."
    )
    roles: bool = Field(
        default=False, description="Check each GraphQL request against the caller's roles (DP_AUTH_ENFORCE)."
    )
    store_url: SecretStr | None = Field(default=None, description="The flow store holding grants and tokens.")
    identity_key: SecretStr | None = Field(
        default=None, description="Key to sign the caller's identity with for the server behind (DP_AUTH_IDENTITY_KEY)."
    )
    oidc: OidcSettings | None = Field(default=None, description="OpenID Connect login (DP_PROXY_OIDC_*).")

    @field_validator("upstream")
    @classmethod
    def _http_upstream(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"upstream {value!r} must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("allowed_origins")
    @classmethod
    def _normalise_origins(cls, value: list[str]) -> list[str]:
        return [origin.strip().rstrip("/").lower() for origin in value if origin.strip()]

    def require_credentials(self) -> None:
        """Refuse to run open: a proxy without users or tokens would let everyone in."""
        if self.roles and self.store_url is None:
            raise ValueError("roles at the proxy need the flow store (DP_STORE_URL) that holds the grants")
        if not self.users and not self.tokens and not self.roles and self.oidc is None:
            raise ValueError(
                "the proxy has no credentials: set DP_PROXY_USERS (see `python -m "
                "dp_proxy hash-password`) or DP_PROXY_TOKEN"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ProxySettings:
        """The settings of ``environ`` (default: this process's environment), read now."""
        platform = load(environ)
        roles: dict[str, object] = {}
        if platform.auth.enforce:
            roles = {"roles": True, "store_url": platform.store_url(), "identity_key": platform.auth.identity_key}
        return cls.from_variables(platform.proxy, **{**roles, **overrides})

    @classmethod
    def from_variables(cls, proxy: ProxyVariables, **overrides: object) -> ProxySettings:
        """From the platform's ``proxy`` settings group; ``overrides`` (not ``None``) win."""
        values: dict[str, object] = {
            "upstream": proxy.upstream,
            "users": parse_users(proxy.users.get_secret_value() if proxy.users else ""),
            "tokens": proxy.tokens(),
            "allowed_origins": proxy.allowed_origins,
            "groups": parse_groups(proxy.groups or ""),
        }
        for field in ("csrf_header", "login_burst", "login_per_minute", "login_lockout_seconds"):
            if getattr(proxy, field) is not None:
                values[field] = getattr(proxy, field)
        if proxy.oidc_issuer:
            values["oidc"] = _oidc_of(proxy)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls.model_validate(values)


def _oidc_of(proxy: ProxyVariables) -> OidcSettings:
    missing = [
        name
        for name, value in (
            ("DP_PROXY_OIDC_CLIENT_ID", proxy.oidc_client_id),
            ("DP_PROXY_OIDC_REDIRECT_URL", proxy.oidc_redirect_url),
            ("DP_PROXY_SESSION_KEY", proxy.session_key),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"DP_PROXY_OIDC_ISSUER is set: set {', '.join(missing)} too (docs/deploy.md)")
    optional = {"groups_claim": proxy.oidc_groups_claim, "session_hours": proxy.session_hours}
    return OidcSettings(
        issuer=proxy.oidc_issuer or "",
        client_id=proxy.oidc_client_id or "",
        client_secret=proxy.oidc_client_secret,
        redirect_url=proxy.oidc_redirect_url or "",
        session_key=proxy.session_key or SecretStr(""),
        **{key: value for key, value in optional.items() if value is not None},
    )
