"""``automation:`` as Dagster's automation conditions (evaluated by Dagster's evaluator, and by
the daemon in a live test), freshness checks evaluated against real materialisations, and
``pool:`` as the pool of the flow's Dagster step."""

from __future__ import annotations

import dagster as dg

from dp_assets.definitions import defs
from tests.checks.conftest import automation_daemon, write_flow

SRC = {"id": "src", "type": "StaticData", "params": {"rows": [{"x": 1}, {"x": 2}]}}
SORTED = {"id": "sorted", "type": "SortData", "inputs": ["src"], "params": {"by": "x"}}


def key(*path: str) -> dg.AssetKey:
    return dg.AssetKey(list(path))


def test_flow_and_node_automation_become_conditions_and_a_running_sensor(flows):
    write_flow(
        flows,
        {
            "id": "auto",
            "automation": {"condition": "eager"},
            "nodes": [
                {**SRC, "automation": {"condition": "on_missing"}},
                SORTED,
                {
                    "id": "hourly",
                    "type": "SortData",
                    "inputs": ["src"],
                    "params": {"by": "x"},
                    "automation": {"condition": "on_cron", "cron": "0 * * * *", "timezone": "Europe/Berlin"},
                },
            ],
        },
    )
    loaded = defs()
    graph = loaded.resolve_asset_graph()
    conditions = {
        k.path[-1]: graph.get(k).automation_condition for k in graph.get_all_asset_keys() if k.path[0] == "auto"
    }
    assert conditions == {
        "src": dg.AutomationCondition.on_missing(),
        "sorted": dg.AutomationCondition.eager(),
        "hourly": dg.AutomationCondition.on_cron("0 * * * *", "Europe/Berlin"),
    }
    sensor = loaded.resolve_sensor_def("auto_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    # Dagster's evaluator, as the daemon runs it: what was missing when the conditions were
    # first evaluated is not started (Dagster's rule); once src is updated, eager asks for sorted.
    instance = dg.DagsterInstance.get()
    first = dg.evaluate_automation_conditions(defs=loaded, instance=instance)
    assert first.total_requested == 0
    subset = loaded.resolve_implicit_global_asset_job_def().get_subset(asset_selection={key("auto", "src")})
    assert subset.execute_in_process(instance=instance).success
    second = dg.evaluate_automation_conditions(defs=loaded, instance=instance, cursor=first.cursor)
    assert second.get_num_requested(key("auto", "sorted")) == 1
    assert second.get_num_requested(key("auto", "src")) == 0
    assert second.get_num_requested(key("auto", "hourly")) == 0  # waits for its cron tick


def test_on_missing_asks_for_each_new_partition(flows):
    """on_missing with dynamic partitions: a key added later (``dp partitions add``) is missing
    anew, and its partition is requested once."""
    write_flow(
        flows,
        {
            "id": "per_key",
            "partitions": {"type": "dynamic"},
            "automation": {"condition": "on_missing"},
            "nodes": [{"id": "src", "type": "StaticData", "params": {"rows": [{"k": "{{ partition.key }}"}]}}],
        },
    )
    loaded = defs()
    instance = dg.DagsterInstance.get()
    first = dg.evaluate_automation_conditions(defs=loaded, instance=instance)
    assert first.total_requested == 0
    instance.add_dynamic_partitions("per_key", ["2026-12-01"])
    second = dg.evaluate_automation_conditions(defs=loaded, instance=instance, cursor=first.cursor)
    assert second.get_requested_partitions(key("per_key", "src")) == {"2026-12-01"}
    third = dg.evaluate_automation_conditions(defs=loaded, instance=instance, cursor=second.cursor)
    assert third.total_requested == 0


def test_freshness_check_fails_before_a_materialisation_and_passes_after(flows):
    write_flow(
        flows,
        {
            "id": "fresh",
            "nodes": [
                {**SRC, "checks": [{"type": "freshness", "max_age_minutes": 60, "severity": "error"}]},
                {**SORTED, "checks": [{"type": "freshness", "max_age_minutes": 60, "cron": "0 0 1 1 *"}]},
            ],
        },
    )
    loaded = defs()
    instance = dg.DagsterInstance.get()
    assert loaded.resolve_sensor_def("dp_freshness_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    checks = {dg.AssetCheckKey(key("fresh", n), "freshness_check") for n in ("src", "sorted")}
    # the flow's own job materialises and runs the in-step checks, not the freshness ones
    job = loaded.resolve_job_def("fresh")
    assert not checks & set(job.asset_layer.asset_graph.asset_check_keys)

    def evaluate() -> dict[str, dg.AssetCheckEvaluation]:
        implicit = loaded.resolve_implicit_global_asset_job_def()
        result = implicit.get_subset(asset_check_selection=checks, asset_selection=set()).execute_in_process(
            instance=instance
        )
        return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}

    before = evaluate()
    assert not before["src"].passed and before["src"].severity == dg.AssetCheckSeverity.ERROR
    assert not before["sorted"].passed and before["sorted"].severity == dg.AssetCheckSeverity.WARN
    assert job.execute_in_process(instance=instance).success
    after = evaluate()
    assert after["src"].passed and after["sorted"].passed


def test_one_sensor_evaluates_the_freshness_checks_of_every_flow(flows):
    """The location's ``dp_freshness_sensor`` targets every flow's freshness checks; no flow has a
    sensor of its own (each cost its flow's load a definition and a snapshot)."""
    fresh = {"type": "freshness", "max_age_minutes": 60}
    write_flow(flows, {"id": "one", "nodes": [{**SRC, "checks": [fresh]}, SORTED]})
    write_flow(flows, {"id": "two", "nodes": [SRC, {**SORTED, "checks": [{**fresh, "cron": "0 9 * * *"}]}]})
    write_flow(flows, {"id": "stale_ok", "nodes": [SRC, SORTED]})
    loaded = defs()
    sensors = [s.name for s in loaded.get_repository_def().sensor_defs if "freshness" in s.name]
    assert sensors == ["dp_freshness_sensor"]
    sensor = loaded.resolve_sensor_def("dp_freshness_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    targets = sensor.asset_selection.resolve_checks(loaded.resolve_asset_graph())
    assert targets == {
        dg.AssetCheckKey(key("one", "src"), "freshness_check"),
        dg.AssetCheckKey(key("two", "sorted"), "freshness_check"),
    }


def test_pool_names_the_step_pool(flows):
    write_flow(flows, {"id": "pooled", "pool": "warehouse", "nodes": [SRC, SORTED]})
    write_flow(
        flows,
        {
            "id": "pooled_nodes",
            "policies": {"steps": "node"},
            "pool": "warehouse",
            "nodes": [{**SRC, "pool": "api"}, SORTED],
        },
    )
    loaded = defs()
    assert {node.definition.pool for node in loaded.resolve_job_def("pooled").nodes} == {"warehouse"}
    by_step = {node.name: node.definition.pool for node in loaded.resolve_job_def("pooled_nodes").nodes}
    assert by_step == {"pooled_nodes__node__src": "api", "pooled_nodes__node__sorted": "warehouse"}
    # a run of the flow takes a slot of its pool
    instance = dg.DagsterInstance.get()
    instance.event_log_storage.set_concurrency_slots("warehouse", 1)
    assert loaded.resolve_job_def("pooled").execute_in_process(instance=instance).success


def test_the_daemon_materialises_what_eager_automation_asks_for(tmp_path):
    """A live ``dagster-daemon`` on the platform's location: a node's upstream is materialised
    (here by the test); the flow's automation sensor evaluates ``eager`` and launches the run
    that materialises the node."""
    spec = {"id": "automated", "nodes": [SRC, {**SORTED, "automation": {"condition": "eager"}}]}
    with automation_daemon(tmp_path, [spec], "automated_automation_sensor") as session:
        job = defs().resolve_implicit_global_asset_job_def().get_subset(asset_selection={key("automated", "src")})
        assert job.execute_in_process(instance=session.instance).success
        session.wait(
            "the daemon to materialise automated/sorted",
            lambda: session.instance.get_latest_materialization_event(key("automated", "sorted")) is not None,
        )
        (run,) = session.instance.get_runs(dg.RunsFilter(tags={"dagster/from_automation_condition": "true"}))
        assert run.tags.get("dp/flow") == "automated"
