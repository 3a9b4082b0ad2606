"""How the invoke endpoint waits for its runs: one poll for every waiting caller.

Each waiting invoke used to ask the webserver for its own run's status, backing off to every
250 ms: a caller learned of its run's end up to a quarter of a second late, and twenty callers
made some eighty GraphQL requests a second. The watcher asks for the states of every run being
waited for in one request (``InvokeBackend.run_states``) while anyone waits, and wakes each
caller as soon as its run has finished: the webserver's load no longer grows with the callers.

When to ask (``next_poll_at``): every ``POLL_SECONDS``. A flow's runs take about the same time
from one call to the next, so the watcher keeps what its flow's recent successful runs took;
while a run is near that end (from ``NEAR_FROM`` to ``PAST_AFTER`` times the estimate) it is
asked for every ``NEAR_END_POLL_SECONDS`` as well: the caller hears of the end within a few
milliseconds instead of half a poll interval later on average. Only while few runs are waited
for (``NEAR_END_MAX_RUNS``), so the webserver never sees more than one request per
``NEAR_END_POLL_SECONDS``; an estimate that is wrong costs a few requests, never a later answer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from anyio import to_thread
from pydantic import BaseModel, ConfigDict

TERMINAL = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

#: Seconds between two polls while any caller waits (no estimate, or past it).
POLL_SECONDS = 0.05
#: Seconds between two polls while a run is near the end its flow's runs took.
NEAR_END_POLL_SECONDS = 0.01
#: A run is near its end from this share of its flow's estimate on, and past it after this one.
NEAR_FROM, PAST_AFTER = 0.7, 2.0
#: The short interval only while at most this many runs are waited for (each poll is one request).
NEAR_END_MAX_RUNS = 4
#: Weight of the latest run in a flow's estimate (the rest is the estimate before it).
LATEST_WEIGHT = 0.3


class RunState(BaseModel):
    """What the receiver needs to know of a run: its flow (for the token), its status, and the
    flow version it was planned with (its ``dp/flow_version`` tag: which nodes make its result)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    flow_id: str
    status: str
    flow_version: str | None = None
    partition: str | None = None  # Dagster's dagster/partition tag: the partition whose outputs it kept


StatesOf = Callable[[Sequence[str]], Mapping[str, RunState]]


@dataclass(frozen=True)
class Waited:
    """A run being waited for: its flow, and when the first caller began to wait for it."""

    flow_id: str
    since: float


def next_poll_at(
    waited: Mapping[str, Waited], estimates: Mapping[str, float], last_poll: float, interval: float
) -> float:
    """When (event-loop time) to ask next for the states of the ``waited`` runs, given the last
    poll (``-inf``: none yet) and what the runs of each flow took (``estimates``, seconds)."""
    default = last_poll + interval
    if len(waited) > NEAR_END_MAX_RUNS:
        return default
    due = [default]
    for run in waited.values():
        expected = estimates.get(run.flow_id)
        if expected is None:
            continue
        near, past = run.since + NEAR_FROM * expected, run.since + PAST_AFTER * expected
        if last_poll < near:
            # Before the window, the default interval still runs: an estimate that is too long
            # (a run that started cold) never makes a caller wait longer than without one.
            due.append(near)
        elif last_poll < past:
            due.append(last_poll + min(NEAR_END_POLL_SECONDS, interval))
    return min(due)


class RunWatcher:
    """Wait for runs in the event loop the receiver serves from (one per application)."""

    def __init__(self, states_of: StatesOf, interval: float = POLL_SECONDS) -> None:
        self._states_of = states_of
        self.interval = interval
        self._waiters: dict[str, list[asyncio.Future[RunState]]] = {}
        self._waited: dict[str, Waited] = {}
        self._last: dict[str, RunState] = {}
        #: flow -> seconds its recent runs took from the first wait to their end being seen
        self.estimates: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    async def wait(self, run_id: str, flow_id: str, wait_seconds: float) -> RunState:
        """The run's state once it has finished, or its last known state after ``wait_seconds``
        (asked once when the wait is 0). An error reading the states is raised to the callers."""
        if wait_seconds <= 0:
            states = await to_thread.run_sync(self._states_of, [run_id])
            return states.get(run_id) or RunState(run_id=run_id, flow_id=flow_id, status="STARTING")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RunState] = loop.create_future()
        self._waiters.setdefault(run_id, []).append(future)
        self._waited.setdefault(run_id, Waited(flow_id, loop.time()))
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._poll())
        else:
            assert self._wake is not None
            self._wake.set()  # a new run may be due before the poll the loop sleeps for
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
                self._waited.pop(run_id, None)

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        last_poll = -math.inf
        while self._waiters:
            self._wake.clear()
            delay = next_poll_at(self._waited, self.estimates, last_poll, self.interval) - loop.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                    continue  # a caller came: work out the next poll again
                except TimeoutError:
                    pass
            last_poll = loop.time()
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
                    self._learn(run_id, state, loop.time())
                    for future in self._waiters[run_id]:
                        if not future.done():
                            future.set_result(state)
            # Let the woken callers leave (and stop waiting) before the next poll is worked out.
            await asyncio.sleep(0)

    def _learn(self, run_id: str, state: RunState, seen_at: float) -> None:
        """Fold what a successful run took into its flow's estimate (a failure can end early)."""
        waited = self._waited.get(run_id)
        if waited is None or state.status != "SUCCESS":
            return
        took = seen_at - waited.since
        before = self.estimates.get(waited.flow_id)
        self.estimates[waited.flow_id] = took if before is None else before + LATEST_WEIGHT * (took - before)
