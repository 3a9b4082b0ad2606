"""Runs started with the UI's Materialize buttons are tagged with their flow when queued
(the browser test, tests/browser/test_ui_materialize.py, checks it on a real click)."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_instance.run_coordinator import FLOW_TAG, FLOWS_TAG, FlowRunCoordinator, flow_tags
from dp_sensors.triggers.policy import FLOW_TAG as POLICY_FLOW_TAG
from tests.fuzzing import fuzz_settings

FLOW_IDS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


def test_the_coordinator_tags_with_the_tag_the_run_limits_use():
    assert FLOW_TAG == POLICY_FLOW_TAG
    assert issubclass(FlowRunCoordinator, dg.QueuedRunCoordinator)


@fuzz_settings(100)
@given(st.lists(st.tuples(FLOW_IDS, st.lists(FLOW_IDS, min_size=1, max_size=3)), max_size=6), st.booleans())
def test_a_selection_is_tagged_with_the_one_flow_it_belongs_to(selection, tagged_already):
    keys = [dg.AssetKey([flow, *rest]) for flow, rest in selection]
    existing = {FLOW_TAG: "other"} if tagged_already else {}
    added = flow_tags(existing, keys)
    flows = {key.path[0] for key in keys} - {"dp_platform"}
    if tagged_already or not flows:
        assert added == {}
    elif len(flows) == 1:
        assert added == {FLOW_TAG: flows.pop()}
    else:
        assert added == {FLOWS_TAG: ",".join(sorted(flows))}


def test_the_load_report_alone_is_not_a_flow():
    assert flow_tags({}, [dg.AssetKey(["dp_platform", "flow_load_report"])]) == {}


# ---- the limits, counted as Dagster's queue daemon counts them -----------------------------------

TAG_KEYS = st.sampled_from(["dp/flow", "team", "lim"])
TAG_VALUES = st.sampled_from(["a", "b"])
TAGS = st.dictionaries(TAG_KEYS, TAG_VALUES, max_size=3)
TAG_LIMIT = st.fixed_dictionaries(
    {
        "key": TAG_KEYS,
        "limit": st.integers(min_value=0, max_value=3),
        "value": st.one_of(TAG_VALUES, st.just({"applyLimitPerUniqueValue": True}), st.just(None)),
    }
).map(lambda limit: {k: v for k, v in limit.items() if v is not None})


def _origin():
    """A queued run names the code location it came from."""
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

    return RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("loc"), "repo"), job_name="job"
    )


@pytest.fixture(scope="module")
def queue_instance() -> Iterator[dg.DagsterInstance]:
    queued = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
    with dg.instance_for_test(overrides={"run_coordinator": queued}) as instance:
        yield instance


@fuzz_settings(25)
@given(
    st.lists(st.tuples(TAGS, st.sampled_from(["STARTING", "STARTED", "CANCELING", "SUCCESS"])), max_size=5),
    TAGS,
    st.integers(min_value=-1, max_value=4),
    st.lists(TAG_LIMIT, max_size=3),
)
def test_a_run_may_start_exactly_when_the_queue_daemon_would_start_it(
    queue_instance, existing, candidate_tags, max_runs, tag_limits
):
    """``limit_reached`` (what a submit and the launcher's ask check) against the daemon's own
    choice of queued runs to launch, with the candidate the only queued run."""
    from dagster._core.instance.config import ConcurrencyConfig, PoolConfig
    from dagster._core.run_coordinator.queued_run_coordinator import RunQueueConfig
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from dp_instance.run_admission import limit_reached, runs_in_progress

    config = RunQueueConfig(
        max_concurrent_runs=max_runs,
        tag_concurrency_limits=tag_limits,
        should_block_op_concurrency_limited_runs=False,
    )
    queue = ConcurrencyConfig(
        pool_config=PoolConfig(pool_granularity=None, default_pool_limit=None, op_granularity_run_buffer=None),
        run_queue_config=config,
    )
    origin = _origin()
    instance = queue_instance
    instance.wipe()
    for tags, status in existing:
        instance.add_run(dg.DagsterRun(job_name="job", tags=tags, status=dg.DagsterRunStatus[status]))
    candidate = dg.DagsterRun(
        job_name="job", tags=candidate_tags, status=dg.DagsterRunStatus.QUEUED, remote_job_origin=origin
    )
    instance.add_run(candidate)
    daemon_launches = QueuedRunCoordinatorDaemon(interval_seconds=1)._get_runs_to_dequeue(
        instance, queue, fixed_iteration_time=None
    )
    ours = limit_reached(candidate, runs_in_progress(instance, other_than=candidate.run_id), config)
    assert (ours is None) == ([run.run_id for run in daemon_launches] == [candidate.run_id])


def test_the_launcher_sends_a_run_that_no_longer_fits_back_to_the_queue(tmp_path):
    """The queue daemon's count can miss a run started at submit after it counted: the launch it
    then makes is refused under the lock, and the run is queued again (its events say why)."""
    import yaml

    from dp_assets.cli.home import local_storage

    home = tmp_path / "dagster"
    home.mkdir()
    config = {
        **yaml.safe_load(local_storage(home)),
        "run_launcher": {"module": "dp_instance.warm_launcher", "class": "WarmRunLauncher"},
        "run_coordinator": {
            "module": "dp_instance.run_coordinator",
            "class": "FlowRunCoordinator",
            "config": {"max_concurrent_runs": 1, "launch_at_submit": True},
        },
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, FlowRunCoordinator)
        # Started at submit while the daemon held its count; then the daemon marks its pick STARTING.
        instance.add_run(dg.DagsterRun(job_name="job", status=dg.DagsterRunStatus.STARTED))
        picked = instance.add_run(
            dg.DagsterRun(job_name="job", status=dg.DagsterRunStatus.STARTING, remote_job_origin=_origin())
        )
        assert coordinator.admit_from_queue(picked) is False
        assert instance.get_run_by_id(picked.run_id).status == dg.DagsterRunStatus.QUEUED
        events = [r.event_log_entry for r in instance.get_records_for_run(picked.run_id).records]
        said = [
            f"{event.user_message} {event.dagster_event.message if event.dagster_event else ''}" for event in events
        ]
        assert any("max_concurrent_runs is 1" in text and "back in the queue" in text for text in said), said
        # With the slot free again, the daemon's next launch of it goes through.
        instance.delete_run(instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))[0].run_id)
        assert coordinator.admit_from_queue(instance.get_run_by_id(picked.run_id)) is True
