"""The receiver's run watcher (``dp_sensors.webhook.run_watch``): every waiting invoke is woken by
its own run's end, and the webserver is asked once per poll however many callers wait.

The states come from a function (in production one GraphQL request, ``PlatformInvokeBackend``);
here a table of runs whose status changes at given polls, so that the invariant can be stated
over any mix of runs, ends and waits. ``tests/events/test_invoke.py`` runs it against a real
webserver and daemon.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dp_sensors.webhook.run_watch import (
    NEAR_END_MAX_RUNS,
    NEAR_END_POLL_SECONDS,
    NEAR_FROM,
    POLL_SECONDS,
    RunState,
    RunWatcher,
    Waited,
    next_poll_at,
)

INTERVAL = 0.002


class Runs:
    """Runs that end (SUCCESS or FAILURE) at a given poll, or never (``None``)."""

    def __init__(self, ends: dict[str, tuple[int | None, str]]) -> None:
        self.ends = ends
        self.polls: list[list[str]] = []

    def states_of(self, run_ids: Sequence[str]) -> dict[str, RunState]:
        self.polls.append(list(run_ids))
        poll = len(self.polls)
        states = {}
        for run_id in run_ids:
            end, final = self.ends[run_id]
            status = final if end is not None and poll >= end else "STARTED"
            states[run_id] = RunState(run_id=run_id, flow_id="f", status=status)
        return states


async def _wait_all(watcher: RunWatcher, waits: dict[str, float]) -> dict[str, RunState]:
    states = await asyncio.gather(*(watcher.wait(run_id, "f", wait) for run_id, wait in waits.items()))
    return dict(zip(waits, states, strict=True))


@settings(max_examples=40, deadline=None)
@given(
    ends=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(1, 4)), st.sampled_from(["SUCCESS", "FAILURE"])),
        min_size=1,
        max_size=20,
    )
)
def test_each_caller_gets_its_own_run_end_and_one_request_serves_all(ends) -> None:
    """Invariant: every caller whose run ends gets that run's final state; one that never ends
    gets its last state when its wait is over; each poll is one request for all the runs still
    waited for, so the requests do not grow with the callers."""
    runs = Runs({f"run{i}": end for i, end in enumerate(ends)})
    # A run that never ends is waited for long enough that one poll answers first, even on a
    # loaded CI host (0.2 s once saw none, and the caller got the state it started with).
    waits = {run_id: (1.0 if end is None else 30.0) for run_id, (end, _) in runs.ends.items()}
    got = asyncio.run(_wait_all(RunWatcher(runs.states_of, INTERVAL), waits))
    for run_id, (end, final) in runs.ends.items():
        assert got[run_id].status == (final if end is not None else "STARTED"), run_id
    finished_by = max((end for end, _ in runs.ends.values() if end is not None), default=0)
    if all(end is not None for end, _ in runs.ends.values()):
        # Woken at the poll that saw the last end (one more may start before the callers leave).
        assert finished_by <= len(runs.polls) <= finished_by + 1
    for poll, asked in enumerate(runs.polls, start=1):
        assert len(asked) == len(set(asked))
        # A run is no longer asked for once its caller has its end.
        assert all(runs.ends[run_id][0] is None or poll <= runs.ends[run_id][0] + 1 for run_id in asked)


def test_a_wait_of_zero_asks_once_and_answers_at_once() -> None:
    runs = Runs({"r": (None, "SUCCESS")})
    state = asyncio.run(RunWatcher(runs.states_of, INTERVAL).wait("r", "f", 0))
    assert state.status == "STARTED" and len(runs.polls) == 1


def test_an_error_reading_the_states_reaches_every_waiting_caller() -> None:
    def failing(run_ids: Sequence[str]) -> dict[str, RunState]:
        raise ConnectionError("the webserver is down")

    async def both() -> list[BaseException | RunState]:
        watcher = RunWatcher(failing, INTERVAL)
        return await asyncio.gather(watcher.wait("a", "f", 30), watcher.wait("b", "f", 30), return_exceptions=True)

    assert [type(result) for result in asyncio.run(both())] == [ConnectionError, ConnectionError]


def test_a_run_unknown_to_the_webserver_is_reported_starting_after_the_wait() -> None:
    state = asyncio.run(RunWatcher(lambda run_ids: {}, INTERVAL).wait("missing", "f", 0.05))
    assert state == RunState(run_id="missing", flow_id="f", status="STARTING")


def test_a_run_near_the_end_its_flows_runs_took_is_asked_for_more_often() -> None:
    """A flow whose runs took about 1 s: its run is asked for at the default interval until
    0.7 s, then every ``NEAR_END_POLL_SECONDS``; past twice its estimate, at the default
    interval again. A flow with no estimate yet is asked for at the default interval."""
    waited = {"r": Waited("f", since=100.0)}
    estimates = {"f": 1.0}
    assert next_poll_at(waited, estimates, last_poll=-math.inf, interval=POLL_SECONDS) == -math.inf
    assert next_poll_at(waited, estimates, last_poll=100.2, interval=POLL_SECONDS) == pytest.approx(
        100.2 + POLL_SECONDS
    )
    assert next_poll_at(waited, estimates, last_poll=100.68, interval=POLL_SECONDS) == pytest.approx(
        100.0 + NEAR_FROM * 1.0
    )
    assert next_poll_at(waited, estimates, last_poll=100.8, interval=POLL_SECONDS) == pytest.approx(
        100.8 + NEAR_END_POLL_SECONDS
    )
    assert next_poll_at(waited, estimates, last_poll=102.5, interval=POLL_SECONDS) == pytest.approx(
        102.5 + POLL_SECONDS
    )
    assert next_poll_at({"r": Waited("new", since=100.0)}, estimates, 100.3, POLL_SECONDS) == pytest.approx(
        100.3 + POLL_SECONDS
    )
    assert next_poll_at({"r": Waited("new", since=100.0)}, estimates, -math.inf, POLL_SECONDS) == -math.inf


def test_many_waited_runs_are_asked_for_at_the_default_interval() -> None:
    """The short interval is one request per 10 ms: only while few runs are waited for."""
    waited = {f"r{i}": Waited("f", since=100.0) for i in range(NEAR_END_MAX_RUNS + 1)}
    assert next_poll_at(waited, {"f": 1.0}, last_poll=100.8, interval=POLL_SECONDS) == pytest.approx(
        100.8 + POLL_SECONDS
    )


def test_a_successful_run_teaches_the_watcher_its_flows_duration() -> None:
    runs = Runs({"r": (2, "SUCCESS"), "s": (1, "FAILURE")})
    watcher = RunWatcher(runs.states_of, INTERVAL)

    async def both() -> None:
        await asyncio.gather(watcher.wait("r", "ok", 30), watcher.wait("s", "bad", 30))

    asyncio.run(both())
    assert set(watcher.estimates) == {"ok"} and watcher.estimates["ok"] > 0
