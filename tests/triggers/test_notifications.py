"""``notify:`` sensors with real peers: a Slack-style webhook receiver (uvicorn on loopback) and
a real SMTP server (aiosmtpd). Messages leave through the one notification resource that
``SendNotification`` nodes use too. The webhook URL comes from ``${env:NAME}`` at send time, under
the deployment's secret allow-list, and never shows in errors or log records (S6)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dagster as dg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from triggers_support import compile_flows

from dp_resources.files import FilesResource
from dp_resources.http import HttpResource
from dp_resources.notifications import NotificationFailed, NotificationsResource
from dp_resources.secrets_resource import SecretsResource
from dp_sensors.webhook.server import serve_in_thread
from tests.support.processes import free_port

READS = {"id": "src", "type": "FileInput", "params": {"path": "{{ params.path }}"}}
PARAMS = {"path": {"type": "string", "default": "there.csv"}}


@pytest.fixture
def hook_server() -> Iterator[tuple[str, list[dict]]]:
    """A Slack-style incoming webhook: records JSON bodies; answers 500 under /broken."""
    received: list[dict] = []

    async def ok(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    async def broken(request: Request) -> JSONResponse:
        return JSONResponse({"ok": False}, 500)

    app = Starlette(
        routes=[
            Route("/hook/T0/B0/secret-token", ok, methods=["POST"]),
            Route("/broken/secret-token", broken, methods=["POST"]),
        ]
    )
    with serve_in_thread(app) as base:
        yield base, received


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list]]:
    from aiosmtpd.controller import Controller

    messages: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            messages.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, messages
    controller.stop()


def flow_with_notify(flow_id: str, notify: list[dict], nodes: list[dict] | None = None) -> dict:
    return {"id": flow_id, "params": PARAMS, "nodes": nodes or [READS], "notify": notify}


def tick(sensor, instance, cursor, notifications):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"notifications": notifications})
    return sensor.evaluate_tick(context)


@pytest.fixture
def data(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "there.csv").write_text("a\n1\n")
    return FilesResource(data_dir=str(tmp_path / "data"))


def test_failure_and_success_notifications(instance, data, hook_server, smtp_server, monkeypatch, caplog):
    base, received = hook_server
    port, mails = smtp_server
    monkeypatch.setenv("DP_SECRET_SLACK_URL_FOR_TEST", f"{base}/hook/T0/B0/secret-token")
    monkeypatch.setenv("DP_SECRET_ONCALL_ADDRESS", "oncall@example.test")
    spec = flow_with_notify(
        "notified",
        [
            {
                "on": ["failure"],
                "webhook": "${env:DP_SECRET_SLACK_URL_FOR_TEST}",
                "email": ["${env:DP_SECRET_ONCALL_ADDRESS}", "team@example.test"],
            },
            {"on": ["success"], "webhook": "${env:DP_SECRET_SLACK_URL_FOR_TEST}"},
        ],
    )
    defs = compile_flows(spec, resources={"files": data})
    notifications = NotificationsResource(
        webserver_url="http://dagster.test:3000/",
        smtp_host="127.0.0.1",
        smtp_port=port,
        sender="dp@example.test",
        smtp_security="none",
    )
    on_failure = defs.resolve_sensor_def("notified_notify_failure_sensor")
    on_success = defs.resolve_sensor_def("notified_notify_success_sensor")
    failure_cursor = tick(on_failure, instance, None, notifications).cursor
    success_cursor = tick(on_success, instance, None, notifications).cursor

    job = defs.resolve_job_def("notified")
    failed = job.execute_in_process(
        instance=instance, run_config={"path": "missing.csv"}, raise_on_error=False, tags={"dp/task_id": "task-7"}
    )
    assert not failed.success
    caplog.set_level(logging.INFO, logger="httpx")
    tick(on_failure, instance, failure_cursor, notifications)
    assert len(received) == 1
    text = received[0]["text"]
    assert f"Flow 'notified' run {failed.run_id} failed." in text
    assert f"Run: http://dagster.test:3000/runs/{failed.run_id}" in text
    assert "Task: task-7" in text and "Error:" in text
    (mail,) = mails
    assert sorted(mail.rcpt_tos) == ["oncall@example.test", "team@example.test"]
    assert mail.mail_from == "dp@example.test" and b"[dp] flow notified failed" in mail.content
    posts = [r.getMessage() for r in caplog.records if r.name.startswith("httpx")]
    assert posts and all("secret-token" not in line for line in posts)  # httpx logs the URL it posts to

    succeeded = job.execute_in_process(instance=instance)
    tick(on_success, instance, success_cursor, notifications)
    assert f"run {succeeded.run_id} succeeded" in received[-1]["text"] and len(received) == 2


def test_the_notify_sensor_and_the_node_send_through_one_resource(instance, smtp_server, monkeypatch):
    """One resource, one SMTP configuration: a `SendNotification` node in the run and the flow's
    `notify: success` both reach the same server with the same sender."""
    port, mails = smtp_server
    monkeypatch.setenv("DP_SECRET_TEAM_ADDRESS", "team@example.test")
    nodes = [
        {"id": "rows", "type": "StaticData", "params": {"rows": [{"a": 1}]}},
        {
            "id": "tell",
            "type": "SendNotification",
            "inputs": ["rows"],
            "params": {"channel": "email", "to": ["${env:DP_SECRET_TEAM_ADDRESS}"], "message": "{row_count} row"},
        },
    ]
    spec = flow_with_notify("both_ways", [{"on": ["success"], "email": ["${env:DP_SECRET_TEAM_ADDRESS}"]}], nodes)
    notifications = NotificationsResource(
        smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", sender="one@example.test"
    )
    defs = compile_flows(
        spec, resources={"notifications": notifications, "http": HttpResource(), "secrets": SecretsResource()}
    )
    sensor = defs.resolve_sensor_def("both_ways_notify_success_sensor")
    cursor = tick(sensor, instance, None, notifications).cursor
    assert defs.resolve_job_def("both_ways").execute_in_process(instance=instance).success
    tick(sensor, instance, cursor, notifications)
    assert [(m.mail_from, m.rcpt_tos) for m in mails] == [("one@example.test", ["team@example.test"])] * 2
    assert b"1 row" in mails[0].content and b"[dp] flow both_ways succeeded" in mails[1].content


def test_S6_a_failing_webhook_names_the_variable_not_the_url(instance, data, hook_server, monkeypatch):
    base, _ = hook_server
    monkeypatch.setenv("DP_SECRET_BROKEN_HOOK_URL", f"{base}/broken/secret-token")
    defs = compile_flows(
        flow_with_notify("noisy", [{"on": ["success"], "webhook": "${env:DP_SECRET_BROKEN_HOOK_URL}"}]),
        resources={"files": data},
    )
    sensor = defs.resolve_sensor_def("noisy_notify_success_sensor")
    notifications = NotificationsResource()
    cursor = tick(sensor, instance, None, notifications).cursor
    defs.resolve_job_def("noisy").execute_in_process(instance=instance)
    result = tick(sensor, instance, cursor, notifications)  # the error is reported on the tick
    (reaction,) = result.dagster_run_reactions
    text = reaction.error.to_string()
    assert "${env:DP_SECRET_BROKEN_HOOK_URL}" in text and "HTTP 500" in text
    assert "secret-token" not in text


def test_S6_notify_reads_only_allowed_names(instance, data, hook_server, monkeypatch):
    """`notify:` references obey the deployment's allow-list like every other: a platform variable
    is refused on the tick, naming it and the fix, and nothing is posted; a deployment that keeps an
    old name allows it with DP_ALLOWED_SECRET_NAMES."""
    base, received = hook_server
    monkeypatch.setenv("SLACK_ALERT_URL", f"{base}/hook/T0/B0/secret-token")
    defs = compile_flows(
        flow_with_notify("picky", [{"on": ["success"], "webhook": "${env:SLACK_ALERT_URL}"}]), resources={"files": data}
    )
    sensor = defs.resolve_sensor_def("picky_notify_success_sensor")
    cursor = tick(sensor, instance, None, NotificationsResource()).cursor
    defs.resolve_job_def("picky").execute_in_process(instance=instance)
    refused = tick(sensor, instance, cursor, NotificationsResource())
    (reaction,) = refused.dagster_run_reactions
    text = reaction.error.to_string()
    assert "${env:SLACK_ALERT_URL} is not an allowed secret name" in text and "DP_ALLOWED_SECRET_NAMES" in text
    assert received == [] and "secret-token" not in text

    monkeypatch.setenv("DP_ALLOWED_SECRET_NAMES", "DP_SECRET_*, SLACK_ALERT_URL")
    defs.resolve_job_def("picky").execute_in_process(instance=instance)
    tick(sensor, instance, refused.cursor, NotificationsResource())
    assert len(received) == 1


def test_the_old_notifier_settings_still_work(instance, data, smtp_server, monkeypatch):
    """Deprecated aliases: the `notifier` resource's field names and DP_SMTP_STARTTLS."""
    port, mails = smtp_server
    from dp_sensors.notifications import NotifierResource

    old = NotifierResource(smtp_host="127.0.0.1", smtp_port=port, smtp_from="old@example.test", smtp_starttls=False)
    with pytest.warns(FutureWarning) as caught:
        old.send_email(["a@example.test"], "s", "b")
    assert {str(w.message).split(" is ")[0] for w in caught} == {
        "the notifications resource's smtp_from",
        "the notifications resource's smtp_starttls",
    }
    monkeypatch.setenv("DP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DP_SMTP_PORT", str(port))
    monkeypatch.setenv("DP_SMTP_STARTTLS", "false")  # plain SMTP, as before DP_SMTP_SECURITY
    with pytest.warns(FutureWarning, match="DP_SMTP_STARTTLS is deprecated"):
        NotificationsResource().send_email(["b@example.test"], "s", "b")
    assert [(m.mail_from, m.rcpt_tos) for m in mails] == [
        ("old@example.test", ["a@example.test"]),
        ("dp-platform@localhost", ["b@example.test"]),
    ]


def test_unset_variable_and_literal_urls():
    from dp_resources.secrets import seal_written

    with pytest.raises(NotificationFailed, match="DP_SECRET_NOT_SET_ANYWHERE"):
        NotificationsResource().post_webhook(seal_written("${env:DP_SECRET_NOT_SET_ANYWHERE}"), {"text": "hi"})
    from dp_assets.catalog import default_catalog
    from dp_assets.spec.validation import FlowValidationError, validate_spec

    spec = flow_with_notify("literal", [{"webhook": "https://hooks.slack.com/services/T/B/secret"}])
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(spec, default_catalog())
    assert "${env:NAME}" in str(caught.value) and "services/T/B/secret" not in str(caught.value)
