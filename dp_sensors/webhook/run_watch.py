"""How the invoke endpoint waits for its runs: one poll for every waiting caller.

Each waiting invoke used to ask the webserver for its own run's status, backing off to every
250 ms: a caller learned of its run's end up to a quarter of a second late, and twenty callers
made some eighty GraphQL requests a second. The watcher asks for the states of every run being
waited for in one request (``InvokeBackend.run_states``) every ``interval`` seconds while
anyone waits, and wakes each caller as soon as its run has finished: the webserver's load no
longer grows with the callers, and the answer comes within one interval of the run's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from anyio import to_thread
from pydantic import BaseModel, ConfigDict

TERMINAL = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

#: Seconds between two polls while any caller waits.
POLL_SECONDS = 0.05


class RunState(BaseModel):
    """What the receiver needs to know of a run: its flow (for the token) and its status."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    flow_id: str
    status: str


StatesOf = Callable[[Sequence[str]], Mapping[str, RunState]]


class RunWatcher:
    """Wait for runs in the event loop the receiver serves from (one per application)."""

    def __init__(self, states_of: StatesOf, interval: float = POLL_SECONDS) -> None:
        self._states_of = states_of
        self.interval = interval
        self._waiters: dict[str, list[asyncio.Future[RunState]]] = {}
        self._last: dict[str, RunState] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, run_id: str, flow_id: str, wait_seconds: float) -> RunState:
        """The run's state once it has finished, or its last known state after ``wait_seconds``
        (asked once when the wait is 0). An error reading the states is raised to the callers."""
        if wait_seconds <= 0:
            states = await to_thread.run_sync(self._states_of, [run_id])
            return states.get(run_id) or RunState(run_id=run_id, flow_id=flow_id, status="STARTING")
        future: asyncio.Future[RunState] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait_seconds)
        except TimeoutError:
            return self._last.get(run_id) or RunState(run_id=run_id, flow_id=flow_id, status="STARTING")
        finally:
            waiting = self._waiters.get(run_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[run_id]
            if run_id not in self._waiters:
                self._last.pop(run_id, None)

    async def _poll(self) -> None:
        while self._waiters:
            try:
                states = await to_thread.run_sync(self._states_of, list(self._waiters))
            except Exception as exc:  # noqa: BLE001 - handed to the callers, as their own poll raised it
                for futures in self._waiters.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                states = {}
            for run_id, state in states.items():
                if run_id not in self._waiters:
                    continue
                self._last[run_id] = state
                if state.status in TERMINAL:
                    for future in self._waiters[run_id]:
                        if not future.done():
                            future.set_result(state)
            await asyncio.sleep(self.interval)
