"""``notify:`` in a spec: a run-status sensor per flow and outcome that posts a Slack-style
webhook or sends e-mail, with a link to the run.

Messages leave through the platform's one notification resource
(``dp_resources.notifications.NotificationsResource``, key ``notifications``), the same one
``SendNotification`` nodes use. Secrets stay out of specs, run config, tags, logs and error
messages (reliability test S6): a spec writes ``webhook: ${env:NAME}``; the entry is the author's
text, so it is sealed here and resolved by the one secret resolver when a message is sent, under
the deployment's allow-list. Errors name the variable, not the URL.

A failed send fails the sensor's evaluation for that run (visible on the sensor's tick), after
a few quick attempts; the run itself is already finished and is not touched.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from dp_resources.notifications import NotificationFailed, NotificationsResource, NotifierResource
from dp_resources.secrets import SecretScope, seal_written
from dp_sensors.triggers.common import sensor_interval

__all__ = ["NotificationFailed", "NotifierResource", "build_notification_sensors", "message_for"]

WEBSERVER_URL_ENV = "DP_WEBSERVER_URL"
NOTIFICATIONS_RESOURCE = "notifications"


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
        targets = [(index, n) for index, n in enumerate(flow.notify) if outcome in n.on]
        if targets:
            sensors.append(_notification_sensor(flow.id, job, outcome, targets))
    return sensors


def _notification_sensor(flow_id: str, job: Any, outcome: str, targets: list[tuple[int, Any]]) -> dg.SensorDefinition:
    status = dg.DagsterRunStatus.FAILURE if outcome == "failure" else dg.DagsterRunStatus.SUCCESS

    @dg.run_status_sensor(
        name=notify_sensor_name(flow_id, outcome),
        run_status=status,
        monitored_jobs=[job],
        minimum_interval_seconds=sensor_interval(None),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Sends the {outcome} notifications of flow '{flow_id}'.",
    )
    def _notify(context: dg.RunStatusSensorContext, notifications: NotificationsResource):
        run = context.dagster_run
        error = None
        if outcome == "failure":
            error = context.dagster_event.message if context.dagster_event else None
        subject, text = message_for(flow_id, run, outcome, notifications.run_url(run.run_id), error)
        problems = []
        for index, target in targets:
            scope = SecretScope()  # the entries are the author's text: sealed, then resolved
            try:
                if target.webhook:
                    notifications.post_webhook(
                        seal_written(target.webhook), {"text": text}, scope=scope, where=f"notify[{index}].webhook"
                    )
                if target.email:
                    notifications.send_email(
                        [seal_written(r) for r in target.email],
                        subject,
                        text,
                        scope=scope,
                        where=f"notify[{index}].email",
                    )
            except NotificationFailed as exc:
                problems.append(scope.redact(str(exc)))
        if problems:
            raise NotificationFailed(
                f"flow '{flow_id}' run {run.run_id}: {len(problems)} notification(s) failed: " + "; ".join(problems)
            )
        return dg.SkipReason(f"notified {len(targets)} target(s) of run {run.run_id} ({outcome})")

    return _notify
