"""HttpTool against a real loopback server: methods, templates, secrets, retries, per-row calls."""

from __future__ import annotations

import pandas as pd
import pytest
from tool_servers import SECRET

from dp_assets.catalog.nodes.tools import HttpToolParams, http_tool
from dp_assets.spec.templates import render
from dp_resources.secrets import SecretError


def run(ctx, inputs=None, **params):
    """The node run on ``params`` as a spec's author wrote them (rendered as the runtime does)."""
    return http_tool(ctx, HttpToolParams.model_validate(render(params, ctx.flow_params)), inputs or {})


def test_get_json_is_the_value_and_the_call_is_in_metadata(make_ctx, target):
    ctx = make_ctx()
    value = run(ctx, url=f"{target.url}/json")
    assert value["status"] == 200
    assert value["json"] == {"ok": True, "items": [1, 2, 3]}
    assert value["text"] is None
    assert ctx.metadata["call_count"] == 1
    assert ctx.metadata["calls"][0]["status"] == 200
    assert ctx.metadata["calls"][0]["method"] == "GET"


def test_text_response(make_ctx, target):
    assert run(make_ctx(), url=f"{target.url}/text")["text"] == "plain words"


def test_post_body_and_url_templated_from_input_and_params(make_ctx, target):
    frame = pd.DataFrame({"id": [7, 8], "name": ["a b", "c"]})
    value = run(
        make_ctx(),
        {"orders.result": frame},
        method="POST",
        url=f"{target.url}/echo?name={{{{ input.0.name }}}}",
        body={"first": "{{ input.0.id }}", "all": "{{ input }}", "label": "order {{ input.1.name }}"},
    )
    echoed = value["json"]
    assert echoed["method"] == "POST"
    assert echoed["query"] == {"name": "a b"}  # quoted into the URL, decoded by the server
    assert __import__("json").loads(echoed["body"]) == {"first": 7, "all": frame.to_dict("records"), "label": "order c"}


def test_secret_header_reaches_the_server_but_not_the_value(make_ctx, target):
    """S6 (unit): the server gets the resolved secret; the stored value and metadata only ***."""
    ctx = make_ctx()
    value = run(
        ctx,
        url=f"{target.url}/echo",
        headers={"X-Token": "${env:DP_SECRET_TOKEN}"},
        auth={"type": "bearer", "token": "${env:DP_SECRET_TOKEN}"},
        query={"k": "${env:DP_SECRET_TOKEN}"},
    )
    seen = target.requests[-1]
    assert seen["headers"]["X-Token"] == SECRET
    assert seen["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(value) and SECRET not in repr(ctx.metadata)
    assert value["json"]["headers"]["Authorization"] == "Bearer ***"


def test_basic_auth_is_redacted_in_its_encoded_form(make_ctx, target):
    value = run(
        make_ctx(),
        url=f"{target.url}/echo",
        auth={"type": "basic", "username": "me", "password": "${env:DP_SECRET_TOKEN}"},
    )
    import base64

    encoded = base64.b64encode(f"me:{SECRET}".encode()).decode()
    assert target.requests[-1]["headers"]["Authorization"] == f"Basic {encoded}"
    assert encoded not in repr(value) and value["json"]["headers"]["Authorization"] == "Basic ***"


@pytest.mark.parametrize(
    ("method", "retries", "expected_requests"),
    [("GET", None, 3), ("POST", None, 1), ("POST", 1, 2)],
    ids=["get-retried-by-default", "post-not-retried-by-default", "post-retried-when-asked"],
)
def test_retries_follow_the_method(make_ctx, target, method, retries, expected_requests):
    before = len(target.requests)
    with pytest.raises(Exception, match="answered 503") as info:
        run(make_ctx(), url=f"{target.url}/status/503", method=method, retries=retries, backoff_seconds=0)
    assert "node 'tool' (HttpTool) of flow 'tools_flow'" in str(info.value)
    assert len(target.requests) - before == expected_requests


def test_status_is_the_value_when_not_failing(make_ctx, target):
    value = run(make_ctx(), url=f"{target.url}/status/404", fail_on_status=False)
    assert value["status"] == 404 and value["json"]["error"] == "as asked"


def test_for_each_row_sends_one_request_per_row(make_ctx, target):
    frame = pd.DataFrame({"city": ["Oslo", "Rome", "Lima"], "n": [1, 2, 3]})
    out = run(make_ctx(), {"cities": frame}, url=f"{target.url}/echo?city={{{{ row.city }}}}", for_each_row=True)
    expected = frame.assign(response_status=200)
    pd.testing.assert_frame_equal(out[["city", "n", "response_status"]], expected)
    assert [r["query"]["city"] for r in out["response"]] == ["Oslo", "Rome", "Lima"]


def test_for_each_row_is_capped(make_ctx, target):
    frame = pd.DataFrame({"x": range(5)})
    with pytest.raises(ValueError, match="max_requests=2"):
        run(make_ctx(), {"x": frame}, url=f"{target.url}/json", for_each_row=True, max_requests=2)


def test_node_timeout_stops_a_hanging_server(make_ctx, target):
    with pytest.raises(TimeoutError):
        run(make_ctx(), url=f"{target.url}/hang?seconds=5", timeout_seconds=0.5, retries=0)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X": "${env:HOME}"}, "not an allowed secret name"),
        ({"X": "${env:DP_SECRET_MISSING}"}, "DP_SECRET_MISSING is not set"),
    ],
    ids=["name-not-allowed", "unset"],
)
def test_secret_references_are_checked(make_ctx, target, headers, message):
    with pytest.raises(SecretError, match=message):
        run(make_ctx(), url=f"{target.url}/json", headers=headers)


def test_S6_data_and_flow_params_never_resolve_secrets(make_ctx, target):
    """S6: a secret reference arriving in data or run config is sent as the literal text it is."""
    frame = pd.DataFrame({"q": ["${env:DP_SECRET_TOKEN}"]})
    value = run(make_ctx(), {"x": frame}, url=f"{target.url}/echo?q={{{{ input.0.q }}}}")
    assert target.requests[-1]["query"] == {"q": "${env:DP_SECRET_TOKEN}"} and value["status"] == 200
    run(
        make_ctx(flow_params={"q": "${env:DP_SECRET_TOKEN}"}),
        url=f"{target.url}/echo",
        headers={"X-Q": "{{ params.q }}", "X-Whole": "{{ params.q }}!"},
    )
    assert target.requests[-1]["headers"]["X-Q"] == "${env:DP_SECRET_TOKEN}"
    assert target.requests[-1]["headers"]["X-Whole"] == "${env:DP_SECRET_TOKEN}!"
    assert SECRET not in repr(target.requests[-2:])
