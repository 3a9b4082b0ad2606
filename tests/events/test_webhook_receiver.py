"""``POST /hooks/{flow_id}`` against a real uvicorn server on loopback, with real httpx clients."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from dp_sensors.events.sql import SqlEventBus
from dp_sensors.webhook import create_app
from tests.support.processes import free_port, start_process, wait_until

GLOBAL = "global-secret"
SCOPED = "scoped-secret"
MAX_BODY = 1024


class OrderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: int
    region: str = "eu"


class Catalog:
    """A stand-in for the flow store: two flows with a strict params model."""

    def __init__(self) -> None:
        self.models = {"orders": OrderParams, "scoped": OrderParams}

    def get_params_model(self, flow_id: str) -> type[BaseModel] | None:
        return self.models.get(flow_id)


@pytest.fixture
def events(sqlite_url: str) -> Iterator[SqlEventBus]:
    bus = SqlEventBus(sqlite_url)
    bus.ensure_schema()
    yield bus
    bus.close()


@pytest.fixture
def receiver(events: SqlEventBus, start_server: Callable[..., str]) -> Iterator[httpx.Client]:
    app = create_app(
        catalog=Catalog(),
        bus=events,
        max_body_bytes=MAX_BODY,
        environ={"DP_WEBHOOK_TOKEN": GLOBAL, "DP_WEBHOOK_TOKEN_SCOPED": SCOPED},
    )
    with httpx.Client(base_url=start_server(app), timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_webhook_publishes_an_event_202(receiver: httpx.Client, events: SqlEventBus) -> None:
    response = receiver.post("/hooks/orders", json={"order_id": "7"}, headers=bearer(GLOBAL))
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    (event,) = events.read_after(None)
    assert event.id == event_id and response.json()["topic"] == "webhook.orders"
    assert event.topic == "webhook.orders"
    assert event.data == {"flow_id": "orders", "params": {"order_id": 7}}
    assert event.source == "webhook"


def test_scoped_token_opens_its_flow_only(receiver: httpx.Client, events: SqlEventBus) -> None:
    ok = receiver.post("/hooks/scoped", json={"order_id": 1}, headers=bearer(SCOPED))
    assert ok.status_code == 202
    other_flow = receiver.post("/hooks/orders", json={"order_id": 1}, headers=bearer(SCOPED))
    global_token = receiver.post("/hooks/scoped", json={"order_id": 1}, headers=bearer(GLOBAL))
    assert other_flow.status_code == 401 and global_token.status_code == 401
    assert len(events.read_after(None)) == 1


REFUSALS = [
    ("no-token", "/hooks/orders", {}, {"json": {"order_id": 1}}, 401),
    ("wrong-token", "/hooks/orders", bearer("nope"), {"json": {"order_id": 1}}, 401),
    ("basic-scheme", "/hooks/orders", {"Authorization": f"Basic {GLOBAL}"}, {"json": {"order_id": 1}}, 401),
    ("token-prefix", "/hooks/orders", bearer(GLOBAL[:-1]), {"json": {"order_id": 1}}, 401),
    ("unknown-flow-needs-token-first", "/hooks/nope", {}, {"json": {}}, 401),
    ("unknown-flow", "/hooks/nope", bearer(GLOBAL), {"json": {"order_id": 1}}, 404),
    ("bad-flow-id", "/hooks/Orders", bearer(GLOBAL), {"json": {"order_id": 1}}, 404),
    (
        "too-large-declared",
        "/hooks/orders",
        bearer(GLOBAL),
        {"content": b'{"order_id": 1, "pad": "' + b"x" * 2000 + b'"}'},
        413,
    ),
    (
        "too-large-streamed",
        "/hooks/orders",
        bearer(GLOBAL),
        {"content": iter([b'{"order_id": 1, "pad": "'] + [b"x" * 200] * 10 + [b'"}'])},
        413,
    ),
    ("not-json", "/hooks/orders", bearer(GLOBAL), {"content": b"{order_id: 1"}, 400),
    ("nan-json", "/hooks/orders", bearer(GLOBAL), {"content": b'{"order_id": NaN}'}, 400),
    ("not-an-object", "/hooks/orders", bearer(GLOBAL), {"json": [1, 2]}, 422),
    ("wrong-type", "/hooks/orders", bearer(GLOBAL), {"json": {"order_id": "seven"}}, 422),
    ("missing-field", "/hooks/orders", bearer(GLOBAL), {"json": {"region": "us"}}, 422),
    ("unknown-field", "/hooks/orders", bearer(GLOBAL), {"json": {"order_id": 1, "x": 1}}, 422),
]


@pytest.mark.parametrize(("path", "headers", "body", "status"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refused_requests_publish_nothing(
    receiver: httpx.Client, events: SqlEventBus, path: str, headers: dict, body: dict, status: int
) -> None:
    response = receiver.post(path, headers=headers, **body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert events.read_after(None) == []


def test_422_names_the_flow_and_field_without_echoing_input(receiver: httpx.Client) -> None:
    response = receiver.post("/hooks/orders", json={"order_id": "secret-value"}, headers=bearer(GLOBAL))
    assert response.status_code == 422
    body = response.json()
    assert "'orders'" in body["detail"]
    assert [error["loc"] for error in body["errors"]] == [["order_id"]]
    assert "secret-value" not in response.text


def test_redelivery_with_idempotency_key_is_one_event_E1(receiver: httpx.Client, events: SqlEventBus) -> None:
    """E1 at the receiver: a sender retrying one delivery gets the same event id, one event."""
    headers = {**bearer(GLOBAL), "Idempotency-Key": "delivery-42"}
    first = receiver.post("/hooks/orders", json={"order_id": 1}, headers=headers)
    again = receiver.post("/hooks/orders", json={"order_id": 1}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["event_id"] == again.json()["event_id"]
    long_key = {**bearer(GLOBAL), "Idempotency-Key": "k" * 255}
    long_first = receiver.post("/hooks/orders", json={"order_id": 2}, headers=long_key)
    long_again = receiver.post("/hooks/orders", json={"order_id": 2}, headers=long_key)
    assert long_first.status_code == long_again.status_code == 202
    assert long_first.json()["event_id"] == long_again.json()["event_id"]
    assert len(events.read_after(None)) == 2


def test_other_methods_are_not_allowed(receiver: httpx.Client) -> None:
    assert receiver.get("/hooks/orders", headers=bearer(GLOBAL)).status_code == 405
    assert receiver.get("/healthz").json() == {"status": "ok"}


def test_without_any_token_configured_everything_is_refused(
    events: SqlEventBus, start_server: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secure by default: tokens come from the environment, read on every request."""
    monkeypatch.delenv("DP_WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("DP_WEBHOOK_TOKEN_ORDERS", raising=False)
    app = create_app(catalog=Catalog().get_params_model, bus=events)
    with httpx.Client(base_url=start_server(app), timeout=30) as client:
        for headers in ({}, bearer("anything"), bearer("Bearer"), {"Authorization": "Bearer"}):
            response = client.post("/hooks/orders", json={"order_id": 1}, headers=headers)
            assert response.status_code == 401
        monkeypatch.setenv("DP_WEBHOOK_TOKEN_ORDERS", "from-env")
        response = client.post("/hooks/orders", json={"order_id": 1}, headers=bearer("from-env"))
        assert response.status_code == 202
    assert len(events.read_after(None)) == 1


def test_create_app_checks_its_arguments(events: SqlEventBus) -> None:
    with pytest.raises(ValueError, match="both ledger and launcher"):
        create_app(catalog=Catalog(), bus=events, launcher=lambda f, p, t: "run")
    with pytest.raises(ValueError, match="max_body_bytes"):
        create_app(catalog=Catalog(), bus=events, max_body_bytes=0)


SERVE_SCRIPT = """
import sys
from pydantic import BaseModel, ConfigDict
from dp_sensors.webhook.server import serve

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: int

serve("127.0.0.1", int(sys.argv[1]), catalog={"orders": Params}.get, log_level="warning")
"""


def test_serve_runs_the_receiver_in_its_own_process(dp_home, tmp_path) -> None:
    """``serve()`` as ``dp webhook serve`` runs it: its own process, tokens and bus from the env."""
    port = free_port()
    env = {**os.environ, "DP_WEBHOOK_TOKEN": "proc-secret", "DP_EVENTS_URL": f"sqlite:///{tmp_path / 'proc.db'}"}
    process = start_process("receiver", [sys.executable, "-c", SERVE_SCRIPT, str(port)], env=env, log_dir=tmp_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until(
                lambda: client.get("/healthz").status_code,
                process=process,
                what="the receiver answering",
                bound_seconds=60,
                interval=0.1,
            )
            response = client.post("/hooks/orders", json={"order_id": 3}, headers=bearer("proc-secret"))
            assert response.status_code == 202, response.text
            assert (
                client.post("/flows/orders/runs", json={}, headers=bearer("proc-secret")).status_code == 404
            )  # no launcher given: launches are off
    finally:
        process.stop(grace_seconds=30)
    bus = SqlEventBus(env["DP_EVENTS_URL"])
    assert [e.id for e in bus.read_after(None)] == [response.json()["event_id"]]
    bus.close()
