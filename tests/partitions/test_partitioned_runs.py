"""Partitioned flows run in Dagster: each node's asset is partitioned, the run's partition fills
``{{ partition.* }}`` and ``partition.*`` in expressions, outputs are kept per partition, a
single run over a range covers every partition of it, and a read of the latest value asks for a
partition (compared with the same values computed directly)."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import FlowValidationError, validate_spec
from dp_io import load_latest_output
from dp_io.io_manager import RunScopedIOManager

CATALOG = default_catalog()


def daily_flow(**partitions):
    return {
        "id": "daily_sales",
        "partitions": {"type": "time", "every": "daily", "start": "2026-01-01", "end": "2026-01-08", **partitions},
        "params": {"shop": {"type": "string", "default": "north"}},
        "nodes": [
            {
                "id": "rows",
                "type": "StaticData",
                "params": {
                    "rows": [
                        {"day": "{{ partition.start }}", "until": "{{ partition.end }}", "shop": "{{ params.shop }}"}
                    ]
                },
            },
            {
                "id": "kept",
                "type": "FilterRows",
                "inputs": ["rows"],
                "params": {"condition": "day == partition.start and until == partition.end"},
            },
        ],
    }


def definitions(spec, tmp_path):
    validated = validate_spec(spec, CATALOG)
    return dg.Definitions.merge(
        build_flow_definitions(validated, CATALOG),
        dg.Definitions(resources={"io_manager": RunScopedIOManager(base_url=str(tmp_path / "outputs"))}),
    )


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_every_asset_of_a_partitioned_flow_is_partitioned_and_a_run_fills_its_partition(tmp_path, instance):
    defs = definitions(daily_flow(), tmp_path)
    job = defs.resolve_job_def("daily_sales")
    for key in (dg.AssetKey(["daily_sales", "rows"]), dg.AssetKey(["daily_sales", "kept"])):
        assert defs.resolve_assets_def(key).partitions_def == job.partitions_def
    assert job.partitions_def.get_partition_keys()[:2] == ["2026-01-01", "2026-01-02"]

    result = job.execute_in_process(instance=instance, partition_key="2026-01-03")
    assert result.success
    kept = result.output_for_node("daily_sales__step", "kept")
    expected = pd.DataFrame(
        [{"day": "2026-01-03T00:00:00+00:00", "until": "2026-01-04T00:00:00+00:00", "shop": "north"}]
    )
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), expected)
    materialised = instance.fetch_materializations(dg.AssetKey(["daily_sales", "kept"]), limit=5).records
    assert [r.asset_materialization.partition for r in materialised] == ["2026-01-03"]


def test_a_run_naming_no_partition_is_refused_before_any_node_runs(tmp_path, instance):
    """A GraphQL launch or `dp launch` without a partition: the step fails at once, saying how to
    name one, instead of storing outputs of no partition until a node reads `partition.start`."""
    job = definitions(daily_flow(), tmp_path).resolve_job_def("daily_sales")
    result = job.execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "flow 'daily_sales' is partitioned and this run names no partition" in message
    assert "--partition KEY" in message
    assert not [event for event in result.all_events if event.is_step_materialization]
    assert not (tmp_path / "outputs").exists() or not any(p.is_file() for p in (tmp_path / "outputs").rglob("*"))


def test_outputs_are_kept_per_partition_and_the_latest_read_asks_for_one(tmp_path, instance):
    defs = definitions(daily_flow(), tmp_path)
    job = defs.resolve_job_def("daily_sales")
    for day in ("2026-01-02", "2026-01-05"):
        assert job.execute_in_process(instance=instance, partition_key=day).success
    io = RunScopedIOManager(base_url=str(tmp_path / "outputs"))
    key = dg.AssetKey(["daily_sales", "rows"])
    for day in ("2026-01-02", "2026-01-05"):
        value = load_latest_output(instance, key, io, partition_key=day)
        assert value["day"].tolist() == [f"{day}T00:00:00+00:00"]


def test_a_single_run_over_a_range_materialises_every_partition_of_it(tmp_path, instance):
    defs = definitions(daily_flow(), tmp_path)
    job = defs.resolve_job_def("daily_sales")
    assert defs.resolve_assets_def(dg.AssetKey(["daily_sales", "rows"])).backfill_policy == (
        dg.BackfillPolicy.single_run()
    )
    result = job.execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": "2026-01-02", "dagster/asset_partition_range_end": "2026-01-04"},
    )
    assert result.success
    kept = result.output_for_node("daily_sales__step", "kept")
    assert kept[["day", "until"]].values.tolist() == [["2026-01-02T00:00:00+00:00", "2026-01-05T00:00:00+00:00"]]
    records = instance.fetch_materializations(dg.AssetKey(["daily_sales", "kept"]), limit=10).records
    assert sorted(r.asset_materialization.partition for r in records) == ["2026-01-02", "2026-01-03", "2026-01-04"]
    io = RunScopedIOManager(base_url=str(tmp_path / "outputs"))
    one = load_latest_output(instance, dg.AssetKey(["daily_sales", "kept"]), io, partition_key="2026-01-03")
    pd.testing.assert_frame_equal(one.reset_index(drop=True), kept.reset_index(drop=True))


def test_a_flow_reading_partition_key_backfills_a_run_per_partition(tmp_path):
    spec = daily_flow()
    spec["nodes"][0]["params"]["rows"][0]["day"] = "{{ partition.key }}"
    defs = definitions(spec, tmp_path)
    policy = defs.resolve_assets_def(dg.AssetKey(["daily_sales", "rows"])).backfill_policy
    assert policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
    forced = definitions(daily_flow(backfill="per_partition"), tmp_path)
    assert forced.resolve_assets_def(dg.AssetKey(["daily_sales", "rows"])).backfill_policy == policy


def test_static_and_dynamic_partitions(tmp_path, instance):
    static = daily_flow()
    static["partitions"] = {"type": "static", "keys": ["eu", "us"]}
    static["nodes"][0]["params"]["rows"][0] = {"region": "{{ partition.key }}"}
    static["nodes"][1]["params"]["condition"] = "region == partition.key"
    job = definitions(static, tmp_path).resolve_job_def("daily_sales")
    result = job.execute_in_process(instance=instance, partition_key="us")
    assert result.output_for_node("daily_sales__step", "kept")["region"].tolist() == ["us"]

    dynamic = {**static, "partitions": {"type": "dynamic"}}
    job = definitions(dynamic, tmp_path).resolve_job_def("daily_sales")
    instance.add_dynamic_partitions("daily_sales", ["shop-7"])
    result = job.execute_in_process(instance=instance, partition_key="shop-7")
    assert result.output_for_node("daily_sales__step", "kept")["region"].tolist() == ["shop-7"]


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"partitions": None}, "params.rows[0].day", "needs 'partitions:'"),
        ({"partitions": {"type": "static", "keys": ["a"]}}, "params.rows[0].day", "needs time partitions"),
        ({"triggers": [{"type": "event", "topics": ["x"]}]}, "triggers[0]", "cannot launch a partitioned flow"),
        ({"policies": {"output_format": "table"}}, "partitions", "not in tables"),
    ],
)
def test_partition_mistakes_name_the_flow_node_and_field(change, field, says):
    spec = {**daily_flow(), **change}
    if spec["partitions"] is None:
        del spec["partitions"]
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(spec, CATALOG)
    messages = [(e.field, e.message) for e in caught.value.errors]
    assert any(f == field and says in m for f, m in messages), messages


def test_an_assets_columns_are_on_its_spec_before_any_run(tmp_path):
    """Declared columns (with their constraints), else the columns validation inferred, are the
    asset's ``dagster/column_schema``, so the catalog shows them before the first run."""
    spec = daily_flow()
    spec["nodes"][1]["columns"] = [{"name": "day", "type": "string", "nullable": False, "unique": True}]
    defs = definitions(spec, tmp_path)
    kept = defs.resolve_assets_def(dg.AssetKey(["daily_sales", "kept"])).specs_by_key
    schema = kept[dg.AssetKey(["daily_sales", "kept"])].metadata["dagster/column_schema"]
    (day,) = schema.columns
    assert (day.name, day.type, day.constraints.nullable, day.constraints.unique) == ("day", "string", False, True)
    rows = defs.resolve_assets_def(dg.AssetKey(["daily_sales", "rows"])).specs_by_key
    inferred = rows[dg.AssetKey(["daily_sales", "rows"])].metadata["dagster/column_schema"]
    assert [c.name for c in inferred.columns] == ["day", "until", "shop"]
