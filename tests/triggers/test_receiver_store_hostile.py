"""The receiver as the platform serves it (flow store, params models built from the specs), fed
hostile bodies: every answer is below 500 in bounded time, and an event or a run exists only for
an accepted request (issue 16, endpoints).

The params model of a stored flow has every declared param type, so each type's validator meets
oversized, oddly typed and non-finite values. ``DP_FUZZ_EXAMPLES=N`` runs it longer.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from starlette.testclient import TestClient
from triggers_support import flow_spec

from dp_assets.receiver import receiver_app
from dp_resources.store import FlowStore
from dp_sensors.events.sql import SqlEventBus
from dp_sensors.webhook import LaunchLedger
from tests.fuzzing import SLOW_CHECKS, fuzz_settings

TYPES = ["string", "integer", "number", "boolean", "date", "datetime", "list", "object"]
PARAMS = {f"p_{kind}": {"type": kind} for kind in TYPES}
HOOKED = flow_spec("hooked", params=PARAMS, triggers=[{"type": "event", "topics": ["webhook.hooked"]}])
AUTH = {"Authorization": "Bearer t"}


@pytest.fixture
def platform_receiver(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = FlowStore(url)
    store.upgrade()
    store.save("hooked", "v1", HOOKED)
    bus, ledger = SqlEventBus(url), LaunchLedger(url)
    bus.ensure_schema()
    ledger.ensure_schema()
    launched: list[str] = []

    def launcher(flow_id, params, tags):
        launched.append(flow_id)
        return f"run-{len(launched)}"

    app = receiver_app(store, bus, ledger=ledger, launcher=launcher, environ={"DP_WEBHOOK_TOKEN": "t"})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, bus, launched
    bus.close()
    ledger.close()


HOSTILE_VALUES = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["2024-02-30", "9999-12-31T99:99", "\u0661\u0662", "", "2024-01-01"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)


@st.composite
def param_bodies(draw: st.DrawFn) -> dict:
    names = draw(st.lists(st.sampled_from([*sorted(PARAMS), "unknown"]), unique=True, max_size=4))
    return {name: draw(HOSTILE_VALUES) for name in names}


def test_a_huge_integer_for_a_number_param_is_422_not_500(platform_receiver) -> None:
    """``float(10**400)`` overflows: the number validator must report it, not raise."""
    client, bus, _ = platform_receiver
    body = '{"p_number": 1' + "0" * 400 + "}"
    response = client.post("/hooks/hooked", content=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [["p_number"]]
    assert bus.read_after(None) == []


@fuzz_settings(150, suppress_health_check=[*SLOW_CHECKS, HealthCheck.function_scoped_fixture])
@given(params=param_bodies(), route=st.sampled_from(["hook", "launch"]))
def test_fuzz_params_of_a_stored_flow(platform_receiver, params: dict, route: str) -> None:
    client, bus, launched = platform_receiver
    before_events, before_runs = len(bus.read_after(None, limit=100_000)), len(launched)
    if route == "hook":
        path, body, headers = "/hooks/hooked", params, AUTH
    else:
        key = json.dumps(params, sort_keys=True)[:200].encode("ascii", "replace").decode()
        path, body = "/flows/hooked/runs", {"params": params}
        headers = {**AUTH, "Idempotency-Key": key or "empty"}
    started = time.monotonic()
    response = client.post(path, content=json.dumps(body), headers=headers)
    assert time.monotonic() - started < 5
    assert response.status_code < 500, (response.status_code, response.text[:300])
    events = len(bus.read_after(None, limit=100_000)) - before_events
    runs = len(launched) - before_runs
    assert events <= (1 if response.status_code == 202 else 0)
    assert runs == (1 if response.status_code == 201 else 0)
