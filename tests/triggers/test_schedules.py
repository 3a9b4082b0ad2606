"""Schedules at tick level: cron, time zone, params as run config, on/off by default, the
missed-runs policy (``latest`` vs ``skip``) and ``when_running: skip``."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from triggers_support import compile_flows, flow_spec

from dp_assets.spec.triggers import ScheduleTrigger
from dp_sensors.triggers.schedules import missed_tick_reason

PARAMS = {"region": {"type": "string", "required": True}, "n": {"type": "integer", "default": 1}}
UTC = dt.UTC


def schedule_of(spec: dict, name: str) -> dg.ScheduleDefinition:
    return compile_flows(spec).resolve_schedule_def(name)


def evaluate(schedule: dg.ScheduleDefinition, instance, scheduled: dt.datetime):
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=scheduled)
    return schedule.evaluate_tick(context)


def test_schedule_carries_cron_timezone_params_and_status():
    spec = flow_spec(
        "cards",
        params=PARAMS,
        triggers=[
            {"type": "schedule", "cron": "0 */2 * * *", "timezone": "Asia/Seoul", "params": {"region": "KR"}},
            {"type": "schedule", "cron": "30 6 * * 1", "params": {"region": "EU", "n": 2}, "enabled": False},
        ],
    )
    defs = compile_flows(spec)
    every_two_hours = defs.resolve_schedule_def("cards_schedule")
    weekly = defs.resolve_schedule_def("cards_schedule_2")
    assert every_two_hours.cron_schedule == "0 */2 * * *"
    assert every_two_hours.execution_timezone == "Asia/Seoul"
    assert every_two_hours.job_name == "cards"
    assert every_two_hours.default_status == dg.DefaultScheduleStatus.RUNNING
    assert weekly.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.parametrize(
    "policy,late_seconds,runs",
    [
        pytest.param("latest", 5, True, id="latest-on-time"),
        pytest.param("latest", 6 * 3600, True, id="latest-missed-runs-once-daemon-is-back"),
        pytest.param("skip", 5, True, id="skip-on-time"),
        pytest.param("skip", 299, True, id="skip-just-within-grace"),
        pytest.param("skip", 6 * 3600, False, id="skip-missed"),
    ],
)
def test_missed_runs_policy_at_tick_level(instance, policy, late_seconds, runs):
    """The daemon evaluates the latest missed tick with its scheduled time once it is back; that
    tick runs under ``latest`` and is skipped under ``skip``."""
    flow_id = f"missed_{policy}_{late_seconds}"
    spec = flow_spec(
        flow_id,
        params=PARAMS,
        triggers=[
            {"type": "schedule", "cron": "0 * * * *", "params": {"region": "EU"}, "missed_runs": policy},
        ],
    )
    schedule = schedule_of(spec, f"{flow_id}_schedule")
    scheduled = dt.datetime.now(UTC) - dt.timedelta(seconds=late_seconds)
    result = evaluate(schedule, instance, scheduled)
    if runs:
        (request,) = result.run_requests
        assert request.run_config == {"region": "EU"}
        assert request.tags["dp/trigger"] == "schedule"
    else:
        assert not result.run_requests
        assert "missed" in result.skip_message and "missed_runs: skip" in result.skip_message


def test_missed_tick_reason_is_a_pure_decision():
    trigger = ScheduleTrigger(type="schedule", cron="0 * * * *", missed_runs="skip", missed_after_seconds=60)
    now = dt.datetime(2024, 1, 1, 12, 0, 30, tzinfo=UTC)
    assert missed_tick_reason(trigger, dt.datetime(2024, 1, 1, 12, tzinfo=UTC), now) is None
    assert "61s late" in missed_tick_reason(trigger, dt.datetime(2024, 1, 1, 11, 59, 29, tzinfo=UTC), now)
    assert missed_tick_reason(trigger, None, now) is None  # evaluated by hand (no scheduled time)


def test_when_running_skip(instance):
    spec = flow_spec(
        "busy_sched",
        params=PARAMS,
        policies={"when_running": "skip"},
        triggers=[
            {"type": "schedule", "cron": "0 * * * *", "params": {"region": "EU"}},
        ],
    )
    schedule = schedule_of(spec, "busy_sched_schedule")
    now = dt.datetime.now(UTC)
    assert len(evaluate(schedule, instance, now).run_requests) == 1
    instance.add_run(dg.DagsterRun(job_name="busy_sched", status=dg.DagsterRunStatus.STARTING))
    skipped = evaluate(schedule, instance, now)
    assert not skipped.run_requests and "when_running: skip" in skipped.skip_message


@pytest.mark.parametrize(
    "trigger,message",
    [
        pytest.param({"cron": "0 * * * *", "params": {"n": 2}}, "region: Field required", id="missing-param"),
        pytest.param(
            {"cron": "0 * * * *", "params": {"region": "EU", "typo": 1}}, "typo: not a param of this flow", id="unknown"
        ),
    ],
)
def test_schedule_params_are_checked_when_the_flow_loads(trigger, message):
    spec = flow_spec("bad_sched", params=PARAMS, triggers=[{"type": "schedule", **trigger}])
    with pytest.raises(ValueError) as caught:
        compile_flows(spec)
    # Validation checks a trigger's params before the trigger is built (dp validate tells the truth).
    assert "flow 'bad_sched', field 'triggers[0].params': the params do not fit" in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "trigger,field",
    [
        pytest.param({"cron": "every hour"}, "cron", id="bad-cron"),
        pytest.param({"cron": "0 * * * *", "timezone": "Mars/Base"}, "timezone", id="bad-timezone"),
    ],
)
def test_bad_cron_or_timezone_fails_validation(trigger, field):
    from dp_assets.catalog import default_catalog
    from dp_assets.spec.validation import FlowValidationError, validate_spec

    with pytest.raises(FlowValidationError, match=rf"triggers\[0\]\.{field}"):
        validate_spec(flow_spec("x", triggers=[{"type": "schedule", **trigger}]), default_catalog())


def test_missed_runs_with_the_schedulers_own_catch_up(tmp_path, dp_home, monkeypatch):
    """Dagster's scheduler (the daemon's iteration, in-process) after four hours of downtime:
    of ~240 missed minutely ticks only the latest is evaluated (an hour late here); ``latest``
    starts exactly one run for it, ``skip`` starts none."""
    import logging

    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._scheduler.scheduler import launch_scheduled_runs
    from triggers_support import in_process_location, write_flows

    specs = [
        flow_spec(
            f"minutely_{policy}",
            params=PARAMS,
            triggers=[
                {"type": "schedule", "cron": "* * * * *", "params": {"region": "EU"}, "missed_runs": policy},
            ],
        )
        for policy in ("latest", "skip")
    ]
    monkeypatch.setenv("DP_FLOWS_DIR", str(write_flows(tmp_path / "flows", *specs)))
    queued = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
    now = dt.datetime.now(UTC)
    logger = logging.getLogger("test.scheduler")
    with dg.instance_for_test(overrides=queued, temp_dir=str(dp_home / "dagster")) as instance:
        with create_test_daemon_workspace_context(in_process_location(), instance) as context:
            list(
                launch_scheduled_runs(context, logger, end_datetime_utc=now - dt.timedelta(hours=5), iteration_times={})
            )
            # ... the daemon is down for four hours, then evaluates what it missed:
            list(
                launch_scheduled_runs(context, logger, end_datetime_utc=now - dt.timedelta(hours=1), iteration_times={})
            )
        runs = {
            flow_id: instance.get_runs(dg.RunsFilter(job_name=flow_id))
            for flow_id in ("minutely_latest", "minutely_skip")
        }
        assert len(runs["minutely_latest"]) == 1
        assert runs["minutely_latest"][0].run_config == {"region": "EU"}
        assert runs["minutely_skip"] == []
        ticks = instance.get_ticks(
            next(s for s in instance.all_instigator_state() if s.name == "minutely_skip_schedule").instigator_origin_id,
            next(s for s in instance.all_instigator_state() if s.name == "minutely_skip_schedule").selector_id,
        )
        assert any("missed_runs: skip" in (t.skip_reason or "") for t in ticks)
