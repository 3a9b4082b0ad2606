"""Flows as synchronous APIs: ``POST /flows/{flow_id}/invoke`` and ``GET /runs/{run_id}/result``.

An invoke is a launch (the same checks, body rules and ``Idempotency-Key`` ledger as
``POST /flows/{flow_id}/runs``, see :mod:`dp_sensors.webhook.launches`) followed by a wait for the
run: the run stays an ordinary Dagster run (events, logs, tags, retries in the UI), started by
whatever run launcher the instance names. The answer is

- 200 with the flow's result (its result nodes' kept outputs, row-limited), the run id and a
  link to the run, when the run succeeded within the wait;
- 202 with the run id and ``result_url`` (``GET /runs/{run_id}/result``) when it did not finish
  in time; the run goes on and the result can be fetched later;
- 422 with ``error`` naming the failing node when the run failed (the flow's own error, not the
  receiver's: retrying the same request gives the same run and the same answer).

The key is optional here: without one, every invoke is a new run (a function call); with one, a
repeat answers with the first run's result. The wait is the caller's ``timeout`` (query) or
``timeout_seconds`` (body), capped at ``DP_INVOKE_MAX_WAIT_SECONDS``. What a run's result is and
how it is read (the spec and the kept outputs) is injected as :class:`InvokeBackend`, because
this package sits below the spec (``dp_assets.invoke_results`` provides it).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from anyio import to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from dp_sensors.webhook.bodies import Refused
from dp_sensors.webhook.launches import (
    LAUNCH_ERRORS,
    body_partition,
    launch_once,
    launch_refusal,
    launch_tags,
    request_hash,
)
from dp_sensors.webhook.run_watch import TERMINAL, RunState, RunWatcher

INVOKE_TRIGGER = "invoke"
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
BODY_KEYS = frozenset({"params", "partition", "timeout_seconds"})
_FIRST_POLL, _LAST_POLL = 0.02, 0.25


@runtime_checkable
class InvokeBackend(Protocol):
    """Runs as the invoke endpoints see them (GraphQL and the kept outputs in production)."""

    def run_state(self, run_id: str) -> RunState | None:
        """The run's flow and status; ``None`` when there is no such run."""
        ...

    def run_states(self, run_ids: Sequence[str]) -> dict[str, RunState]:
        """The flow and status of each of ``run_ids`` there is, in one request."""
        ...

    def run_failure(self, run_id: str) -> str:
        """Why the finished run failed: the failing node and its error."""
        ...

    def read_result(self, state: RunState) -> dict[str, Any]:
        """The result nodes' outputs of the finished run in ``state`` as JSON (node id -> rows),
        row-limited; its result nodes are those of the flow version it ran."""
        ...

    def run_url(self, run_id: str) -> str | None:
        """A link to the run in the Dagster UI, ``None`` when the UI's address is not known."""
        ...


def answer(backend: InvokeBackend, state: RunState) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body for a run in ``state`` (see the module docstring)."""
    body: dict[str, Any] = {"run_id": state.run_id, "flow_id": state.flow_id, "status": state.status}
    url = backend.run_url(state.run_id)
    if url:
        body["run_url"] = url
    if state.status == "SUCCESS":
        body["result"] = backend.read_result(state)
        return 200, body
    if state.status == "FAILURE":
        body["error"] = backend.run_failure(state.run_id)
        body["detail"] = f"the run of flow {state.flow_id!r} failed: {body['error']}"
        return 422, body
    if state.status == "CANCELED":
        body["detail"] = f"the run of flow {state.flow_id!r} was canceled before it finished"
        return 422, body
    body["result_url"] = f"/runs/{state.run_id}/result"
    body["detail"] = f"the run of flow {state.flow_id!r} is {state.status}; GET result_url for its result later"
    return 202, body


async def wait_finished(backend: InvokeBackend, run_id: str, flow_id: str, wait_seconds: float) -> RunState:
    """Poll the run until it has finished or ``wait_seconds`` passed; its last state (``dp
    invoke``, one caller; the receiver's callers share a :class:`RunWatcher`).

    The poll starts fast (a small flow on a warm launcher ends within tens of milliseconds) and
    backs off; waiting is an async sleep, no thread.
    """
    deadline = time.monotonic() + wait_seconds
    delay = _FIRST_POLL
    while True:
        state = await to_thread.run_sync(backend.run_state, run_id)
        if state is None:  # created a moment ago and not visible yet, or deleted meanwhile
            state = RunState(run_id=run_id, flow_id=flow_id, status="STARTING")
        if state.status in TERMINAL:
            return state
        left = deadline - time.monotonic()
        if left <= 0:
            return state
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, _LAST_POLL)


def wait_seconds(request: Request, body: dict[str, Any], cap: float) -> float:
    """The caller's wait (``?timeout=`` or ``timeout_seconds``), at most ``cap``; default ``cap``."""
    raw: Any = body.get("timeout_seconds")
    where = "'timeout_seconds' in the body"
    query = request.query_params.get("timeout")
    if query is not None:
        if raw is not None:
            raise Refused(422, "give the timeout once: either ?timeout= or 'timeout_seconds' in the body")
        where = "?timeout="
        try:
            raw = float(query)
        except ValueError:
            raise Refused(422, f"{where} must be a number of seconds, not {query[:40]!r}") from None
    if raw is None:
        return cap
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) or raw < 0:
        raise Refused(422, f"{where} must be a number of seconds >= 0")
    return min(float(raw), cap)


class InvokeRoutes:
    """The two routes, on top of the receiver's checks (token, flow, body, params): ``receiver``
    is the app's ``_Receiver`` (typed loosely: the app module imports this one)."""

    def __init__(self, receiver: Any, backend: InvokeBackend | None, max_wait_seconds: float) -> None:
        self.receiver = receiver
        self.backend = backend
        self.max_wait_seconds = max_wait_seconds
        self.watcher = RunWatcher(backend.run_states) if backend is not None else None

    def _configured(self) -> InvokeBackend:
        receiver = self.receiver
        if self.backend is None or receiver.ledger is None or receiver.launcher is None:
            raise Refused(404, "invoking flows through this receiver is not configured")
        return self.backend

    async def invoke(self, request: Request) -> JSONResponse:
        flow_id = request.path_params["flow_id"]
        try:
            backend = self._configured()
            receiver = self.receiver
            flow_id, model = await receiver.authorised_flow(request)
            key = receiver.idempotency_key(request, required=False)
            body = await receiver.json_object(request, flow_id)
            unknown = sorted(set(body) - BODY_KEYS)
            if unknown:
                raise Refused(
                    422,
                    f"unknown keys {unknown} in the body; send "
                    '{"params": {...}, "partition": "KEY", "timeout_seconds": N}',
                )
            wait = wait_seconds(request, body, self.max_wait_seconds)
            raw_params = body.get("params", {})
            params = receiver.validate_params(flow_id, model, raw_params)
            partition = body_partition(body, flow_id)
            assert receiver.ledger is not None and receiver.launcher is not None  # _configured
            outcome = await launch_once(
                receiver.ledger,
                receiver.launcher,
                key=key or f"invoke:{uuid.uuid4().hex}",
                flow_id=flow_id,
                params=params,
                hashed=request_hash(flow_id, raw_params, partition),
                tags=launch_tags(INVOKE_TRIGGER, partition),
                wait_seconds=receiver.launch_wait_seconds,
                tag_key=key is not None,
            )
            await receiver.launched(request, flow_id, outcome.run_id, outcome.replayed)
            assert self.watcher is not None  # _configured: there is a backend
            state = await self.watcher.wait(outcome.run_id, flow_id, wait)
            status, answered = await to_thread.run_sync(answer, backend, state)
        except Refused as refused:
            return refused.response()
        except ClientDisconnect:
            return JSONResponse({"detail": "client disconnected"}, 400)
        except LAUNCH_ERRORS as exc:
            return launch_refusal(exc, flow_id).response()
        if key is not None:
            answered["idempotency_key"] = key
            answered["replayed"] = outcome.replayed
        headers = {"Location": answered["result_url"]} if status == 202 else None
        return JSONResponse(answered, status, headers=headers)

    async def result(self, request: Request) -> JSONResponse:
        """The answer an invoke would give now, for a run it started (or any run of a flow the
        token opens); the token is checked against the run's flow."""
        run_id = request.path_params["run_id"]
        try:
            backend = self._configured()
            state = await to_thread.run_sync(backend.run_state, run_id) if RUN_ID_RE.fullmatch(run_id) else None
            # Without the right token a caller learns nothing, not even whether the run exists.
            flow_id = state.flow_id if state is not None else ""
            if not await self.receiver.authorised(flow_id, request.headers.get("authorization"), "view"):
                raise Refused(401, "missing or invalid bearer token (send 'Authorization: Bearer TOKEN')")
            if state is None:
                raise Refused(404, f"there is no run {run_id!r}; use the run_id an invoke answered with")
            status, answered = await to_thread.run_sync(answer, backend, state)
        except Refused as refused:
            return refused.response()
        return JSONResponse(answered, status)
