"""A page whose name an attacker re-points at 127.0.0.1 (DNS rebinding) is same-origin with a
designer listening there, and could then send JSON: publish, grant roles, launch. A designer on
a loopback address answers only loopback Host names (400 for any other), and changes nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st
from hypothesis.provisional import domains
from starlette.testclient import TestClient

from dp_designer.app import LOOPBACK_HOSTS, build_app, hosts_for
from tests.designer.conftest import SALES, closed_port
from tests.fuzzing import fuzz_settings

GRANT = {"kind": "user", "name": "mallory", "workspace": "*", "role": "admin"}


def _designer(store_api) -> TestClient:  # type: ignore[no-untyped-def]
    from dp_designer.runs_api import RunsService

    runs = RunsService(graphql_url=f"http://127.0.0.1:{closed_port()}/graphql")
    app = build_app(store_api, runs, client_dist=None, allowed_hosts=hosts_for("127.0.0.1"))
    return TestClient(app, base_url="http://127.0.0.1:3001", raise_server_exceptions=False)


def test_where_it_listens_decides_the_names_it_answers():
    assert hosts_for("127.0.0.1") == hosts_for("::1") == hosts_for("localhost") == LOOPBACK_HOSTS
    assert hosts_for("127.0.0.5") == LOOPBACK_HOSTS
    assert hosts_for("0.0.0.0") is None and hosts_for("10.0.0.7") is None  # reached by other names
    assert hosts_for("designer.internal") is None


@fuzz_settings(50, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=domains() | st.sampled_from(["127.0.0.1.evil.example", "localhost.evil.example", "[::2]"]))
@example(name="evil.example")
def test_another_host_name_is_refused_and_changes_nothing(store_api, name):
    client = _designer(store_api)
    headers = {"Host": f"{name}:3001"}
    assert client.post("/api/roles", json=GRANT, headers=headers).status_code == 400
    assert client.post("/api/flows/sales/publish", json={"document": SALES}, headers=headers).status_code == 400
    assert client.get("/api/flows", headers=headers).status_code == 400
    assert store_api.store.published_specs() == []
    roles = client.get("/api/roles").json()
    assert "mallory" not in str(roles)


def test_the_loopback_names_are_answered(store_api):
    client = _designer(store_api)
    for host in ("127.0.0.1:3001", "localhost:3001", "[::1]:3001", "localhost"):
        assert client.get("/api/flows", headers={"Host": host}).status_code == 200
    published = client.post("/api/flows/sales/publish", json={"document": SALES, "message": "local"})
    assert published.status_code == 200, published.text
