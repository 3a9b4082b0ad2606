"""The designer in the production topology (docker-compose.yml's `designer` behind
`designer-proxy`), as plain processes on loopback: the stack of ``deploy_stack.py`` (gRPC code
server, webserver, daemon, Celery workers, PostgreSQL), `dp designer` on the stack's flow store
launching through the webserver's GraphQL, and the authenticating proxy in front of it.

What a person behind the proxy relies on: without credentials nothing (not even the client's
page) is served; a cross-site page cannot save a draft or publish; a flow drawn and published
through the proxy is recorded with the proxy's user as its author, the code server loads it
(the designer asks the webserver to reload the location) and a launch from the designer runs it
on the Celery workers to SUCCESS, each node's output readable from the designer.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from conftest import PROXY_USER
from deploy_flows import expected_combined, fan_out_spec, node_ids
from deploy_stack import Stack

from dp_designer.cli import DEFAULT_PORT
from dp_proxy.auth import hash_password
from tests.support.processes import PYTHON, REPO_ROOT, free_port, http_status, start_process, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(900)]

SEEDED = "fan_out"
DRAWN = "drawn_in_designer"
WIDTH = 2
ROUNDS = 20_000


@dataclass
class DesignerBehindProxy:
    url: str  # the proxy's
    origin: str
    auth: dict[str, str]
    stack: Stack

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {**self.auth, "Origin": self.origin, **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def designer(stack_factory) -> Iterator[DesignerBehindProxy]:
    if not (REPO_ROOT / "designer" / "dist" / "index.html").exists():
        pytest.fail("the designer's client is not built: `make install` builds designer/dist")
    stack = stack_factory.start([fan_out_spec(SEEDED, WIDTH, rounds=ROUNDS)], workers=2)
    port, proxy_port = free_port(), free_port()
    # As in docker-compose.yml: the Dagster services' environment, GraphQL of the unproxied
    # webserver, the client the build made.
    env = {**stack.env, "DP_DAGSTER_GRAPHQL_URL": f"{stack.webserver_url}/graphql"}
    argv = [PYTHON, "-m", "dp_assets.cli", "designer", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--client", str(REPO_ROOT / "designer" / "dist")]
    process = start_process("designer", argv, env=env, log_dir=stack.root / "logs")
    stack.processes["designer"] = process  # stopped with the stack
    upstream = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_status(f"{upstream}/api/openapi.json") == 200, process=process, what="the designer")
    password = secrets.token_urlsafe(16)
    proxy_env = {key: value for key, value in stack.env.items() if not key.startswith(("DP_PROXY_", "DP_AUTH_"))}
    proxy_env["DP_PROXY_USERS"] = f"{PROXY_USER}:{hash_password(password)}"
    argv = [PYTHON, "-m", "dp_proxy", "serve", "--upstream", upstream]
    argv += ["--host", "127.0.0.1", "--port", str(proxy_port), "--log-level", "warning"]
    proxy = start_process("designer-proxy", argv, env=proxy_env, log_dir=stack.root / "logs")
    stack.processes["designer-proxy"] = proxy
    url = f"http://127.0.0.1:{proxy_port}"
    wait_until(lambda: http_status(url) == 401, process=proxy, what="the designer's proxy")
    basic = base64.b64encode(f"{PROXY_USER}:{password}".encode()).decode()
    yield DesignerBehindProxy(url, url, {"Authorization": f"Basic {basic}"}, stack)


def test_the_designers_port_is_the_compose_default() -> None:
    """The compose file's designer port is the command's default (the proxy's upstream)."""
    assert f"http://designer:{DEFAULT_PORT}" in (REPO_ROOT / "docker-compose.yml").read_text()


def test_nothing_is_served_without_credentials(designer: DesignerBehindProxy) -> None:
    for path in ("/", "/api/flows", f"/api/flows/{SEEDED}", "/api/openapi.json"):
        response = httpx.get(designer.url + path, timeout=60)
        assert response.status_code == 401, path
    page = designer.call("GET", "/")
    assert page.status_code == 200 and '<div id="root">' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    flows = designer.call("GET", "/api/flows").json()
    assert SEEDED in {flow["id"] for flow in flows["flows"]}


def test_a_cross_site_page_cannot_save_or_publish(designer: DesignerBehindProxy) -> None:
    document = fan_out_spec(DRAWN, WIDTH, rounds=ROUNDS)
    evil = {"Origin": "http://evil.example"}
    saved = designer.call("PUT", f"/api/flows/{DRAWN}/draft", json={"document": document}, headers=evil)
    published = designer.call(
        "POST", f"/api/flows/{DRAWN}/publish", json={"document": document, "message": "x"}, headers=evil
    )
    assert (saved.status_code, published.status_code) == (403, 403)
    assert designer.call("GET", f"/api/flows/{DRAWN}").status_code == 404


def test_a_flow_published_through_the_proxy_runs_on_the_stack(designer: DesignerBehindProxy) -> None:
    document = fan_out_spec(DRAWN, WIDTH, rounds=ROUNDS)
    saved = designer.call("PUT", f"/api/flows/{DRAWN}/draft", json={"document": document})
    assert saved.status_code == 200, saved.text
    published = designer.call("POST", f"/api/flows/{DRAWN}/publish", json={"message": "first cut"})
    assert published.status_code == 200, published.text
    assert published.json()["published"] and published.json()["reloaded"], published.json()
    history = designer.call("GET", f"/api/flows/{DRAWN}/history").json()["versions"]
    assert [(v["message"], v["author"]) for v in history] == [("first cut", PROXY_USER)]

    table = f"{DRAWN}_{secrets.token_hex(4)}"
    launched = designer.call("POST", f"/api/flows/{DRAWN}/runs", json={"params": {"table": table}})
    assert launched.status_code in (200, 201), launched.text
    run_id = launched.json()["run_id"]
    designer.stack.wait_run(run_id)
    state = designer.call("GET", f"/api/flows/{DRAWN}/runs/{run_id}").json()
    assert state["status"] == "SUCCESS", designer.stack.describe(run_id)
    assert set(state["succeeded"]) == node_ids(WIDTH)
    workers = {execution.worker_name for execution in designer.stack.step_executions(run_id)}
    assert workers and workers <= set(designer.stack.workers), workers
    combined = designer.call("GET", f"/api/flows/{DRAWN}/runs/{run_id}/nodes/combined").json()
    expected = expected_combined(WIDTH, ROUNDS)
    assert combined["row_count"] == len(expected)
    got = sorted((row["k"], row["total"], row["salt"]) for row in combined["rows"])
    assert got == sorted((row["k"], row["total"], row["salt"]) for row in expected)
    listed = designer.call("GET", f"/api/flows/{DRAWN}/runs").json()["runs"]
    assert [(r["run_id"], r["launched_by"]) for r in listed] == [(run_id, PROXY_USER)]
