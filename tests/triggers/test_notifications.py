"""``notify:`` sensors with real peers: a Slack-style webhook receiver (uvicorn on loopback) and
a real SMTP server (aiosmtpd). The webhook URL comes from ``${env:NAME}`` at send time and never
shows in errors (S6)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dagster as dg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from triggers_support import compile_flows

from dp_resources.files import FilesResource
from dp_sensors.notifications import NotificationFailed, NotifierResource
from dp_sensors.webhook.server import serve_in_thread

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

    app = Starlette(routes=[Route("/hook/T0/B0/secret-token", ok, methods=["POST"]),
                            Route("/broken/secret-token", broken, methods=["POST"])])
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

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, messages
    controller.stop()


def flow_with_notify(flow_id: str, notify: list[dict]) -> dict:
    return {"id": flow_id, "params": PARAMS, "nodes": [READS], "notify": notify}


def tick(sensor, instance, cursor, notifier):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"notifier": notifier})
    return sensor.evaluate_tick(context)


@pytest.fixture
def data(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "there.csv").write_text("a\n1\n")
    return FilesResource(data_dir=str(tmp_path / "data"))


def test_failure_and_success_notifications(instance, data, hook_server, smtp_server, monkeypatch):
    base, received = hook_server
    port, mails = smtp_server
    monkeypatch.setenv("SLACK_URL_FOR_TEST", f"{base}/hook/T0/B0/secret-token")
    monkeypatch.setenv("ONCALL_ADDRESS", "oncall@example.test")
    spec = flow_with_notify("notified", [
        {"on": ["failure"], "webhook": "${env:SLACK_URL_FOR_TEST}", "email": ["${env:ONCALL_ADDRESS}", "team@example.test"]},
        {"on": ["success"], "webhook": "${env:SLACK_URL_FOR_TEST}"},
    ])
    defs = compile_flows(spec, resources={"files": data})
    notifier = NotifierResource(webserver_url="http://dagster.test:3000/", smtp_host="127.0.0.1", smtp_port=port,
                                smtp_from="dp@example.test", smtp_starttls=False)
    on_failure = defs.resolve_sensor_def("notified_notify_failure_sensor")
    on_success = defs.resolve_sensor_def("notified_notify_success_sensor")
    failure_cursor = tick(on_failure, instance, None, notifier).cursor
    success_cursor = tick(on_success, instance, None, notifier).cursor

    job = defs.resolve_job_def("notified")
    failed = job.execute_in_process(instance=instance, run_config={"path": "missing.csv"}, raise_on_error=False,
                                    tags={"dp/task_id": "task-7"})
    assert not failed.success
    tick(on_failure, instance, failure_cursor, notifier)
    assert len(received) == 1
    text = received[0]["text"]
    assert f"Flow 'notified' run {failed.run_id} failed." in text
    assert f"Run: http://dagster.test:3000/runs/{failed.run_id}" in text
    assert "Task: task-7" in text and "Error:" in text
    (mail,) = mails
    assert sorted(mail.rcpt_tos) == ["oncall@example.test", "team@example.test"]
    assert b"[dp] flow notified failed" in mail.content

    succeeded = job.execute_in_process(instance=instance)
    tick(on_success, instance, success_cursor, notifier)
    assert f"run {succeeded.run_id} succeeded" in received[-1]["text"] and len(received) == 2


def test_S6_a_failing_webhook_names_the_variable_not_the_url(instance, data, hook_server, monkeypatch):
    base, _ = hook_server
    monkeypatch.setenv("BROKEN_HOOK_URL", f"{base}/broken/secret-token")
    defs = compile_flows(flow_with_notify("noisy", [{"on": ["success"], "webhook": "${env:BROKEN_HOOK_URL}"}]),
                         resources={"files": data})
    sensor = defs.resolve_sensor_def("noisy_notify_success_sensor")
    notifier = NotifierResource()
    cursor = tick(sensor, instance, None, notifier).cursor
    defs.resolve_job_def("noisy").execute_in_process(instance=instance)
    result = tick(sensor, instance, cursor, notifier)  # the error is reported on the tick
    (reaction,) = result.dagster_run_reactions
    text = reaction.error.to_string()
    assert "${env:BROKEN_HOOK_URL}" in text and "HTTP 500" in text
    assert "secret-token" not in text


def test_unset_variable_and_literal_urls():
    with pytest.raises(NotificationFailed, match="NOT_SET_ANYWHERE"):
        NotifierResource().post_webhook("${env:NOT_SET_ANYWHERE}", "hi")
    from dp_assets.catalog import default_catalog
    from dp_assets.spec.validation import FlowValidationError, validate_spec

    spec = flow_with_notify("literal", [{"webhook": "https://hooks.slack.com/services/T/B/secret"}])
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(spec, default_catalog())
    assert "${env:NAME}" in str(caught.value) and "services/T/B/secret" not in str(caught.value)
