"""Run policies as run tags: per-flow concurrency limits and run retries that do not multiply
node retries (E8), checked with a real instance and Dagster's own retry decision."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry
from triggers_support import compile_flows, flow_spec

from dp_resources.files import FilesResource
from dp_sensors.triggers.policy import concurrency_limits_config, flow_limit_tag

READS = {"id": "src", "type": "FileInput", "params": {"path": "missing.csv"}}


@pytest.mark.parametrize(
    "policies,expected",
    [
        pytest.param({}, {}, id="none"),
        pytest.param({"max_concurrent_runs": 1}, {"dp/flow_limit_1": "tagged"}, id="limit-1"),
        pytest.param({"max_concurrent_runs": 10}, {"dp/flow_limit_10": "tagged"}, id="limit-10"),
        pytest.param(
            {"run_retries": 2},
            {"dagster/max_retries": "2", "dagster/retry_on_asset_or_op_failure": "true"},
            id="E8-run-retries-alone-retry-failures",
        ),
        pytest.param(
            {"run_retries": 2, "retry": {"max_retries": 3}},
            {"dagster/max_retries": "2", "dagster/retry_on_asset_or_op_failure": "false"},
            id="E8-with-node-retries-only-crashes",
        ),
    ],
)
def test_policy_tags_on_the_job(policies, expected):
    job = compile_flows(flow_spec("tagged", policies=policies)).resolve_job_def("tagged")
    tags = {k: v for k, v in job.tags.items() if k not in ("dp/flow_version", "dagster/retry_strategy")}
    assert tags == {"dp/flow": "tagged", **expected}


def test_limits_above_ten_are_refused_with_the_reason():
    from dp_assets.catalog import default_catalog
    from dp_assets.spec.validation import FlowValidationError, validate_spec

    with pytest.raises(FlowValidationError, match="max_concurrent_runs"):
        validate_spec(flow_spec("x", policies={"max_concurrent_runs": 11}), default_catalog())


def test_instance_config_covers_every_limit_tag():
    config = concurrency_limits_config()
    assert {entry["key"] for entry in config} == {"dp/flow"} | {flow_limit_tag(n) for n in range(1, 11)}
    assert all(entry["value"] == {"applyLimitPerUniqueValue": True} for entry in config)


@pytest.mark.parametrize(
    "policies,node_retry,attempts,will_retry",
    [
        pytest.param({"run_retries": 2}, {"max_retries": 2}, 3, False, id="E8-node-retries-not-multiplied"),
        pytest.param({"run_retries": 1}, None, 1, True, id="E8-no-node-retries-run-retry"),
    ],
)
def test_E8_node_and_run_retries(tmp_path, policies, node_retry, attempts, will_retry):
    """A node that always fails, with node retries and run retries declared: the node is tried
    ``max_retries + 1`` times in the run, and Dagster's run-retry daemon does not retry the run
    for that failure again (it would multiply the attempts); without node retries the run retry
    is what retries the node."""
    node = {**READS, **({"retry": {**node_retry, "delay": 0}} if node_retry else {})}
    flow_id = f"e8_{attempts}"
    defs = compile_flows(
        {"id": flow_id, "policies": policies, "nodes": [node]},
        resources={"files": FilesResource(data_dir=str(tmp_path))},
    )
    overrides = {"run_retries": {"enabled": True, "max_retries": 0}}  # the flow's tags decide
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path / "home")) as instance:
        result = defs.resolve_job_def(flow_id).execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error.cause.message
        if attempts > 1:
            assert f"failed after {attempts} attempts" in failure
        else:
            assert "attempts" not in failure
        run = instance.get_run_by_id(result.run_id)
        assert should_retry(run, instance) is will_retry  # the daemon's own decision
        assert instance.get_run_by_id(result.run_id).tags["dagster/will_retry"] == str(will_retry).lower()
