"""An invoked run's result is read as its own flow version has it (the run's ``dp/flow_version``
tag, ``PlatformInvokeBackend.read_result``), on the real stores, and any text in that tag (a run
launched through GraphQL may carry tags its launcher chose) gets an answer: never an error, never
a write to the store."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from dp_assets.catalog import default_catalog
from dp_assets.invoke_results import PlatformInvokeBackend
from dp_assets.publishing import publish_spec
from dp_sensors.webhook.run_watch import RunState
from tests.fuzzing import fuzz_settings

ROWS = [{"region": "EU", "amount": 3}, {"region": "US", "amount": 10}]


def _spec(result: str) -> dict[str, Any]:
    return {
        "id": "versioned",
        "nodes": [
            {"id": "rows", "type": "StaticData", "params": {"rows": ROWS}, "result": result == "rows"},
            {
                "id": "count",
                "type": "GroupAggregate",
                "inputs": ["rows"],
                "params": {"by": "region", "agg": {"n": ["amount", "count"]}},
                "result": result == "count",
            },
        ],
    }


def _backend(store, tmp_path) -> PlatformInvokeBackend:
    # Only read_result is asked here: it reads the store and the kept outputs, never Dagster.
    return PlatformInvokeBackend(store, client=None, outputs_base=str(tmp_path / "outputs"), max_rows=10, ui_url=None)  # type: ignore[arg-type]


def _state(version: str | None) -> RunState:
    return RunState(run_id="0123abcd-run", flow_id="versioned", status="SUCCESS", flow_version=version)


def test_each_run_answers_with_the_result_nodes_of_its_own_version(store, tmp_path):
    catalog = default_catalog()
    first, _ = publish_spec(store, _spec("rows"), catalog)
    second, _ = publish_spec(store, _spec("count"), catalog)
    backend = _backend(store, tmp_path)
    # No outputs were kept for this run: each result node answers with an error of its own,
    # so the keys say which nodes the version named.
    assert list(backend.read_result(_state(first.version))) == ["rows"]
    assert list(backend.read_result(_state(second.version))) == ["count"]
    assert list(backend.read_result(_state(None))) == ["count"]  # no tag: the published version


@fuzz_settings(60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(version=st.text(max_size=80))
def test_any_version_tag_gets_an_answer_and_writes_nothing(store, tmp_path, version):
    publish_spec(store, _spec("rows"), default_catalog())  # the same version again: no change
    before = [v.version for v in store.history("versioned")]
    result = _backend(store, tmp_path).read_result(_state(version))
    assert set(result) <= {"rows"}
    assert all(set(answer) == {"error"} for answer in result.values())
    assert [v.version for v in store.history("versioned")] == before
