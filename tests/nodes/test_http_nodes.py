"""ApiEndpoint and APIRequest against real servers on loopback (SendNotification:
``test_notification_node.py``).

Results are compared with ``pd.json_normalize`` of what the server sent; E6 (the same
idempotency key on every attempt, the effect applied once) is checked with a server that
honours the key.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from node_helpers import LoopbackServer, Recorded, Reply, make_ctx, run_node

from dp_assets.spec.templates import render
from dp_resources.http import HttpStatusError, send_with_retries

ITEMS = [{"id": i, "name": f"n{i}", "geo": {"lat": i * 1.5, "tz": None if i % 2 else "UTC"}} for i in range(7)]


def query(request: Recorded) -> dict[str, str]:
    return request.query


def ctx_http(http_resource: Any, **flow_params: Any) -> Any:
    return make_ctx(resources={"http": http_resource}, flow_params=flow_params)


def paged(request: Recorded) -> Reply:
    """Pages of 3 items by page number, offset, cursor, or next link."""
    q = query(request)
    if "page" in q:
        start = (int(q["page"]) - 1) * 3
    elif "offset" in q:
        start = int(q["offset"])
    else:
        start = int(q.get("cursor") or 0)
    chunk = ITEMS[start : start + 3]
    nxt = start + 3 if start + 3 < len(ITEMS) else None
    body = {
        "data": {"items": chunk},
        "next_cursor": nxt,
        "links": {"next": f"/items?cursor={nxt}" if nxt is not None else None},
    }
    headers = {"Link": f'</items?cursor={nxt}>; rel="next"'} if nxt is not None else {}
    return Reply(200, body, headers)


PAGINATIONS = [
    pytest.param({"type": "page"}, id="ApiEndpoint-page"),
    pytest.param({"type": "offset", "page_size": 3}, id="ApiEndpoint-offset"),
    pytest.param({"type": "cursor", "cursor_path": "next_cursor"}, id="ApiEndpoint-cursor"),
    pytest.param({"type": "next_link"}, id="ApiEndpoint-link-header"),
    pytest.param({"type": "next_link", "next_path": "links.next"}, id="ApiEndpoint-next-path"),
]


@pytest.mark.parametrize("pagination", PAGINATIONS)
def test_api_endpoint_pages_match_json_normalize(
    http_server: LoopbackServer, http_resource: Any, pagination: dict
) -> None:
    http_server.route = paged
    params = {"url": f"{http_server.url}/items", "record_path": "data.items", "pagination": pagination}
    result = run_node("ApiEndpoint", params, {}, ctx_http(http_resource))
    pd.testing.assert_frame_equal(result, pd.json_normalize(ITEMS))
    assert len(http_server.requests) in (3, 4)  # 3 pages (+ one empty page for page/offset)


def test_api_endpoint_retries_5xx_and_posts_json(
    http_server: LoopbackServer, http_resource: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ApiEndpoint-retry: a 503 then a 200; POST body, query and a header read from the environment."""
    monkeypatch.setenv("DP_SECRET_TEST_TOKEN", "s3cret")
    answers = [Reply(503, {"error": "busy"}, {"Retry-After": "0"}), Reply(200, [{"a": 1}, {"a": None}])]
    http_server.route = lambda request: answers.pop(0)
    params = {
        "url": f"{http_server.url}/q",
        "method": "POST",
        "body": {"since": "2024-01-01"},
        "query": {"x": 1},
        "headers": {"Authorization": "${env:DP_SECRET_TEST_TOKEN}"},
        "backoff_seconds": 0,
    }
    result = run_node("ApiEndpoint", render(params, {}), {}, ctx_http(http_resource))  # sealed as the runtime does
    pd.testing.assert_frame_equal(result, pd.json_normalize([{"a": 1}, {"a": None}]))
    assert [r.json() for r in http_server.requests] == [{"since": "2024-01-01"}] * 2
    assert http_server.requests[-1].headers["authorization"] == "s3cret"
    assert query(http_server.requests[-1]) == {"x": "1"}


def test_retry_after_is_honoured_and_4xx_is_not_retried(http_server: LoopbackServer, http_resource: Any) -> None:
    waits: list[float] = []
    answers = [Reply(429, {}, {"Retry-After": "7"}), Reply(502, {}), Reply(200, {"ok": True})]
    http_server.route = lambda request: answers.pop(0)
    response = send_with_retries(
        http_resource, "GET", http_server.url, retries=3, backoff_seconds=0.25, sleep=waits.append
    )
    assert response.json() == {"ok": True}
    assert waits == [7.0, 0.5]  # Retry-After, then exponential backoff
    http_server.route = lambda request: Reply(404, {"error": "nope"})
    with pytest.raises(HttpStatusError, match="404"):
        send_with_retries(http_resource, "GET", http_server.url, retries=3, sleep=waits.append)
    assert len(waits) == 2


def test_api_endpoint_empty_response(http_server: LoopbackServer, http_resource: Any) -> None:
    http_server.route = lambda request: Reply(200, {"data": {"items": []}})
    result = run_node("ApiEndpoint", {"url": http_server.url, "record_path": "data.items"}, {}, ctx_http(http_resource))
    assert result.empty


# --- APIRequest -------------------------------------------------------------------------------


class IdempotentServer:
    """Applies each request's effect once per Idempotency-Key; fails the first try of each key."""

    def __init__(self) -> None:
        self.applied: dict[str, Any] = {}
        self.attempts: dict[str, int] = {}

    def __call__(self, request: Recorded) -> Reply:
        key = request.headers.get("idempotency-key", "")
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if key not in self.applied:
            self.applied[key] = request.json()
        if self.attempts[key] == 1:
            return Reply(500, {"error": "applied, but the answer was lost"})
        return Reply(201, {"key": key})


def test_api_request_per_row_same_key_on_every_attempt(http_server: LoopbackServer, http_resource: Any) -> None:
    """E6: retries and a re-run send the same idempotency key; the server applies each row once."""
    server = IdempotentServer()
    http_server.route = server
    df = pd.DataFrame(
        {"id": [1, 2, 3], "at": pd.to_datetime(["2024-01-01"] * 3).tz_localize("UTC"), "v": [1.5, None, 2.0]}
    )
    params = {"url": f"{http_server.url}/effects", "backoff_seconds": 0}
    first = run_node("APIRequest", params, {"input": df}, ctx_http(http_resource))
    second = run_node("APIRequest", params, {"input": df}, ctx_http(http_resource))  # the step ran again
    assert first["status_code"].tolist() == [201] * 3
    assert first["idempotency_key"].tolist() == second["idempotency_key"].tolist()
    assert len(server.applied) == 3 and all(n == 3 for n in server.attempts.values())
    expected = json.loads(df.to_json(orient="records", date_format="iso", date_unit="us"))
    assert list(server.applied.values()) == expected


def test_api_request_batches_and_collects_errors(http_server: LoopbackServer, http_resource: Any) -> None:
    """APIRequest-batch: batches of 2 under a body key; errors collected when asked."""
    http_server.route = lambda request: Reply(400 if len(request.json()["rows"]) == 1 else 200, {})
    df = pd.DataFrame({"x": range(5)})
    params = {
        "url": http_server.url,
        "mode": "batch",
        "batch_size": 2,
        "body_key": "rows",
        "errors": "collect",
        "rate_limit": 1000,
    }
    log = run_node("APIRequest", params, {"input": df}, ctx_http(http_resource))
    assert log[["first_row", "rows", "status_code"]].values.tolist() == [[0, 2, 200], [2, 2, 200], [4, 1, 400]]
    assert log["error"].notna().tolist() == [False, False, True]
    assert [r.json()["rows"] for r in http_server.requests] == [[{"x": 0}, {"x": 1}], [{"x": 2}, {"x": 3}], [{"x": 4}]]
    with pytest.raises(HttpStatusError):
        run_node("APIRequest", {**params, "errors": "raise"}, {"input": df}, ctx_http(http_resource))
