"""``SendNotification``: messages through the platform's one notification resource, to a real
loopback HTTP server (webhooks) and a real SMTP server (``aiosmtpd``). The webhook and the
recipients may be the author's ``${env:NAME}``; a failing webhook is named, never its URL (S6)."""

from __future__ import annotations

from email import message_from_bytes
from typing import Any

import pandas as pd
import pytest
from node_helpers import LoopbackServer, Reply, make_ctx, run_node

from dp_assets.spec.templates import render
from dp_resources.notifications import NotificationsResource, TemplateError, safe_format
from dp_resources.secrets_resource import SecretsResource

ROWS = pd.DataFrame({"region": ["EU"], "total": [12.5]})


def authored(params: dict[str, Any], flow_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``params`` as the runtime hands them to the node: flow params filled, the author's references sealed."""
    return render(params, flow_params or {})


def test_send_notification_webhook_by_name(http_server: LoopbackServer, http_resource: Any) -> None:
    notifications = NotificationsResource(webhooks={"team": f"{http_server.url}/hook"})
    ctx = make_ctx(
        resources={"http": http_resource, "notifications": notifications},
        flow_params={"day": "2024-01-02"},
        flow_id="sales",
    )
    out = run_node(
        "SendNotification",
        {
            "channel": "webhook",
            "webhook": "team",
            "message": "{flow_id} {day}: {row_count} row(s), EU total {total:.1f}",
        },
        {"input": ROWS},
        ctx,
    )
    assert out is ROWS
    assert http_server.requests[0].json() == {"text": "sales 2024-01-02: 1 row(s), EU total 12.5"}


def test_send_notification_webhook_from_the_authors_reference(
    http_server: LoopbackServer, http_resource: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one secret form: `${env:NAME}` names the URL, resolved for the node that sends."""
    monkeypatch.setenv("DP_SECRET_SALES_HOOK", f"{http_server.url}/services/T/B/hook-token")
    ctx = make_ctx(
        resources={"http": http_resource, "notifications": NotificationsResource(), "secrets": SecretsResource()},
        flow_id="sales",
    )
    params = authored({"channel": "webhook", "webhook": "${env:DP_SECRET_SALES_HOOK}", "message": "{row_count} row(s)"})
    run_node("SendNotification", params, {"input": ROWS}, ctx)
    (request,) = http_server.requests
    assert request.path == "/services/T/B/hook-token"
    assert request.json() == {"text": "1 row(s)"}


def test_S6_a_failing_webhook_is_named_never_its_url(
    http_server: LoopbackServer, http_resource: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.route = lambda request: Reply(500, {"echo": request.path})
    monkeypatch.setenv("DP_SECRET_SALES_HOOK", f"{http_server.url}/services/T/B/hook-token")
    resources = {
        "http": http_resource,
        "notifications": NotificationsResource(webhooks={"team": f"{http_server.url}/named/other-token"}),
    }
    for target in ("${env:DP_SECRET_SALES_HOOK}", "team"):
        params = authored({"channel": "webhook", "webhook": target, "message": "hi"})
        with pytest.raises(Exception) as caught:
            run_node("SendNotification", params, {"input": ROWS}, make_ctx(resources=resources))
        text = str(caught.value)
        assert target in text and "HTTP 500" in text
        assert "hook-token" not in text and "other-token" not in text and caught.value.__cause__ is None
    assert len(http_server.requests) == 6  # each target tried three times


def test_S6_a_launch_param_cannot_choose_a_secret_as_target(
    http_server: LoopbackServer, http_resource: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A param holding `${env:NAME}` (or composing one) is data: not resolved, nothing sent."""
    monkeypatch.setenv("DP_SECRET_SALES_HOOK", f"{http_server.url}/hook")
    ctx = make_ctx(resources={"http": http_resource, "notifications": NotificationsResource()})
    for flow_params, webhook in [
        ({"hook": "${env:DP_SECRET_SALES_HOOK}"}, "{{ params.hook }}"),
        ({"a": "$", "b": "{env:DP_SECRET_SALES_HOOK}"}, "{{ params.a }}{{ params.b }}"),
    ]:
        params = authored({"channel": "webhook", "webhook": webhook, "message": "hi"}, flow_params)
        with pytest.raises(Exception, match="neither the author's"):
            run_node("SendNotification", params, {"input": ROWS}, ctx)
    assert http_server.requests == []


def test_send_notification_email(smtp_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    host, port, inbox = smtp_server
    monkeypatch.setenv("DP_SECRET_ONCALL", "oncall@example.test")
    notifications = NotificationsResource(
        smtp_host=host, smtp_port=port, smtp_security="none", sender="dp@example.test"
    )
    ctx = make_ctx(resources={"notifications": notifications}, flow_id="sales")
    params = authored(
        {
            "channel": "email",
            "to": ["ops@example.test", "${env:DP_SECRET_ONCALL}"],
            "subject": "{flow_id}: {row_count} rows",
            "message": "Columns: {columns}\n{preview}",
            "when": "non_empty",
        }
    )
    run_node("SendNotification", params, {"input": pd.DataFrame({"a": [1, 2]})}, ctx)
    run_node("SendNotification", params, {"input": pd.DataFrame({"a": []})}, ctx)  # when: non_empty
    assert len(inbox.messages) == 1
    message = message_from_bytes(inbox.messages[0].content)
    assert message["Subject"] == "sales: 2 rows"
    assert inbox.messages[0].rcpt_tos == ["ops@example.test", "oncall@example.test"]
    assert "Columns: a" in message.get_payload() and "| a |" in message.get_payload()


def test_smtp_comes_from_the_environment_when_the_resource_leaves_it(
    smtp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port, inbox = smtp_server
    for name, value in {
        "DP_SMTP_HOST": host,
        "DP_SMTP_PORT": str(port),
        "DP_SMTP_SECURITY": "none",
        "DP_SMTP_FROM": "env@example.test",
    }.items():
        monkeypatch.setenv(name, value)
    ctx = make_ctx(resources={"notifications": NotificationsResource()})
    run_node("SendNotification", {"channel": "email", "to": ["ops@example.test"], "message": "m"}, {"input": ROWS}, ctx)
    (mail,) = inbox.messages
    assert mail.mail_from == "env@example.test"


@pytest.mark.parametrize(
    "template", ["{x.__class__}", "{x.__class__.__mro__}", "{x[0]}", "{x!r}", "{0}", "{secret}", "{x:{x}}", "{"]
)
def test_templates_refuse_attribute_access(template: str) -> None:
    with pytest.raises(TemplateError):
        safe_format(template, {"x": "value"})
    assert safe_format("{x} {n:>4}", {"x": "v", "n": 7}) == "v    7"
