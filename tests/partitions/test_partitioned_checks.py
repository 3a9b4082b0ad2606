"""Checks of a partitioned flow are per partition: each evaluation is recorded against the
partition its run materialised (Dagster's partitioned ``AssetCheckSpec``), a single run over a
range records one per partition of it, and the UI's per-partition check status follows."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.partitions.test_partitioned_runs import daily_flow, definitions

KEPT = dg.AssetKey(["daily_sales", "kept"])
ROW_COUNT = dg.AssetCheckKey(KEPT, "row_count")


def checked_flow() -> dict:
    """``kept`` has rows only from 2026-01-05 on: its row count check fails before that day."""
    spec = daily_flow()
    spec["nodes"][1]["params"] = {"condition": "day >= '2026-01-05'"}
    spec["nodes"][1]["checks"] = [{"type": "row_count", "min": 1}]
    return spec


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def latest_by_partition(instance: dg.DagsterInstance) -> dict[str | None, str]:
    """Each partition's latest evaluation of the row count check, as the UI's Checks tab shows it."""
    found: dict[str | None, str] = {}
    for record in instance.event_log_storage.get_asset_check_execution_history(ROW_COUNT, limit=100):
        found.setdefault(record.partition, record.status.value)  # newest first
    return found


def test_a_partitioned_flows_checks_are_partitioned_like_its_assets(tmp_path):
    defs = definitions(checked_flow(), tmp_path)
    step = defs.resolve_assets_def(KEPT)
    (spec,) = [s for s in step.check_specs if s.key == ROW_COUNT]
    assert spec.partitions_def == step.partitions_def


def test_each_run_records_its_partitions_check_result(tmp_path, instance):
    job = definitions(checked_flow(), tmp_path).resolve_job_def("daily_sales")
    for day in ("2026-01-03", "2026-01-06"):
        result = job.execute_in_process(instance=instance, partition_key=day)
        assert result.success  # a failed check that is not blocking does not fail the run
        (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.asset_check_key == ROW_COUNT]
        assert evaluation.partition == day and evaluation.passed == (day >= "2026-01-05")
    assert latest_by_partition(instance) == {
        "2026-01-03": "FAILED",
        "2026-01-06": "SUCCEEDED",
    }


def test_a_single_run_over_a_range_records_the_check_for_every_partition_of_it(tmp_path, instance):
    """The range's one output is checked once, and the result stands for each partition of the
    range: no partition's planned check is left pending (Dagster alone records such a run's
    result against no partition)."""
    job = definitions(checked_flow(), tmp_path).resolve_job_def("daily_sales")
    result = job.execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": "2026-01-04", "dagster/asset_partition_range_end": "2026-01-06"},
    )
    assert result.success
    evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_check_key == ROW_COUNT]
    # the range's one row is dated its start, 2026-01-04: kept is empty, the check fails for each
    assert sorted((e.partition, e.passed) for e in evaluations) == [
        ("2026-01-04", False),
        ("2026-01-05", False),
        ("2026-01-06", False),
    ]
    assert latest_by_partition(instance) == dict.fromkeys(["2026-01-04", "2026-01-05", "2026-01-06"], "FAILED")
