"""The ``dp`` commands of this package and the receiver over the flow store: webhooks only for
flows that listen to them, launches for every flow (real uvicorn on loopback)."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from triggers_support import flow_spec

from dp_assets.cli import main as dp
from dp_assets.receiver import StoreFlowCatalog, receiver_app
from dp_resources.store import FlowStore
from dp_sensors.cli import _pairs
from dp_sensors.events.sql import SqlEventBus
from dp_sensors.webhook import LaunchLedger, serve_in_thread

PARAMS = {"region": {"type": "string", "required": True}, "n": {"type": "integer"}}
HOOKED = flow_spec("hooked", params=PARAMS, triggers=[{"type": "event", "topics": ["webhook.*"]}])
PLAIN = flow_spec("plain", params=PARAMS)
NEXT = flow_spec("after_plain", triggers=[{"type": "flow", "flow": "plain"}])
CLEANUP = flow_spec(
    "cleanup",
    triggers=[{"type": "flow", "flow": "plain", "on": "failure"}, {"type": "flow", "flow": "hooked", "enabled": False}],
)


@pytest.fixture
def store(tmp_path):
    store = FlowStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    for spec in (HOOKED, PLAIN, NEXT, CLEANUP):
        store.save(spec["id"], "v1", spec)
    return store


def test_catalog_knows_webhook_flows_and_chain_links(store):
    hooks, launches = StoreFlowCatalog(store), StoreFlowCatalog(store, webhooks_only=False)
    assert hooks.get_params_model("hooked") is not None
    assert hooks.get_params_model("plain") is None and hooks.get_params_model("nope") is None
    model = launches.get_params_model("plain")
    assert model.model_validate({"region": "EU"}).model_dump(exclude_unset=True) == {"region": "EU"}
    with pytest.raises(ValueError):
        model.model_validate({"region": "EU", "n": "3"})  # the job's types: no string for an int
    assert launches.downstream("plain", "success") == ["after_plain"]
    assert launches.downstream("plain", "failure") == ["cleanup"]
    assert launches.downstream("hooked", "success") == []  # a disabled link


def test_receiver_routes_hooks_and_launches(store, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    bus, ledger = SqlEventBus(url), LaunchLedger(url)
    bus.ensure_schema()
    ledger.ensure_schema()
    launched: list[tuple] = []

    def launcher(flow_id, params, tags):  # the GraphQL launcher is exercised in test_e2e
        launched.append((flow_id, params, tags))
        return f"run-{len(launched)}"

    app = receiver_app(store, bus, ledger=ledger, launcher=launcher, environ={"DP_WEBHOOK_TOKEN": "t"})
    auth = {"Authorization": "Bearer t"}
    with serve_in_thread(app) as base:
        hook = httpx.post(f"{base}/hooks/hooked", json={"region": "EU"}, headers=auth)
        assert hook.status_code == 202 and hook.json()["topic"] == "webhook.hooked"
        assert httpx.post(f"{base}/hooks/plain", json={"region": "EU"}, headers=auth).status_code == 404
        run = httpx.post(
            f"{base}/flows/plain/runs", json={"params": {"region": "EU"}}, headers={**auth, "Idempotency-Key": "k1"}
        )
        assert run.status_code == 201 and run.json()["run_id"] == "run-1"
        again = httpx.post(
            f"{base}/flows/plain/runs", json={"params": {"region": "EU"}}, headers={**auth, "Idempotency-Key": "k1"}
        )
        assert again.status_code == 200 and again.json()["run_id"] == "run-1"
        assert (
            httpx.post(f"{base}/flows/nope/runs", json={}, headers={**auth, "Idempotency-Key": "k2"}).status_code == 404
        )
    assert launched == [("plain", {"region": "EU"}, {"dp/trigger": "api", "dp/idempotency_key": "k1"})]
    (event,) = bus.read_after(None)
    assert event.data == {"flow_id": "hooked", "params": {"region": "EU"}}
    bus.close()
    ledger.close()


def test_dp_mounts_the_commands(tmp_path):
    listed = CliRunner().invoke(dp, ["--help"])
    for name in ("events", "launch", "status", "retry-failed", "webhook"):
        assert name in listed.output
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    published = CliRunner().invoke(dp, ["events", "publish", "orders.created", "--data", '{"n": 1}', "--url", url])
    assert published.exit_code == 0, published.output
    assert json.loads(published.output)["topic"] == "orders.created"
    serve_help = CliRunner().invoke(dp, ["webhook", "serve", "--help"])
    assert serve_help.exit_code == 0 and "DP_WEBHOOK_TOKEN" in serve_help.output


@pytest.mark.parametrize(
    "items,expected",
    [
        pytest.param(("n=5", "ok=true", "days=[1,2]"), {"n": 5, "ok": True, "days": [1, 2]}, id="json-values"),
        pytest.param(("region=EU", "note=a=b"), {"region": "EU", "note": "a=b"}, id="text-values"),
        pytest.param(('s="5"',), {"s": "5"}, id="quoted-number-is-text"),
    ],
)
def test_param_values(items, expected):
    assert _pairs(items, "--param") == expected


def test_launch_against_nothing_says_where_it_looked():
    result = CliRunner().invoke(dp, ["launch", "x", "--url", "http://127.0.0.1:9/graphql"])
    assert result.exit_code != 0 and "cannot reach the Dagster webserver at http://127.0.0.1:9/graphql" in result.output
