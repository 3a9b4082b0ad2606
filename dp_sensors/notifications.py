"""``notify:`` in a spec: a run-status sensor per flow and outcome that posts a Slack-style
webhook or sends e-mail, with a link to the run.

Secrets stay out of specs, run config, tags, logs and error messages (reliability test S6):
a spec names an environment variable (``webhook: ${env:SLACK_URL}``); the value is read when a
message is sent and never logged. Errors name the variable, not the URL. The SMTP server and its
password come from the :class:`NotifierResource`, whose password is also an ``${env:NAME}``
reference resolved at send time.

A failed send fails the sensor's evaluation for that run (visible on the sensor's tick), after
a few quick attempts; the run itself is already finished and is not touched.
"""

from __future__ import annotations

import os
import re
import smtplib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from pydantic import Field

from dp_sensors.triggers.common import sensor_interval

ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
WEBSERVER_URL_ENV = "DP_WEBSERVER_URL"
NOTIFIER_RESOURCE = "notifier"
ATTEMPTS = 3


class NotificationFailed(RuntimeError):
    """A message could not be sent; the text never holds the secret URL or password."""


def resolve_env_ref(value: str, environ: Mapping[str, str] | None = None) -> str:
    """``${env:NAME}`` -> the variable's value (at send time); anything else is returned as is."""
    match = ENV_REF.match(value)
    if not match:
        return value
    env = os.environ if environ is None else environ
    resolved = env.get(match.group(1))
    if not resolved:
        raise NotificationFailed(f"environment variable {match.group(1)} (from {value}) is not set")
    return resolved


class NotifierResource(dg.ConfigurableResource):
    """How notifications leave: the webserver link and the SMTP server.

    Every field left empty follows the environment when a message is sent: ``DP_WEBSERVER_URL``
    and the SMTP settings of ``dp_resources.notifications.SmtpServer`` (``DP_SMTP_*``); the
    password is always a reference (default ``${env:DP_SMTP_PASSWORD}``).
    """

    webserver_url: str | None = Field(default=None, description="Base URL of the Dagster UI.")
    smtp_host: str | None = Field(default=None, description="SMTP server [env DP_SMTP_HOST].")
    smtp_port: int | None = Field(default=None, description="SMTP port [env DP_SMTP_PORT; 25].")
    smtp_user: str | None = Field(default=None, description="SMTP login [env DP_SMTP_USER].")
    smtp_password: str = Field(
        default="${env:DP_SMTP_PASSWORD}", description="An ${env:NAME} reference, read at send time."
    )
    smtp_from: str | None = Field(default=None, description="Sender [env DP_SMTP_FROM].")
    smtp_starttls: bool | None = Field(default=None, description="STARTTLS [env DP_SMTP_SECURITY].")
    timeout_seconds: float = Field(default=10.0, gt=0)

    def run_url(self, run_id: str) -> str | None:
        base = self.webserver_url or os.environ.get(WEBSERVER_URL_ENV)
        return f"{base.rstrip('/')}/runs/{run_id}" if base else None

    def post_webhook(self, reference: str, text: str) -> None:
        """POST ``{"text": ...}`` (Slack's incoming-webhook shape, also read by Teams/Mattermost)."""
        import httpx

        url = resolve_env_ref(reference)
        last = ""
        for attempt in range(ATTEMPTS):
            try:
                response = httpx.post(url, json={"text": text}, timeout=self.timeout_seconds)
                if response.status_code < 300:
                    return
                last = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            if attempt + 1 < ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
        raise NotificationFailed(f"webhook {reference} refused the notification: {last}")

    def send_email(self, recipients: Sequence[str], subject: str, text: str) -> None:
        """Send through the platform's one SMTP sender (``dp_resources.notifications.SmtpServer``)."""
        from dp_resources.notifications import NotificationNotConfigured, SmtpServer

        security = None if self.smtp_starttls is None else ("starttls" if self.smtp_starttls else "none")
        user = self.smtp_user or os.environ.get("DP_SMTP_USER", "")
        try:
            server = SmtpServer.resolve(
                host=self.smtp_host or "", port=self.smtp_port or 0, security=security, username=user,
                password=resolve_env_ref(self.smtp_password) if user else "",
                sender=self.smtp_from or "", timeout=self.timeout_seconds,
            )
        except NotificationNotConfigured as exc:
            raise NotificationFailed(str(exc)) from None
        to = [resolve_env_ref(r) for r in recipients]
        last = ""
        for attempt in range(ATTEMPTS):
            try:
                server.send(to, subject, text)
                return
            except (OSError, smtplib.SMTPException) as exc:
                last = type(exc).__name__
                if isinstance(exc, smtplib.SMTPAuthenticationError):
                    break
            if attempt + 1 < ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
        raise NotificationFailed(f"SMTP server {server.host}:{server.port} did not take the notification: {last}")


def message_for(flow_id: str, run: dg.DagsterRun, outcome: str, link: str | None, error: str | None) -> tuple[str, str]:
    """``(subject, text)`` of a notification."""
    verb = "failed" if outcome == "failure" else "succeeded"
    subject = f"[dp] flow {flow_id} {verb} (run {run.run_id[:8]})"
    lines = [f"Flow '{flow_id}' run {run.run_id} {verb}."]
    if task := run.tags.get("dp/task_id"):
        lines.append(f"Task: {task}")
    if error:
        lines.append(f"Error: {error[:1000]}")
    lines.append(f"Run: {link}" if link else f"Run id: {run.run_id} (set {WEBSERVER_URL_ENV} for a link)")
    return subject, "\n".join(lines)


def notify_sensor_name(flow_id: str, outcome: str) -> str:
    return f"{flow_id}_notify_{outcome}_sensor"


def build_notification_sensors(flow: Any, job: Any) -> list[dg.SensorDefinition]:
    """One run-status sensor per outcome that any ``notify`` entry of the flow asks for."""
    sensors = []
    for outcome in ("failure", "success"):
        targets = [n for n in flow.notify if outcome in n.on]
        if targets:
            sensors.append(_notification_sensor(flow.id, job, outcome, targets))
    return sensors


def _notification_sensor(flow_id: str, job: Any, outcome: str, targets: list[Any]) -> dg.SensorDefinition:
    status = dg.DagsterRunStatus.FAILURE if outcome == "failure" else dg.DagsterRunStatus.SUCCESS

    @dg.run_status_sensor(
        name=notify_sensor_name(flow_id, outcome),
        run_status=status,
        monitored_jobs=[job],
        minimum_interval_seconds=sensor_interval(None),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Sends the {outcome} notifications of flow '{flow_id}'.",
    )
    def _notify(context: dg.RunStatusSensorContext, notifier: NotifierResource):  # resource key 'notifier'
        run = context.dagster_run
        error = None
        if outcome == "failure":
            error = context.dagster_event.message if context.dagster_event else None
        subject, text = message_for(flow_id, run, outcome, notifier.run_url(run.run_id), error)
        problems = []
        for target in targets:
            try:
                if target.webhook:
                    notifier.post_webhook(target.webhook, text)
                if target.email:
                    notifier.send_email(target.email, subject, text)
            except NotificationFailed as exc:
                problems.append(str(exc))
        if problems:
            raise NotificationFailed(
                f"flow '{flow_id}' run {run.run_id}: {len(problems)} notification(s) failed: "
                + "; ".join(problems)
            )
        return dg.SkipReason(f"notified {len(targets)} target(s) of run {run.run_id} ({outcome})")

    return _notify
