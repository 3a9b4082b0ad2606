"""The proxy with roles on, in front of a webserver stand-in, over real HTTP and WebSockets.

Both servers are real uvicorn servers on loopback. The upstream records every GraphQL body
that reaches it and answers the proxy's run look-ups (``runOrError``, ``runsOrError``) from a
table of runs; so
each test shows what got through, not only the status the caller saw. The grants and tokens
are the real flow store's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from dp_auth.access import AccessStore
from dp_auth.identity import IDENTITY_HEADER, verify_identity
from dp_auth.permissions import LOCAL_ADMIN, Kind, Role
from dp_proxy.app import DagsterProxy
from dp_proxy.settings import ProxySettings
from dp_resources.store import FlowStore
from dp_sensors.webhook.server import serve_in_thread
from tests.fuzzing import fuzz_settings

PASSWORD = "correct horse battery"
KEY = "identity-key-" + "x" * 20
RUNS = {"run-sales": "sales", "run-payroll": "payroll"}
CSRF = {"X-Dagster-Request": "1", "Content-Type": "application/json"}


def cheap_hash(password: str) -> str:
    salt = b"fixed-test-salt!"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=16, r=8, p=1)
    encoded = [base64.urlsafe_b64encode(x).decode().rstrip("=") for x in (salt, digest)]
    return f"scrypt:16:8:1:{encoded[0]}:{encoded[1]}"


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode(), **CSRF}


class Webserver:
    """Records GraphQL bodies and subscription starts; answers run look-ups."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.subscriptions: list[dict] = []
        self.launched: dict[str, dict] = {}
        self.run_lookups: list[list[str]] = []  # the ids of each audit look-up, one entry a request

    async def graphql(self, request: Request) -> JSONResponse:
        body = await request.json()
        if isinstance(body, dict) and "RunJob" in body.get("query", ""):
            job = RUNS.get(body["variables"]["id"])
            run = {"__typename": "Run", "jobName": job} if job else {"__typename": "RunNotFoundError"}
            return JSONResponse({"data": {"runOrError": run}})
        if isinstance(body, dict) and "LaunchedRuns" in body.get("query", ""):
            ids = body["variables"]["ids"]
            self.run_lookups.append(ids)
            runs = [{"id": run_id, **self.launched[run_id]} for run_id in ids if run_id in self.launched]
            return JSONResponse({"data": {"runsOrError": {"__typename": "Runs", "results": runs}}})
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        if isinstance(body, list):  # a batch: an answer for each operation, in order
            return JSONResponse([self._answer(operation) for operation in body])
        return JSONResponse(self._answer(body))

    def _answer(self, body: dict) -> dict:
        if "LaunchPipelineExecution" in body.get("query", ""):
            return {"data": {"launchPipelineExecution": self._launch(body["variables"])}}
        return {"data": {}}

    def _launch(self, variables: dict) -> dict:
        """Dagster's answer to the UI's launch: a run (``run { id }``), or a refused run config."""
        params = variables["executionParams"]
        config = params.get("runConfigData") or {}
        if config.get("bad"):
            return {"__typename": "RunConfigValidationInvalid", "errors": [{"message": "bad"}]}
        run_id = f"launched-{len(self.launched)}"
        selection = params["selector"].get("assetSelection")
        self.launched[run_id] = {
            "jobName": params["selector"]["jobName"],
            "runConfigYaml": yaml.safe_dump(config),
            "assetSelection": selection,
        }
        return {"__typename": "LaunchRunSuccess", "run": {"__typename": "Run", "id": run_id, "pipelineName": "x"}}

    async def socket(self, websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="graphql-ws")
        while True:
            message = json.loads(await websocket.receive_text())
            if message.get("type") == "start":
                self.subscriptions.append(message)
                await websocket.send_text(json.dumps({"type": "data", "id": message["id"], "payload": {}}))

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/graphql", self.graphql, methods=["POST"]), WebSocketRoute("/graphql", self.socket)]
        )


def two_workspaces(tmp_path) -> tuple[FlowStore, AccessStore]:
    """A store with the flow ``sales`` in workspace sales and ``payroll`` in hr."""
    store = FlowStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    store.save("sales", "v1", {"id": "sales"}, workspace="sales")
    store.save("payroll", "v1", {"id": "payroll"}, workspace="hr")
    return store, AccessStore(store)


@pytest.fixture
def stack(tmp_path) -> Iterator[tuple[str, Webserver, dict[str, str]]]:
    store, access = two_workspaces(tmp_path)
    access.grant(LOCAL_ADMIN, Kind.group, "analysts", "sales", Role.viewer)
    access.grant(LOCAL_ADMIN, Kind.user, "rita", "sales", Role.runner)
    access.grant(LOCAL_ADMIN, Kind.user, "boss", "*", Role.admin)
    token_id, text = access.create_token(LOCAL_ADMIN, "hr loader")
    access.grant(LOCAL_ADMIN, Kind.token, token_id, "hr", Role.runner)
    webserver = Webserver()
    # "token" is also the name the shared DP_PROXY_TOKEN proves: a Basic user so named is no admin.
    users = {name: cheap_hash(PASSWORD) for name in ("vic", "rita", "boss", "nobody", "token")}
    with serve_in_thread(webserver.app()) as upstream:
        settings = ProxySettings(
            upstream=upstream,
            users=users,
            groups={"analysts": ["vic"]},  # vic is a viewer through her group
            roles=True,
            store_url=store.url,
            identity_key=KEY,
        )
        with serve_in_thread(DagsterProxy(settings)) as proxy:
            yield proxy, webserver, {"hr_token": text}


def launch(job: str, alias: str = "") -> str:
    selector = f'{{repositoryLocationName: "dp_platform", repositoryName: "__repository__", jobName: "{job}"}}'
    return f"mutation {{ {alias}launchRun(executionParams: {{selector: {selector}}}) {{ __typename }} }}"


def post(proxy: str, headers: dict, body) -> httpx.Response:
    return httpx.post(f"{proxy}/graphql", headers=headers, content=json.dumps(body), timeout=30)


def test_graphql_through_the_proxy_by_role(stack):
    proxy, webserver, tokens = stack
    vic, rita, boss = basic("vic"), basic("rita"), basic("boss")

    # a Basic user named like the shared token has no role: refused, as any user without one
    assert post(proxy, basic("token"), {"query": launch("sales")}).status_code == 403

    # a runner launches her flow; the webserver gets the body and a signed identity
    assert post(proxy, rita, {"query": launch("sales")}).status_code == 200
    assert verify_identity(KEY.encode(), webserver.headers[-1][IDENTITY_HEADER]).user == "rita"
    # ...but not another workspace's flow
    refused = post(proxy, rita, {"query": launch("payroll")})
    assert refused.status_code == 403 and "may not run flow 'payroll' of workspace 'hr'" in refused.text

    # a viewer's mutation under another name, in a fragment, a batch, another operation: refused
    hostile = [
        {"query": launch("sales", alias="look: ")},
        {"query": f"mutation {{ ...F }} fragment F on Mutation {{ {launch('sales')[11:-2]} }}"},
        [{"query": "{ version }"}, {"query": launch("sales")}],
        {
            "query": "query Look { version } " + launch("sales").replace("mutation", "mutation Sneak"),
            "operationName": "Look",
        },
        {"query": 'mutation { terminateRun(runId: "run-sales") { __typename } }'},
        {"query": "mutation { wipeAssets(assetPartitionRanges: []) { __typename } }"},
    ]
    for body in hostile:
        answer = post(proxy, vic, body)
        assert answer.status_code == 403, (body, answer.text)
    # the runner terminates her flow's run (looked up by id), not hr's
    assert (
        post(proxy, rita, {"query": 'mutation { terminateRun(runId: "run-sales") { __typename } }'}).status_code == 200
    )
    assert (
        post(proxy, rita, {"query": 'mutation { terminateRun(runId: "run-payroll") { __typename } }'}).status_code
        == 403
    )
    assert post(proxy, rita, {"query": 'mutation { terminateRun(runId: "unknown") { __typename } }'}).status_code == 403

    # reads of runs: of a flow she may view, yes; of all runs, no (she cannot view hr's)
    assert (
        post(proxy, vic, {"query": '{ runsOrError(filter: {pipelineName: "sales"}) { __typename } }'}).status_code
        == 200
    )
    assert post(proxy, vic, {"query": '{ runOrError(runId: "run-payroll") { __typename } }'}).status_code == 403
    assert post(proxy, vic, {"query": "{ runsOrError { __typename } }"}).status_code == 403
    assert post(proxy, basic("nobody"), {"query": "{ assetNodes { id } }"}).status_code == 403
    # definitions only: any login
    assert post(proxy, basic("nobody"), {"query": "{ version workspaceOrError { __typename } }"}).status_code == 200
    # the platform admin may do anything
    assert (
        post(proxy, boss, {"query": "mutation { wipeAssets(assetPartitionRanges: []) { __typename } }"}).status_code
        == 200
    )

    # a service token of hr launches hr's flow and nothing of sales
    hr = {"Authorization": f"Bearer {tokens['hr_token']}", **CSRF}
    assert post(proxy, hr, {"query": launch("payroll")}).status_code == 200
    assert post(proxy, hr, {"query": launch("sales")}).status_code == 403
    assert (
        post(
            proxy, {"Authorization": "Bearer dpt_0123456789abcdef_" + "A" * 43, **CSRF}, {"query": "{ version }"}
        ).status_code
        == 401
    )
    # a client cannot name itself to the webserver
    post(proxy, {**boss, IDENTITY_HEADER: "forged", "X-Forwarded-User": "rita"}, {"query": "{ version }"})
    assert webserver.headers[-1]["x-forwarded-user"] == "boss"
    assert verify_identity(KEY.encode(), webserver.headers[-1][IDENTITY_HEADER]).user == "boss"
    post(proxy, vic, {"query": "{ version }"})
    assert verify_identity(KEY.encode(), webserver.headers[-1][IDENTITY_HEADER]).groups == {"analysts"}

    # bad GraphQL is 400, not a pass
    assert post(proxy, vic, {"query": "mutation {"}).status_code == 400
    launched = [b for b in webserver.bodies if "launchRun" in json.dumps(b) or "terminateRun" in json.dumps(b)]
    assert len(launched) == 3  # rita's sales launch, rita's terminate of run-sales, hr's payroll launch
    assert [b for b in webserver.bodies if "wipeAssets" in json.dumps(b)] == [
        {"query": "mutation { wipeAssets(assetPartitionRanges: []) { __typename } }"}
    ]  # the admin's only


def test_subscriptions_through_the_websocket_by_role(stack):
    proxy, webserver, _ = stack
    from websockets.asyncio.client import connect

    async def send(user: str, query: str) -> dict:
        headers = {k: v for k, v in basic(user).items() if k != "Content-Type"}
        async with connect(
            proxy.replace("http", "ws") + "/graphql", additional_headers=headers, subprotocols=["graphql-ws"]
        ) as socket:
            await socket.send(json.dumps({"type": "start", "id": "1", "payload": {"query": query}}))
            return json.loads(await asyncio.wait_for(socket.recv(), 10))

    async def subscribe(user: str, run_id: str) -> dict:
        return await send(user, f'subscription {{ pipelineRunLogs(runId: "{run_id}") {{ __typename }} }}')

    assert asyncio.run(subscribe("vic", "run-sales"))["type"] == "data"
    refused = asyncio.run(subscribe("vic", "run-payroll"))
    assert refused["type"] == "error" and "may not view flow 'payroll'" in refused["payload"][0]["message"]
    # a mutation sent over the WebSocket is judged as one sent by POST
    sneaked = asyncio.run(send("vic", launch("sales")))
    assert sneaked["type"] == "error" and "may not run flow 'sales'" in sneaked["payload"][0]["message"]
    assert [s["payload"]["query"].count("run-sales") for s in webserver.subscriptions] == [1]


#: The Dagster UI's own launch mutation (its Launchpad and Materialize button), as it selects the run.
UI_LAUNCH = """mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { id pipelineName } }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def ui_launch(job: str, config: dict | None = None, assets: list[list[str]] | None = None) -> dict:
    selector = {"repositoryLocationName": "dp_platform", "repositoryName": "__repository__", "jobName": job}
    if assets is not None:
        selector["assetSelection"] = [{"path": path} for path in assets]
    params = {"selector": selector, "runConfigData": config or {}, "mode": "default"}
    return {"operationName": "LaunchPipelineExecution", "query": UI_LAUNCH, "variables": {"executionParams": params}}


def test_launches_through_the_proxy_are_audited(stack, tmp_path):
    """Who launched which flow's run, when, with which params: from Dagster's answer and its run
    record, not from what the client claims; refused launches and terminations are not launches."""
    proxy, webserver, tokens = stack
    access = AccessStore(FlowStore(f"sqlite:///{tmp_path / 'store.db'}"))
    rita, hr = basic("rita"), {"Authorization": f"Bearer {tokens['hr_token']}", **CSRF}

    answer = post(proxy, rita, ui_launch("sales", {"region": "eu", "limit": 3}))
    assert answer.status_code == 200
    run_id = answer.json()["data"]["launchPipelineExecution"]["run"]["id"]  # the answer reaches the UI whole
    materialize = post(proxy, hr, ui_launch("__ASSET_JOB", assets=[["payroll", "total"]]))
    assert materialize.status_code == 200
    assert post(proxy, rita, ui_launch("payroll")).status_code == 403  # refused: not a launch
    refused_config = post(proxy, rita, ui_launch("sales", {"bad": True}))
    assert refused_config.json()["data"]["launchPipelineExecution"]["__typename"] == "RunConfigValidationInvalid"
    post(proxy, rita, {"query": 'mutation { terminateRun(runId: "run-sales") { __typename } }'})
    batch = post(proxy, rita, [ui_launch("sales", {"limit": 1}), ui_launch("sales", {"region": "us"})])
    assert [a["data"]["launchPipelineExecution"]["run"]["id"] for a in batch.json()] == ["launched-2", "launched-3"]
    # each answered launch looked its runs up at the webserver once, a batch's runs together
    assert webserver.run_lookups == [[run_id], ["launched-1"], ["launched-2", "launched-3"]]

    launches = [e for e in access.audit() if e.action == "launch"]
    token_id = tokens["hr_token"].split("_")[1]
    assert [(e.actor, e.workspace, e.flow_id, e.detail) for e in launches] == [
        ("user:rita", "sales", "sales", {"run_id": run_id, "via": "dagster-ui", "params": ["limit", "region"]}),
        (f"token:{token_id}", "hr", "payroll", {"run_id": "launched-1", "via": "dagster-ui", "params": []}),
        # Dagster refused the run config: no run, recorded as an attempt on the flow it named
        (
            "user:rita",
            "sales",
            "sales",
            {"run_id": None, "via": "dagster-ui", "answer_names_no_run": ["launchPipelineExecution"]},
        ),
        ("user:rita", "sales", "sales", {"run_id": "launched-2", "via": "dagster-ui", "params": ["limit"]}),
        ("user:rita", "sales", "sales", {"run_id": "launched-3", "via": "dagster-ui", "params": ["region"]}),
    ]


def test_a_launch_over_the_websocket_is_refused_even_for_an_admin(stack):
    """Only a POST's answer is read to audit a launch, so the WebSocket carries none."""
    proxy, webserver, _ = stack
    from websockets.asyncio.client import connect

    async def send(query: str, binary: bool = False) -> dict:
        headers = {k: v for k, v in basic("boss").items() if k != "Content-Type"}
        async with connect(
            proxy.replace("http", "ws") + "/graphql", additional_headers=headers, subprotocols=["graphql-ws"]
        ) as socket:
            message = json.dumps({"type": "start", "id": "1", "payload": {"query": query}})
            await socket.send(message.encode() if binary else message)
            return json.loads(await asyncio.wait_for(socket.recv(), 10))

    refused = asyncio.run(send(launch("sales")))
    assert refused["type"] == "error" and "not over the WebSocket" in refused["payload"][0]["message"]
    # the same message in a binary frame is judged the same (it used to reach the webserver unread)
    in_bytes = asyncio.run(send(launch("sales"), binary=True))
    assert in_bytes["type"] == "error" and "not over the WebSocket" in in_bytes["payload"][0]["message"]
    assert asyncio.run(send('subscription { pipelineRunLogs(runId: "run-sales") { __typename } }'))["type"] == "data"
    assert webserver.subscriptions and not webserver.launched


@fuzz_settings(200)
@given(
    answer=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(["data", "run", "id", "runId", "backfillId", "x"]), inner, max_size=4)
        ),
        max_leaves=20,
    ),
    config=st.text(max_size=200),
)
def test_reading_a_launch_answer_never_fails(answer, config):
    """Whatever the webserver answers, the audit reads run ids (text only, each once) and param
    names (sorted text) without raising: a launched run's answer is never turned into an error."""
    from dp_proxy.launch_audit import launched_ids, param_names

    runs, backfills = launched_ids(answer)
    assert all(isinstance(r, str) for r in runs + backfills) and len(set(runs)) == len(runs)
    names = param_names(config)
    assert names == sorted(names) and all(isinstance(n, str) for n in names)
