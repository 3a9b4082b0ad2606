"""Notifications: the one resource that sends them, for ``SendNotification`` nodes and ``notify:``.

**Targets.** A webhook is ``${env:NAME}``: the variable holds the URL (a Slack incoming-webhook URL
is its own credential, so it never sits in a spec). It is resolved by the platform's one secret
resolver (``dp_resources.secrets``), under its allow-list, and redacted from every error and log
record. A ``SendNotification`` node may instead name a webhook the deployment configured
(``webhooks`` here, else ``DP_WEBHOOK_<NAME>_URL``): a name of the operator's, like a database
connection's, not a secret reference. E-mail recipients are addresses or ``${env:NAME}``.

**SMTP.** One set of settings: this resource's fields, else ``DP_SMTP_HOST``, ``DP_SMTP_PORT``,
``DP_SMTP_SECURITY`` (none, starttls, ssl; default starttls), ``DP_SMTP_USER``,
``DP_SMTP_PASSWORD`` and ``DP_SMTP_FROM``, read when a message is sent. The field names of the old
``notifier`` resource (``smtp_user``, ``smtp_from``, ``smtp_starttls``) and ``DP_SMTP_STARTTLS``
still work, deprecated.

**Sending.** A node posts through its ``http`` resource (address checks, limits, retries); the
run-status sensors, whose URL is the operator's, post with a plain client that follows no
redirect. A message is tried three times. Errors name the target (``${env:NAME}`` or the webhook's
name), never the URL or a password.

``safe_format`` fills message templates: ``{name}`` and ``{name:format_spec}`` only, from a flat
mapping. Attribute access and indexing (``{x.__class__}``, ``{x[0]}``) are refused, since
``str.format`` would otherwise walk into any object it is given.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import string
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from dp_resources.secrets import ENV_REFERENCE, SecretError, SecretScope, as_written
from dp_settings import current

SmtpSecurity = Literal["none", "starttls", "ssl"]
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
ATTEMPTS = 3
WEBHOOK_NAME = re.compile(r"[A-Za-z0-9_]+")


class NotificationFailed(RuntimeError):
    """A message could not be sent; the text never holds the secret URL or password."""


class NotificationNotConfigured(NotificationFailed):
    """No SMTP server, or a webhook name the deployment does not know."""


class TemplateError(ValueError):
    pass


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new}", FutureWarning, stacklevel=3)


class NotificationsResource(dg.ConfigurableResource):
    """Where notifications go: webhooks, the SMTP server, and the link to a run."""

    webhooks: dict[str, str] = Field(
        default_factory=dict, description="Webhook name -> URL; a name not listed reads DP_WEBHOOK_<NAME>_URL."
    )
    webserver_url: str = Field(
        default="", description="Base URL of the Dagster UI for run links; default DP_WEBSERVER_URL."
    )
    smtp_host: str = Field(default="", description="SMTP server; default DP_SMTP_HOST.")
    smtp_port: int = Field(default=0, ge=0, description="Default DP_SMTP_PORT, else 25/465/587 by security.")
    smtp_security: str = Field(
        default="", description="none, starttls or ssl; default DP_SMTP_SECURITY, else starttls."
    )
    smtp_username: str = Field(default="", description="Default DP_SMTP_USER; empty: no login.")
    smtp_password: str = Field(default="", description="Default DP_SMTP_PASSWORD (pass a dg.EnvVar).")
    sender: str = Field(default="", description="From address; default DP_SMTP_FROM or dp-platform@localhost.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Longest SMTP or webhook exchange.")
    smtp_user: str | None = Field(default=None, description="Deprecated name of smtp_username.")
    smtp_from: str | None = Field(default=None, description="Deprecated name of sender.")
    smtp_starttls: bool | None = Field(
        default=None, description="Deprecated: smtp_security (true: starttls, false: none)."
    )

    # --- where to -------------------------------------------------------------------------

    def run_url(self, run_id: str) -> str | None:
        base = self.webserver_url or current().webserver_url
        return f"{base.rstrip('/')}/runs/{run_id}" if base else None

    def webhook_url(self, target: str, scope: SecretScope, where: str = "webhook") -> str:
        """The URL of ``target``: a sealed ``${env:NAME}`` (resolved by ``scope``) or a configured name."""
        try:
            resolved = scope.resolve(target, where)
        except SecretError as exc:
            raise NotificationNotConfigured(str(exc)) from None
        if resolved != target:
            return resolved
        if ENV_REFERENCE.search(target) or not WEBHOOK_NAME.fullmatch(target):
            raise NotificationNotConfigured(
                f"{where}: '{target}' is neither the author's ${{env:NAME}} nor a webhook name (letters, "
                "digits, _); a reference that data put in is not resolved"
            )
        url = self.webhooks.get(target) or current().webhook.url(target)
        if not url:
            raise NotificationNotConfigured(
                f"{where}: webhook '{target}' is not configured: set DP_WEBHOOK_{target.upper()}_URL or list "
                "it in the notifications resource's `webhooks`"
            )
        scope.add(url)
        return url

    def smtp_server(self) -> SmtpServer:
        """The server: this resource's fields, else the settings (``DP_SMTP_*``), read now."""
        env = current().smtp  # Dagster calls resources with no settings of ours: the ones in force
        if self.smtp_user is not None:
            _deprecated("the notifications resource's smtp_user", "smtp_username")
        if self.smtp_from is not None:
            _deprecated("the notifications resource's smtp_from", "sender")
        if self.smtp_starttls is not None:
            _deprecated("the notifications resource's smtp_starttls", "smtp_security")
        if env.starttls and not env.security:
            _deprecated("DP_SMTP_STARTTLS", "DP_SMTP_SECURITY (none, starttls or ssl)")
        security = (
            self.smtp_security
            or _starttls(self.smtp_starttls)
            or env.security
            or _starttls(env.starttls.lower() in ("1", "true", "yes") if env.starttls else None)
            or "starttls"
        )
        host = self.smtp_host or env.host
        if not host:
            raise NotificationNotConfigured("no SMTP server: set DP_SMTP_HOST or the resource's smtp_host")
        if security not in DEFAULT_PORTS:
            raise NotificationNotConfigured(f"DP_SMTP_SECURITY must be none, starttls or ssl, not '{security}'")
        username = self.smtp_username or self.smtp_user or env.user or ""
        return SmtpServer(
            host=host,
            port=self.smtp_port or env.port or DEFAULT_PORTS[security],
            security=security,  # type: ignore[arg-type]
            username=username,
            password=self._password() if username else "",
            sender=self.sender or self.smtp_from or env.from_ or "dp-platform@localhost",
            timeout=self.timeout_seconds,
        )

    def _password(self) -> str:
        written = self.smtp_password
        whole = ENV_REFERENCE.fullmatch(written)
        if whole:  # the old `notifier` resource took "${env:NAME}": the operator's own reference
            _deprecated("an ${env:NAME} smtp_password", "dg.EnvVar('NAME')")
            return SecretScope([whole.group(1)], min_length=1).resolve_written(written, "smtp_password")
        password = current().smtp.password
        return written or (password.get_secret_value() if password else "")

    # --- sending ----------------------------------------------------------------------------

    def post_webhook(
        self,
        target: str,
        payload: Mapping[str, Any],
        *,
        http: Any = None,
        scope: SecretScope | None = None,
        where: str = "webhook",
    ) -> int:
        """POST ``payload`` as JSON to ``target``; return the status. ``http``: a node's ``HttpResource``."""
        scope = scope or SecretScope()
        url = self.webhook_url(target, scope, where)
        scope.add(url.split("?", 1)[0])
        shown = as_shown(target)
        with scope.logs_redacted():  # httpx logs every URL it posts to
            if http is not None:
                return self._post_through(http, url, payload, shown, scope)
            return self._post_plain(url, payload, shown, scope)

    def _post_through(self, http: Any, url: str, payload: Mapping[str, Any], shown: str, scope: SecretScope) -> int:
        from dp_resources.http import HttpStatusError, send_with_retries

        try:
            return send_with_retries(http, "POST", url, json=dict(payload), retries=ATTEMPTS - 1).status_code
        except HttpStatusError as exc:
            problem = f"HTTP {exc.response.status_code}"
        except Exception as exc:  # noqa: BLE001 - reported by the target's name, redacted
            problem = f"{type(exc).__name__}: {scope.redact(str(exc))}"
        raise NotificationFailed(f"webhook {shown} refused the notification: {problem}")

    def _post_plain(self, url: str, payload: Mapping[str, Any], shown: str, scope: SecretScope) -> int:
        import httpx

        problem = ""
        for attempt in range(ATTEMPTS):
            try:
                response = httpx.post(url, json=dict(payload), timeout=self.timeout_seconds, follow_redirects=False)
                if response.status_code < 300:
                    return response.status_code
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt + 1 < ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
        raise NotificationFailed(f"webhook {shown} refused the notification: {problem}")

    def send_email(
        self, to: Sequence[str], subject: str, body: str, *, scope: SecretScope | None = None, where: str = "to"
    ) -> None:
        """Send ``body`` to ``to`` (addresses or sealed ``${env:NAME}`` references resolved by ``scope``)."""
        scope = scope or SecretScope()
        try:
            recipients = [scope.resolve(r, f"{where}[{i}]") for i, r in enumerate(to)]
        except SecretError as exc:
            raise NotificationNotConfigured(str(exc)) from None
        server = self.smtp_server()
        scope.add(server.password)
        problem = ""
        for attempt in range(ATTEMPTS):
            try:
                server.send(recipients, subject, body)
                return
            except (OSError, smtplib.SMTPException) as exc:
                problem = type(exc).__name__
                if isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused)):
                    break
            if attempt + 1 < ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
        raise NotificationFailed(f"SMTP server {server.host}:{server.port} did not take the notification: {problem}")


def _starttls(value: bool | None) -> str:
    return "" if value is None else ("starttls" if value else "none")


def as_shown(target: str) -> str:
    """A target as errors name it: the reference as written, or the webhook's name."""
    return as_written(target)


@dataclass(frozen=True)
class SmtpServer:
    """One SMTP server, resolved from the resource and the environment when a message is sent."""

    host: str
    port: int
    security: SmtpSecurity
    username: str
    password: str
    sender: str
    timeout: float

    def send(self, to: list[str], subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message.set_content(body)
        context = ssl.create_default_context()
        smtp_class = smtplib.SMTP_SSL if self.security == "ssl" else smtplib.SMTP
        kwargs: dict[str, Any] = {"context": context} if self.security == "ssl" else {}
        with smtp_class(self.host, self.port, timeout=self.timeout, **kwargs) as smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)


# --- message templates -----------------------------------------------------------------------


class _SafeFormatter(string.Formatter):
    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not field_name or any(c in field_name for c in ".[]"):
            raise TemplateError(
                f"template field '{{{field_name}}}' is not allowed: use plain names such as "
                "{row_count}; attribute access and indexing are refused"
            )
        if field_name not in kwargs:
            known = ", ".join(sorted(kwargs)) or "none"
            raise TemplateError(f"template field '{{{field_name}}}' is unknown; known fields: {known}")
        return kwargs[field_name], field_name

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion not in (None, "s"):
            raise TemplateError(f"conversion '!{conversion}' is not allowed in templates")
        return value

    def format_field(self, value: Any, format_spec: str) -> Any:
        if "{" in format_spec:
            raise TemplateError("nested fields in a format spec are not allowed in templates")
        if format_spec and not isinstance(value, (int, float, str)):
            value = str(value)
        return super().format_field(value, format_spec)


def safe_format(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``template`` from ``values``; raise ``TemplateError`` on anything but plain fields."""
    try:
        return _SafeFormatter().vformat(template, (), dict(values))
    except TemplateError:
        raise
    except (ValueError, IndexError, KeyError) as exc:
        raise TemplateError(f"bad template: {exc}") from None


#: The old name of the run-status sensors' resource, kept so Python code that builds one still works.
NotifierResource = NotificationsResource
