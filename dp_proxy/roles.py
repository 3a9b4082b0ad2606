"""Roles at the proxy (``DP_AUTH_ENFORCE``): who the caller is, and whether their GraphQL may pass.

The webserver has no access control of its own, so the proxy judges each GraphQL request by
what it needs (:mod:`dp_proxy.graphql_rules`) against the caller's grants in the flow store
(:mod:`dp_auth`). A run named by id is looked up at the webserver once (its job never changes).
A name that is no flow of the store (Dagster's own jobs, the platform's) needs the role on
every workspace. The legacy shared token (``DP_PROXY_TOKEN``) acts as the platform's admin.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any

import httpx
from anyio import CapacityLimiter, to_thread
from pydantic import SecretStr
from starlette.requests import Request

from dp_auth.access import AccessStore
from dp_auth.identity import IDENTITY_HEADER, sign_principal
from dp_auth.permissions import EVERY_WORKSPACE, Action, Forbidden, Grant, Principal, require
from dp_proxy.graphql_rules import LAUNCH_MUTATIONS, BadGraphQL, Need, needs_of_body
from dp_proxy.launch_audit import LAUNCHED_RUNS, record_launches
from dp_proxy.policy import Refusal

log = logging.getLogger("dp_proxy")

RUN_JOB = "query RunJob($id: ID!) { runOrError(runId: $id) { __typename ... on Run { jobName } } }"
_RUN_CACHE_SIZE = 4096
#: The largest GraphQL body the proxy reads to judge it.
MAX_GRAPHQL_BODY = 1024 * 1024
#: GraphQL documents parsed at once, off the event loop: parsing a large one takes about 0.5 s
#: (graphql-core, 180 KB), and on the loop it stalled every other request and WebSocket meanwhile.
JUDGING_THREADS = 2


def header_bytes(value: str) -> bytes:
    """A header value as bytes: the client's came in as latin-1 and go out the same; a user name
    beyond latin-1 goes out as UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def identity_headers(principal: Principal, key: SecretStr | None) -> list[tuple[str, str]]:
    """Who the caller is, for the server behind: a user's name, and the user or service token
    signed when a key is set (the designer believes only the signed one, :mod:`dp_auth.identity`;
    the token itself never leaves the proxy)."""
    found = [] if principal.user is None else [("x-forwarded-user", principal.user)]
    if key is not None and (principal.user is not None or principal.token is not None):
        found.append((IDENTITY_HEADER, sign_principal(key.get_secret_value().encode(), principal)))
    return found


class ProxyRoles:
    def __init__(self, access: AccessStore, client: Any) -> None:
        self.access = access
        self._client = client  # a callable giving the proxy's httpx.AsyncClient to the webserver
        self._run_jobs: OrderedDict[str, str | None] = OrderedDict()
        self._judging: CapacityLimiter | None = None  # made on the event loop

    async def token_principal(self, token: str) -> Principal | None:
        return await to_thread.run_sync(self.access.authenticate_token, token)

    async def read_and_judge(
        self, request: Request, principal: Principal
    ) -> tuple[Refusal | None, bytes | None, list[Need]]:
        """Read the GraphQL body (bounded) and judge it: the refusal, else the bytes to forward
        and the launches among its needs (to audit once the webserver answers)."""
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_GRAPHQL_BODY:
                return Refusal(413, f"a GraphQL body is at most {MAX_GRAPHQL_BODY} bytes"), None, []
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return Refusal(400, "the GraphQL body is not JSON"), None, []
        refusal, needs = await self.check_graphql(principal, body)
        return refusal, bytes(raw), [need for need in needs if need.field in LAUNCH_MUTATIONS]

    async def judge_subscription(self, text: str, principal: Principal) -> str | None:
        """The error message to answer instead of forwarding a subscription the caller may not
        start (graphql-ws ``start`` or graphql-transport-ws ``subscribe``), else None. A launch
        sent over the WebSocket is refused whoever sends it: only a POST's answer is audited."""
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return json.dumps({"type": "error", "payload": [{"message": "a message is not JSON"}]})
        if not isinstance(message, dict) or message.get("type") not in ("start", "subscribe"):
            return None
        refusal, needs = await self.check_graphql(principal, message.get("payload"))
        if refusal is None and any(need.field in LAUNCH_MUTATIONS for need in needs):
            refusal = Refusal(403, "launch runs by POST /graphql, not over the WebSocket (launches are audited)")
        if refusal is None:
            return None
        return json.dumps({"type": "error", "id": message.get("id"), "payload": [{"message": refusal.reason}]})

    async def audit_launches(self, principal: Principal, launches: list[Need], answer: bytes) -> None:
        """Record the runs a passed launch started (:mod:`dp_proxy.launch_audit`)."""
        await record_launches(self.access, principal, launches, answer, self._launched_runs, to_thread.run_sync)

    async def _launched_runs(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The runs of ``run_ids`` the webserver knows, by id (one query for a whole batch)."""
        try:
            answer = await self._client().post("/graphql", json={"query": LAUNCHED_RUNS, "variables": {"ids": run_ids}})
            found = (answer.json().get("data") or {}).get("runsOrError") or {}
            runs = found.get("results") if found.get("__typename") == "Runs" else []
            return {run["id"]: run for run in runs or [] if isinstance(run, dict) and isinstance(run.get("id"), str)}
        except (httpx.HTTPError, ValueError, AttributeError):
            return {}

    async def check_graphql(self, principal: Principal, body: Any) -> tuple[Refusal | None, list[Need]]:
        """Why the body must not reach the webserver (or None), and what it needs."""
        if self._judging is None:
            self._judging = CapacityLimiter(JUDGING_THREADS)
        try:
            needs = await to_thread.run_sync(needs_of_body, body, limiter=self._judging)
        except BadGraphQL as error:
            return Refusal(400, str(error)), []
        if principal.local_admin or not needs:
            return None, needs
        held = await to_thread.run_sync(self.access.grants, principal)  # one query a request
        for need in needs:
            refusal = await self._check(principal, held, need)
            if refusal is not None:
                return refusal, needs
        return None, needs

    async def _check(self, principal: Principal, held: list[Grant], need: Need) -> Refusal | None:
        flows = set(need.flows)
        everywhere = need.everywhere
        for run_id in sorted(need.run_ids):
            job = await self._job_of_run(run_id)
            if job is None or job.startswith("__"):
                everywhere = True
            else:
                flows.add(job)
        action = Action[need.action]

        def decide() -> None:
            if everywhere:
                require(principal, held, action, EVERY_WORKSPACE)
            workspaces = self.access.workspaces_of(flows)
            for flow in sorted(flows):
                workspace = workspaces.get(flow)
                if workspace is None:  # not a flow of the store: a platform job
                    require(principal, held, action, EVERY_WORKSPACE)
                else:
                    require(principal, held, action, workspace, flow)

        try:
            await to_thread.run_sync(decide)
        except Forbidden as refused:
            log.warning("refused GraphQL %s: %s", need.field, refused)
            return Refusal(403, f"{need.field}: {refused}")
        return None

    async def _job_of_run(self, run_id: str) -> str | None:
        if run_id in self._run_jobs:
            return self._run_jobs[run_id]
        client: httpx.AsyncClient = self._client()
        try:
            answer = await client.post("/graphql", json={"query": RUN_JOB, "variables": {"id": run_id}})
            run = (answer.json().get("data") or {}).get("runOrError") or {}
        except (httpx.HTTPError, ValueError, AttributeError):
            return None  # unknown: judged as every workspace's, never let through
        job = run.get("jobName") if run.get("__typename") == "Run" else None
        if job is not None:
            self._run_jobs[run_id] = job
            if len(self._run_jobs) > _RUN_CACHE_SIZE:
                self._run_jobs.popitem(last=False)
        return job
