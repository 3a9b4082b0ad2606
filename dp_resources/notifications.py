"""Where notifications go: Slack-style webhooks by name, and e-mail over SMTP.

Specs name a webhook (``webhook: team_alerts``) and list addresses; the webhook URL (a secret, for
Slack) and the SMTP login come from this resource's config or the environment
(``DP_WEBHOOK_TEAM_ALERTS_URL``, ``DP_SMTP_HOST``...), never from a spec. Webhook posts go through
``HttpResource`` so they get its address checks and limits.

``safe_format`` fills message templates: ``{name}`` and ``{name:format_spec}`` only, from a flat
mapping. Attribute access and indexing (``{x.__class__}``, ``{x[0]}``) are refused, since
``str.format`` would otherwise walk into any object it is given.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import string
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import dagster as dg
from pydantic import Field


SmtpSecurity = Literal["none", "starttls", "ssl"]
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


class NotificationNotConfigured(RuntimeError):
    pass


class TemplateError(ValueError):
    pass


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


class NotificationsResource(dg.ConfigurableResource):
    """Named webhooks and an SMTP server for ``SendNotification``."""

    webhooks: dict[str, str] = Field(
        default_factory=dict,
        description="Webhook name -> URL; a name not listed reads DP_WEBHOOK_<NAME>_URL.",
    )
    smtp_host: str = Field(default="", description="SMTP server; default DP_SMTP_HOST.")
    smtp_port: int = Field(default=0, ge=0, description="Default DP_SMTP_PORT, else 25/465/587 by security.")
    smtp_security: str = Field(default="", description="none, starttls or ssl; default DP_SMTP_SECURITY, else starttls.")
    smtp_username: str = Field(default="", description="Default DP_SMTP_USER; empty: no login.")
    smtp_password: str = Field(default="", description="Default DP_SMTP_PASSWORD.")
    sender: str = Field(default="", description="From address; default DP_SMTP_FROM or dp-platform@localhost.")
    timeout_seconds: float = Field(default=30.0, gt=0)

    def webhook_url(self, name: str) -> str:
        env = f"DP_WEBHOOK_{name.upper()}_URL"
        url = self.webhooks.get(name) or os.environ.get(env)
        if not url:
            raise NotificationNotConfigured(
                f"webhook '{name}' is not configured: set {env} or list it in the notifications "
                "resource's `webhooks`"
            )
        return url

    def post_webhook(self, http: Any, name: str, payload: Mapping[str, Any]) -> int:
        """POST ``payload`` as JSON to the named webhook through ``http``; return the status."""
        from dp_resources.http import send_with_retries

        response = send_with_retries(http, "POST", self.webhook_url(name), json=dict(payload), retries=2)
        return response.status_code

    def send_email(self, to: list[str], subject: str, body: str) -> None:
        SmtpServer.resolve(
            host=self.smtp_host, port=self.smtp_port, security=self.smtp_security or None,
            username=self.smtp_username, password=self.smtp_password, sender=self.sender,
            timeout=self.timeout_seconds,
        ).send(to, subject, body)


@dataclass(frozen=True)
class SmtpServer:
    """One SMTP server, the same for ``SendNotification`` and the run-status notifications.

    Every value not configured on a resource comes from the environment when a message is sent:
    ``DP_SMTP_HOST``, ``DP_SMTP_PORT``, ``DP_SMTP_SECURITY`` (none, starttls, ssl; default
    starttls), ``DP_SMTP_USER``, ``DP_SMTP_PASSWORD``, ``DP_SMTP_FROM``.
    """

    host: str
    port: int
    security: SmtpSecurity
    username: str
    password: str
    sender: str
    timeout: float

    @classmethod
    def resolve(cls, *, host: str = "", port: int = 0, security: str | None = None, username: str = "",
                password: str = "", sender: str = "", timeout: float = 30.0) -> SmtpServer:
        env = os.environ
        host = host or env.get("DP_SMTP_HOST", "")
        if not host:
            raise NotificationNotConfigured("no SMTP server: set DP_SMTP_HOST or the resource's smtp_host")
        security = security or env.get("DP_SMTP_SECURITY") or "starttls"
        if security not in DEFAULT_PORTS:
            raise NotificationNotConfigured(f"DP_SMTP_SECURITY must be none, starttls or ssl, not '{security}'")
        return cls(
            host=host,
            port=port or int(env.get("DP_SMTP_PORT") or DEFAULT_PORTS[security]),
            security=security,  # type: ignore[arg-type]
            username=username or env.get("DP_SMTP_USER", ""),
            password=password or env.get("DP_SMTP_PASSWORD", ""),
            sender=sender or env.get("DP_SMTP_FROM") or "dp-platform@localhost",
            timeout=timeout,
        )

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
