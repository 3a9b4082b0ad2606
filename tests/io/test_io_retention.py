"""Retention: list, show, read and prune stored runs; the ``dp runs`` CLI; the daily schedule.

Pruning must never delete an output that is still an asset's latest materialisation, and never
touch a run that is still in progress in the Dagster instance.
"""

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import dagster as dg
import io_flows
import pandas as pd
import pytest
from click.testing import CliRunner

from dp_io.cli import runs as runs_cli
from dp_io.io_manager import RunScopedIOManager
from dp_io.lookup import load_latest_output
from dp_io.retention import build_retention_schedule, list_runs, prune, read_output, show_run
from dp_io.retention_policy import RetentionPolicy, parse_duration


@pytest.fixture
def stored(instance: dg.DagsterInstance, dp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Three finished runs of flow ``steps`` (all, all, a only), one run still STARTED with an
    output folder, and an orphan folder no run record knows."""
    monkeypatch.setenv("DP_TEST_LOG", str(tmp_path / "log"))
    job = io_flows.steps_job()
    r1 = job.execute_in_process(instance=instance).run_id
    r2 = job.execute_in_process(instance=instance).run_id
    r3 = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(["steps", "a"])]).run_id

    base = dp_home / "outputs"
    running = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="steps", run_id=running, status=dg.DagsterRunStatus.STARTED))
    (base / running / "steps").mkdir(parents=True)
    (base / running / "steps" / "a.json").write_text("1")

    orphan = str(uuid.uuid4())
    (base / orphan / "steps").mkdir(parents=True)
    (base / orphan / "steps" / "a.json").write_text("2")
    old = time.time() - 30 * 86400
    os.utime(base / orphan / "steps" / "a.json", (old, old))
    return {"r1": r1, "r2": r2, "r3": r3, "running": running, "orphan": orphan, "base": base}


def _files(base: Path, run_id: str) -> list[str]:
    root = base / run_id
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_prune_keeps_latest_materialisations_and_skips_runs_in_progress(stored, instance) -> None:
    base = stored["base"]
    report = prune(keep_last=1, older_than=None, flow="steps", instance=instance)

    assert _files(base, stored["r3"]) == ["steps/a.arrow"]  # newest run: kept
    assert _files(base, stored["r2"]) == ["steps/b.arrow", "steps/c.json"]  # still latest
    assert _files(base, stored["r1"]) == [] and not (base / stored["r1"]).exists()
    assert _files(base, stored["orphan"]) == []
    assert _files(base, stored["running"]) == ["steps/a.json"]  # in progress: untouched
    assert report.skipped_in_progress == [stored["running"]]
    assert {r for r, _ in report.pruned} == {stored["r1"], stored["r2"], stored["orphan"]}
    assert len(report.kept_latest) == 2 and report.freed_bytes > 0

    # Every asset is still readable through its latest materialisation.
    io = RunScopedIOManager()
    assert load_latest_output(instance, dg.AssetKey(["steps", "c"]), io) == 60
    assert len(load_latest_output(instance, dg.AssetKey(["steps", "a"]), io)) == 3


def test_prune_dry_run_deletes_nothing(stored, instance) -> None:
    before = {k: _files(stored["base"], v) for k, v in stored.items() if k != "base"}
    report = prune(keep_last=1, flow="steps", instance=instance, dry_run=True)
    assert report.dry_run and len(report.deleted) == 5  # r1: 3, r2: a, orphan: a
    assert {k: _files(stored["base"], v) for k, v in stored.items() if k != "base"} == before


def test_prune_older_than_alone_still_keeps_latest(stored, instance) -> None:
    report = prune(older_than=timedelta(days=1), instance=instance, now=time.time() + 2 * 86400)
    base = stored["base"]
    kept = {run: _files(base, stored[run]) for run in ("r1", "r2", "r3")}
    assert kept == {"r1": [], "r2": ["steps/b.arrow", "steps/c.json"], "r3": ["steps/a.arrow"]}
    assert report.skipped_in_progress == [stored["running"]]


def test_prune_with_both_rules_needs_both(stored, instance) -> None:
    """keep_last=1 and older_than=1d: runs from just now are recent, so only the old orphan goes."""
    report = prune(keep_last=1, older_than=timedelta(days=1), instance=instance)
    assert [r for r, _ in report.pruned] == [stored["orphan"]]
    assert _files(stored["base"], stored["r1"]) != []


def test_list_show_read(stored, instance) -> None:
    summaries = list_runs("steps", instance=instance)
    ids = [s.run_id for s in summaries]
    assert set(ids) == {stored[k] for k in ("r1", "r2", "r3", "running", "orphan")}
    assert ids.index(stored["r3"]) < ids.index(stored["r2"]) < ids.index(stored["r1"])
    by_id = {s.run_id: s for s in summaries}
    assert by_id[stored["r1"]].outputs == 3 and by_id[stored["r1"]].status == "SUCCESS"
    assert by_id[stored["orphan"]].status is None

    detail = show_run(stored["r1"], instance=instance)
    assert [(o.node_id, o.format) for o in detail.outputs] == [
        ("a", "arrow"),
        ("b", "arrow"),
        ("c", "json"),
    ]
    assert all(o.bytes > 0 for o in detail.outputs)

    b = read_output(stored["r1"], "b")
    pd.testing.assert_frame_equal(b, pd.DataFrame({"x": [1, 2, 3], "y": [10, 20, 30]}))
    assert read_output(stored["r1"], "c", "steps") == 60
    with pytest.raises(FileNotFoundError, match="stored no output for node 'zzz'"):
        read_output(stored["r1"], "zzz")


def test_cli_list_show_read_prune(stored, tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(runs_cli, ["list", "steps"])
    assert listed.exit_code == 0, listed.output
    assert stored["r1"] in listed.output and "SUCCESS" in listed.output

    shown = runner.invoke(runs_cli, ["show", stored["r1"]])
    assert shown.exit_code == 0 and "steps/b" in shown.output and "arrow" in shown.output

    printed = runner.invoke(runs_cli, ["read", stored["r1"], "b"])
    assert printed.exit_code == 0 and "[3 rows x 2 columns]" in printed.output

    out = tmp_path / "b.csv"
    exported = runner.invoke(runs_cli, ["read", stored["r1"], "b", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert pd.read_csv(out, index_col=0)["y"].tolist() == [10, 20, 30]

    missing = runner.invoke(runs_cli, ["read", stored["r1"], "nope"])
    assert missing.exit_code != 0 and "dp runs show" in missing.output

    usage = runner.invoke(runs_cli, ["prune"])
    assert usage.exit_code != 0 and "--keep-last" in usage.output

    pruned = runner.invoke(runs_cli, ["prune", "--keep-last", "1", "steps"])
    assert pruned.exit_code == 0, pruned.output
    assert "skipped (in progress)" in pruned.output and "kept (latest)" in pruned.output
    assert _files(stored["base"], stored["r1"]) == []


def test_retention_schedule_prunes_per_flow_policy(stored, instance) -> None:
    schedule = build_retention_schedule({"steps": RetentionPolicy(keep_last=1)})
    defs = dg.Definitions(schedules=[schedule])
    defs.get_repository_def().load_all_definitions()
    assert schedule.cron_schedule == "0 3 * * *"
    result = defs.resolve_job_def("dp_retention_job").execute_in_process(instance=instance)
    assert result.success
    assert _files(stored["base"], stored["r1"]) == []
    assert _files(stored["base"], stored["r2"]) == ["steps/b.arrow", "steps/c.json"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({}, "keep_last, older_than_days or both"),
        ({"keep_last": 0}, "greater than or equal"),
        ({"keep": 1}, "Extra inputs"),
    ],
    ids=["empty", "zero", "unknown-key"],
)
def test_retention_policy_is_strict(value, error) -> None:
    with pytest.raises(ValueError, match=error):
        build_retention_schedule({"steps": value})


def test_a_spec_s_retention_block_is_the_policy_pruning_applies() -> None:
    """One model: the spec checks a ``retention:`` block as the schedule does, and an empty
    block (accepted by the spec, so a stored flow with one keeps loading) prunes nothing."""
    from dp_assets.catalog import default_catalog
    from dp_assets.spec.validation import validate_spec

    def spec(retention: dict) -> dict:
        node = {"id": "a", "type": "StaticData", "params": {"rows": [{"x": 1}]}}
        return {"id": "kept", "retention": retention, "nodes": [node]}

    flow = validate_spec(spec({"keep_last": 3, "run_history": True}), default_catalog()).flow
    assert flow.retention == RetentionPolicy(keep_last=3, run_history=True)
    with pytest.raises(ValueError, match="greater than or equal"):
        validate_spec(spec({"keep_last": 0}), default_catalog())
    assert not validate_spec(spec({}), default_catalog()).flow.retention.has_rule


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_parse_duration(text, expected) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="unit s, m, h, d or w"):
        parse_duration("7 days")


def test_retention_on_memory_filesystem(
    instance, dp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_base: str
) -> None:
    """The same listing and pruning through fsspec (memory://) instead of a local folder."""
    monkeypatch.setenv("DP_TEST_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("DP_OUTPUTS_URL", memory_base)
    job = io_flows.steps_job()
    old = job.execute_in_process(instance=instance).run_id
    new = job.execute_in_process(instance=instance).run_id
    assert [s.run_id for s in list_runs("steps", instance=instance)] == [new, old]
    assert show_run(old, instance=instance).summary.outputs == 3

    report = prune(keep_last=1, flow="steps", instance=instance)
    assert report.pruned == [(old, "steps")] and len(report.deleted) == 3
    assert [s.run_id for s in list_runs(instance=instance)] == [new]
    assert load_latest_output(instance, dg.AssetKey(["steps", "c"]), RunScopedIOManager()) == 60


# ---- run history: Dagster's run records and event logs -------------------------------------


def test_run_history_deletes_old_runs_with_their_events_and_keeps_latest(stored, instance) -> None:
    from dp_io.run_history import prune_run_history

    assert instance.get_records_for_run(stored["r1"]).records  # it logged events
    dry = prune_run_history(instance, "steps", keep_last=1, dry_run=True)
    assert dry.deleted == [stored["r1"]] and instance.get_run_by_id(stored["r1"]) is not None

    report = prune_run_history(instance, "steps", keep_last=1)
    assert report.deleted == [stored["r1"]]
    assert report.kept_latest == [stored["r2"]]  # still the latest `b` and `c`
    assert instance.get_run_by_id(stored["r1"]) is None
    assert instance.get_records_for_run(stored["r1"]).records == []
    for kept in ("r2", "r3", "running"):  # the newest, a latest, one in progress
        assert instance.get_run_by_id(stored[kept]) is not None
    for node in ("a", "b", "c"):
        assert instance.get_latest_materialization_event(dg.AssetKey(["steps", node])) is not None
    manager = RunScopedIOManager(base_url=str(stored["base"]))
    assert load_latest_output(instance, dg.AssetKey(["steps", "b"]), manager)["y"].tolist() == [10, 20, 30]


def test_run_history_judges_the_flow_s_runs_under_another_job(instance, dp_home: Path, tmp_path, monkeypatch) -> None:
    """A backfill or a Materialize runs a flow's assets under Dagster's asset job, tagged dp/flow:
    their history is the flow's too. Before, only runs of the job named after the flow were
    judged, so every backfill run was kept for ever."""
    from dp_io.run_history import prune_run_history

    monkeypatch.setenv("DP_TEST_LOG", str(tmp_path / "log"))
    assets = [io_flows.steps_a, io_flows.steps_b, io_flows.steps_c]
    io = {"io_manager": RunScopedIOManager()}
    backfill = dg.materialize(assets, instance=instance, resources=io, tags={"dp/flow": "steps"}).run_id
    other_flow = dg.materialize(assets, instance=instance, resources=io, tags={"dp/flow": "other"}).run_id
    newest = io_flows.steps_job().execute_in_process(instance=instance).run_id
    assert instance.get_run_by_id(backfill).job_name != "steps"

    report = prune_run_history(instance, "steps", keep_last=1)
    assert report.deleted == [backfill] and report.kept_latest == []
    assert instance.get_run_by_id(backfill) is None
    assert instance.get_run_by_id(other_flow) is not None and instance.get_run_by_id(newest) is not None
    manager = RunScopedIOManager(base_url=str(dp_home / "outputs"))
    expected = pd.DataFrame({"x": [1, 2, 3]}).assign(y=lambda d: d["x"] * 10)
    pd.testing.assert_frame_equal(load_latest_output(instance, dg.AssetKey(["steps", "b"]), manager), expected)


def test_run_history_by_age_keeps_what_is_recent(stored, instance) -> None:
    from dp_io.run_history import prune_run_history

    recent = prune_run_history(instance, "steps", older_than=timedelta(days=1))
    assert recent.deleted == []
    later = prune_run_history(instance, "steps", older_than=timedelta(days=1), now=time.time() + 2 * 86400)
    assert later.deleted == [stored["r1"]] and sorted(later.kept_latest) == sorted([stored["r2"], stored["r3"]])


def test_retention_schedule_and_cli_delete_run_history(stored, instance) -> None:
    schedule = build_retention_schedule({"steps": RetentionPolicy(keep_last=1, run_history=True)})
    defs = dg.Definitions(schedules=[schedule])
    assert defs.resolve_job_def("dp_retention_job").execute_in_process(instance=instance).success
    assert instance.get_run_by_id(stored["r1"]) is None
    assert instance.get_run_by_id(stored["r2"]) is not None

    runner = CliRunner()
    no_flow = runner.invoke(runs_cli, ["prune", "--keep-last", "1", "--run-history"])
    assert no_flow.exit_code != 0 and "name the FLOW" in no_flow.output
    again = runner.invoke(runs_cli, ["prune", "--keep-last", "0", "--run-history", "--dry-run", "steps"])
    assert again.exit_code == 0, again.output
    assert "kept run (latest materialisation)" in again.output
