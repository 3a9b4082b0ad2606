"""A run's node states as the designer reports them, when Dagster's answer holds a status newer
than its events.

Dagster's GraphQL resolves ``runOrError`` asynchronously, after ``logsForRun``: one answer can say
SUCCESS while its events stop before the last node's materialisation (seen in CI, in
tests/designer/test_seed_runs.py). The answers below are the ones that run gave, in that order; a
webserver cannot be made to interleave them on demand, so they are scripted here.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dp_designer.runs_api import FINISHED_STATUSES, RunsService
from tests.fuzzing import fuzz_settings

FLOW = "cards"


def _materialised(node: str) -> dict[str, Any]:
    return {"__typename": "MaterializationEvent", "assetKey": {"path": [FLOW, node]}}


class ScriptedDagster:
    """Answers each RunEvents query with the next (status, events) and records the cursors asked."""

    def __init__(self, answers: list[tuple[str, list[dict[str, Any]]]]):
        self.answers = answers
        self.cursors: list[str | None] = []

    def __enter__(self) -> ScriptedDagster:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        self.cursors.append(variables.get("after"))
        position = len(self.cursors) - 1
        status, events = self.answers[min(position, len(self.answers) - 1)]
        if position >= len(self.answers):
            events = []  # nothing written since
        return {
            "runOrError": {"__typename": "Run", "status": status, "jobName": FLOW},
            "logsForRun": {"__typename": "EventConnection", "cursor": str(position), "hasMore": False, "events": events},
        }


class ScriptedService(RunsService):
    """The designer's runs service, talking to ``dagster`` instead of a webserver."""

    def __init__(self, dagster: ScriptedDagster):
        super().__init__(graphql_url="http://127.0.0.1:9/graphql")
        self.dagster = dagster

    def client(self, timeout: float = 30.0) -> Any:
        return self.dagster


def _state(dagster: ScriptedDagster) -> dict[str, Any]:
    return ScriptedService(dagster).run_state("run-1", FLOW)


def test_a_run_seen_finished_has_its_last_events_read_again():
    dagster = ScriptedDagster(
        [
            ("SUCCESS", [_materialised("cards")]),  # the status is newer than these events
            ("SUCCESS", [_materialised("save_cards")]),  # written before the run finished
        ]
    )
    state = _state(dagster)
    assert state["status"] == "SUCCESS"
    assert state["succeeded"] == ["cards", "save_cards"]
    assert dagster.cursors == [None, "0"]  # the second read starts after the first one's events


@fuzz_settings(100)
@given(
    status=st.sampled_from(["QUEUED", "STARTING", "STARTED", "CANCELING", *sorted(FINISHED_STATUSES)]),
    nodes=st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4),
    split=st.integers(min_value=0, max_value=4),
)
def test_node_states_hold_every_materialisation_written_before_a_finish(status, nodes, split):
    """Whatever the status, every materialisation written before the run was seen finished is
    reported, once; a run still going is read once per call (it is polled again)."""
    first, late = nodes[:split], nodes[split:]
    dagster = ScriptedDagster([(status, [_materialised(n) for n in first]), (status, [_materialised(n) for n in late])])
    state = _state(dagster)
    if status in FINISHED_STATUSES:
        assert state["succeeded"] == sorted(nodes)
        assert len(dagster.cursors) == 2
    else:
        assert state["succeeded"] == sorted(first)
        assert len(dagster.cursors) == 1
