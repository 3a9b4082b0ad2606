"""The receiver with service tokens: a token opens only the flows its roles allow.

The receiver as the platform serves it (``receiver_app`` over the real flow store, bus and
launch ledger); the launcher records what it was asked to start.
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from dp_assets.receiver import receiver_app
from dp_auth.access import AccessStore
from dp_auth.permissions import LOCAL_ADMIN, Kind, Role
from dp_resources.store import FlowStore
from dp_sensors.events.sql import SqlEventBus
from dp_sensors.webhook import LaunchLedger

STATIC = {"id": "rows", "type": "StaticData", "params": {"rows": [{"x": 1}]}}


def _flow(flow_id: str) -> dict:
    return {"id": flow_id, "nodes": [STATIC], "triggers": [{"type": "event", "topics": [f"webhook.{flow_id}"]}]}


@pytest.fixture
def receiver(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = FlowStore(url)
    store.upgrade()
    store.save("orders", "v1", _flow("orders"), workspace="sales")
    store.save("payroll", "v1", _flow("payroll"), workspace="hr")
    bus, ledger = SqlEventBus(url), LaunchLedger(url)
    bus.ensure_schema()
    ledger.ensure_schema()
    launched: list[str] = []

    def launcher(flow_id, params, tags):
        launched.append(flow_id)
        return f"run-{len(launched)}"

    access = AccessStore(store)
    tokens = {}
    for name, role, workspace, flow in [
        ("runner", Role.runner, "sales", "orders"),
        ("viewer", Role.viewer, "sales", None),
        ("hr_runner", Role.runner, "hr", None),
    ]:
        token_id, text = access.create_token(LOCAL_ADMIN, name)
        access.grant(LOCAL_ADMIN, Kind.token, token_id, workspace, role, flow)
        tokens[name] = (token_id, text)
    # no DP_WEBHOOK_TOKEN: only service tokens open anything
    app = receiver_app(store, bus, ledger=ledger, launcher=launcher, environ={})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tokens, launched, bus, access
    bus.close()
    ledger.close()


def _launch(client, flow_id, text, key="k1"):
    headers = {"Authorization": f"Bearer {text}", "Idempotency-Key": key}
    return client.post(f"/flows/{flow_id}/runs", json={"params": {}}, headers=headers)


def _hook(client, flow_id, text):
    return client.post(f"/hooks/{flow_id}", json={}, headers={"Authorization": f"Bearer {text}"})


def test_service_tokens_open_only_the_flows_their_roles_allow(receiver):
    client, tokens, launched, bus, access = receiver
    runner, viewer, hr_runner = tokens["runner"][1], tokens["viewer"][1], tokens["hr_runner"][1]

    assert _launch(client, "orders", runner).status_code in (201, 202)
    assert _hook(client, "orders", runner).status_code == 202
    assert launched == ["orders"] and len(bus.read_after(None)) == 1

    # a viewer may not launch or post; a token of hr may not touch sales' flow (nor the reverse)
    assert _launch(client, "orders", viewer, "k2").status_code == 401
    assert _hook(client, "orders", viewer).status_code == 401
    assert _launch(client, "orders", hr_runner, "k3").status_code == 401
    assert _launch(client, "payroll", runner, "k4").status_code == 401
    assert _launch(client, "payroll", hr_runner, "k5").status_code in (201, 202)
    # made-up and revoked tokens open nothing
    assert _launch(client, "orders", "dpt_0123456789abcdef_" + "A" * 43, "k6").status_code == 401
    access.revoke_token(LOCAL_ADMIN, tokens["runner"][0])
    assert _launch(client, "orders", runner, "k7").status_code == 401
    assert launched == ["orders", "payroll"] and len(bus.read_after(None)) == 1
    # each new launch is in the audit trail with the token that made it (a refused one is not)
    trail = [(e.actor, e.action, e.flow_id, e.detail.get("run_id")) for e in access.audit() if e.action == "launch"]
    assert trail == [
        (f"token:{tokens['runner'][0]}", "launch", "orders", "run-1"),
        (f"token:{tokens['hr_runner'][0]}", "launch", "payroll", "run-2"),
    ]
