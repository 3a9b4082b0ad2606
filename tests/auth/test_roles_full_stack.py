"""Roles on a whole deployment on loopback (issue 23, "Done when"): `dagster dev` (webserver and
daemon), the authenticating proxy in front of it, the designer behind its own proxy, and the
receiver, all with roles on over one flow store. For each role, what it can and cannot do
through every entry point, including the hostile attempts: a runner's token used to publish; a
viewer's mutation under another name, in a batch, over the WebSocket; a token of one workspace
used on another's flow. A launch that is allowed runs to SUCCESS on the real daemon; one that is
refused starts no run (counted in Dagster's own run storage).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.cli.home import prepare_instance
from dp_assets.store_api import FlowStoreAPI
from dp_auth.access import AccessStore
from dp_auth.permissions import LOCAL_ADMIN, Kind, Role
from dp_designer.app import build_app
from dp_designer.identity import DesignerAuth
from dp_designer.runs_api import RunsService
from dp_proxy.app import DagsterProxy
from dp_proxy.auth import hash_password
from dp_proxy.settings import ProxySettings
from dp_resources.store import FlowStore
from dp_sensors.webhook import serve_in_thread
from dp_settings import load
from tests.auth.test_proxy_roles import ui_launch
from tests.support.dagster_processes import DagsterPlatform
from tests.support.processes import wait_for
from tests.support.receiver import platform_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

KEY = "full-stack-identity-key-" + "z" * 16
PASSWORD = "a long enough password"
USERS = ("vic", "rita", "ed", "boss")
ROWS = [{"region": "north", "amount": 5.0}, {"region": "south", "amount": 2.0}]


def _flow(flow_id: str) -> dict:
    return {
        "id": flow_id,
        "params": {"min_amount": {"type": "number", "default": 0}},
        "nodes": [
            {"id": "rows", "type": "StaticData", "params": {"rows": ROWS}},
            {
                "id": "kept",
                "type": "FilterRows",
                "inputs": ["rows"],
                "params": {"condition": "amount >= params.min_amount"},
            },
            {"id": "shown", "type": "DisplayResults", "inputs": ["kept"]},
        ],
    }


@dataclass
class Deployment:
    platform: DagsterPlatform
    access: AccessStore
    proxy: str  # in front of the webserver
    designer: str  # the designer's proxy
    receiver: str
    tokens: dict[str, str]  # "sales_runner", "hr_runner" -> token text

    def runs(self) -> int:
        with self.platform.instance() as instance:
            return instance.get_runs_count()


def user(name: str) -> dict[str, str]:
    basic = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {basic}", "X-Dagster-Request": "1"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Dagster-Request": "1"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("roles-stack")
    flows = root / "flows"
    flows.mkdir()
    platform = DagsterPlatform(root=root, flows=flows)
    prepare_instance(platform.dagster_home)
    store = FlowStore(platform.store_url)
    api = FlowStoreAPI(store, default_catalog())
    api.publish(_flow("sales_api"), workspace="sales")
    api.publish(_flow("payroll_api"), workspace="hr")
    access = api.access
    access.grant(LOCAL_ADMIN, Kind.user, "vic", "sales", Role.viewer)
    access.grant(LOCAL_ADMIN, Kind.user, "rita", "sales", Role.runner)
    access.grant(LOCAL_ADMIN, Kind.user, "ed", "sales", Role.editor)
    access.grant(LOCAL_ADMIN, Kind.user, "boss", "*", Role.admin)
    tokens = {}
    for name, workspace in (("sales_runner", "sales"), ("hr_runner", "hr")):
        token_id, tokens[name] = access.create_token(LOCAL_ADMIN, name)
        access.grant(LOCAL_ADMIN, Kind.token, token_id, workspace, Role.runner)
    users = {name: hash_password(PASSWORD) for name in USERS}
    settings = load({**platform.env, "DP_INVOKE_MAX_WAIT_SECONDS": "300"})
    try:
        platform.start_dev()
        with ExitStack() as stack:

            def proxy_to(upstream: str) -> str:
                proxied = ProxySettings(
                    upstream=upstream, users=users, roles=True, store_url=store.url, identity_key=KEY
                )
                return stack.enter_context(serve_in_thread(DagsterProxy(proxied)))

            runs = RunsService(graphql_url=platform.graphql_url)
            designer = build_app(api, runs, client_dist=None, auth=DesignerAuth(access, KEY.encode()))
            yield Deployment(
                platform,
                access,
                proxy=proxy_to(platform.url),
                designer=proxy_to(stack.enter_context(serve_in_thread(designer))),
                receiver=stack.enter_context(platform_receiver(platform, settings)),
                tokens=tokens,
            )
    finally:
        platform.stop()


def graphql(deployment: Deployment, headers: dict, body) -> httpx.Response:
    return httpx.post(f"{deployment.proxy}/graphql", headers=headers, json=body, timeout=120)


def run_status(deployment: Deployment, headers: dict, run_id: str) -> str | None:
    query = "query R($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
    answer = graphql(deployment, headers, {"query": query, "variables": {"id": run_id}})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["runOrError"].get("status")


def wait_success(deployment: Deployment, headers: dict, run_id: str) -> None:
    def finished() -> str | None:
        status = run_status(deployment, headers, run_id)
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    status = wait_for(f"run {run_id}", finished, timeout=600, on_timeout=deployment.platform.logs)
    assert status == "SUCCESS", deployment.platform.logs()


def launch_query(job: str, alias: str = "") -> str:
    selector = f'{{repositoryLocationName: "dp_platform", repositoryName: "__repository__", jobName: "{job}"}}'
    return f"mutation {{ {alias}launchRun(executionParams: {{selector: {selector}}}) {{ __typename }} }}"


def test_the_dagster_ui_behind_the_proxy_by_role(deployment):
    rita, vic = user("rita"), user("vic")
    before = deployment.runs()

    # a viewer's launch, however dressed, starts nothing
    hostile = [
        ui_launch("sales_api"),
        {"query": launch_query("sales_api", alias="look: ")},
        [{"query": "{ version }"}, {"query": launch_query("sales_api")}],
        {
            "query": "query Look { version } " + launch_query("sales_api").replace("mutation", "mutation M"),
            "operationName": "Look",
        },
    ]
    for body in hostile:
        assert graphql(deployment, vic, body).status_code == 403, body

    async def over_websocket() -> dict:
        from websockets.asyncio.client import connect

        headers = {"Authorization": vic["Authorization"], "X-Dagster-Request": "1"}
        url = deployment.proxy.replace("http", "ws") + "/graphql"
        async with connect(url, additional_headers=headers, subprotocols=["graphql-ws"]) as socket:
            await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
            await socket.send(json.dumps({"type": "start", "id": "1", "payload": {"query": launch_query("sales_api")}}))
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), 30))
                if message.get("type") != "connection_ack" and message.get("type") != "ka":
                    return message

    refused = asyncio.run(over_websocket())
    assert refused["type"] == "error" and "may not run flow 'sales_api'" in json.dumps(refused)
    # a token of hr on sales' flow; a runner of sales on hr's
    assert graphql(deployment, bearer(deployment.tokens["hr_runner"]), ui_launch("sales_api")).status_code == 403
    assert graphql(deployment, rita, ui_launch("payroll_api")).status_code == 403
    assert deployment.runs() == before

    # the runner launches her flow as the UI does; it runs on the daemon; the viewer may watch it
    answer = graphql(deployment, rita, ui_launch("sales_api", {"min_amount": 3}))
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["data"]["launchPipelineExecution"]["run"]["id"]
    wait_success(deployment, vic, run_id)
    assert deployment.runs() == before + 1
    # ...but not hr's runs, nor every run of every workspace
    assert graphql(deployment, vic, {"query": "{ runsOrError { __typename } }"}).status_code == 403
    hr_run = graphql(deployment, user("boss"), ui_launch("payroll_api")).json()["data"]["launchPipelineExecution"]
    answer = graphql(deployment, vic, {"query": f'{{ runOrError(runId: "{hr_run["run"]["id"]}") {{ __typename }} }}'})
    assert answer.status_code == 403
    # who launched what, from Dagster's record of the run
    launches = [(e.actor, e.flow_id, e.detail) for e in deployment.access.audit() if e.action == "launch"]
    assert ("user:rita", "sales_api", {"run_id": run_id, "via": "dagster-ui", "params": ["min_amount"]}) in launches


def test_the_designer_behind_its_proxy_by_role(deployment):
    def call(method: str, path: str, headers: dict, **kwargs) -> httpx.Response:
        return httpx.request(method, deployment.designer + path, headers=headers, timeout=300, **kwargs)

    body = {"document": {**_flow("sales_api"), "description": "changed"}, "message": "x"}
    for who in (user("vic"), user("rita")):
        listed = call("GET", "/api/flows", who).json()["flows"]
        assert [row["id"] for row in listed] == ["sales_api"]  # hr's flow is not even listed
        assert call("GET", "/api/flows/payroll_api", who).status_code == 403
        assert call("POST", "/api/flows/sales_api/publish", who, json=body).status_code == 403
    # a runner's service token used to publish (the proxy names the token to the designer, signed)
    sales_runner = bearer(deployment.tokens["sales_runner"])
    assert call("POST", "/api/flows/sales_api/publish", sales_runner, json=body).status_code == 403
    # a token of hr on sales' flow
    hr = bearer(deployment.tokens["hr_runner"])
    assert call("GET", "/api/flows/sales_api", hr).status_code == 403
    assert call("POST", "/api/flows/sales_api/runs", hr, json={"params": {}}).status_code == 403
    # the editor publishes, and is the version's author
    published = call("POST", "/api/flows/sales_api/publish", user("ed"), json=body)
    assert published.status_code == 200, published.text
    history = call("GET", "/api/flows/sales_api/history", user("vic")).json()["versions"]
    assert history[-1]["author"] == "ed"
    # the runner launches from the designer; the run succeeds
    launched = call("POST", "/api/flows/sales_api/runs", user("rita"), json={"params": {"min_amount": 1}})
    assert launched.status_code == 201, launched.text
    wait_success(deployment, user("rita"), launched.json()["run_id"])


def test_the_receiver_and_dp_by_service_token(deployment):
    def invoke(flow_id: str, token: str) -> httpx.Response:
        return httpx.post(
            f"{deployment.receiver}/flows/{flow_id}/invoke",
            json={"params": {"min_amount": 3}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        )

    before = deployment.runs()
    assert invoke("sales_api", deployment.tokens["hr_runner"]).status_code == 401  # another workspace's token
    assert deployment.runs() == before
    answer = invoke("sales_api", deployment.tokens["sales_runner"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["shown"]["rows"] == [{"region": "north", "amount": 5.0}]

    # dp against the store with a runner's token: no publish, no delete
    env = {**deployment.platform.env, "DP_AUTH_TOKEN": deployment.tokens["sales_runner"]}
    dp = [sys.executable, "-m", "dp_assets.cli"]
    refused = subprocess.run([*dp, "delete", "sales_api"], env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "may not edit flow 'sales_api'" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
