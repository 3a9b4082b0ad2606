"""SVOps' task chain (``flows/svops/``), end to end with real webserver and daemon processes.

A task runs ``data_processing_pipeline`` -> ``ml_training_pipeline`` -> ``simple_workflow_example``
as three flows chained by ``flow`` triggers, started with ``dp launch --task-id`` through GraphQL
and followed with ``dp status``. Two tasks run at once: one on a good dataset goes through the
whole chain; one on a corrupt dataset fails in the middle, which stops the chain, marks the task
failed and posts a notification with a link to the failed run to a Slack-style webhook.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from examples_support import FLOWS

from dp_assets.cli import main as dp
from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CHAIN = ["data_processing_pipeline", "ml_training_pipeline", "simple_workflow_example"]


def expected_model(dataset: str) -> pd.DataFrame:
    """DAG 1 and DAG 2 in plain pandas."""
    raw = pd.read_csv(FLOWS / dataset)
    raw = raw[raw["label"].notna() & (raw["label"] != "")]
    raw = raw.fillna({"speed": raw["speed"].median()})
    return (
        raw.astype({"x": "float64", "y": "float64", "speed": "float64"})
        .groupby("label")
        .agg(x=("x", "mean"), y=("y", "mean"), speed=("speed", "mean"), samples=("sample_id", "count"))
        .reset_index()
    )


def test_svops_task_chain_runs_in_order_and_a_failure_in_the_middle_stops_it(platform, alerts):
    """SVOps: chain of three flows per task; status through the chain; failure -> failed + notified."""
    cli, env = CliRunner(), platform.cli_env()

    def status(task: str) -> dict:
        result = cli.invoke(dp, ["status", task, "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    tasks = {"task-ok": "svops/data/vector_run_01.csv", "task-bad": "svops/data/vector_run_02_corrupt.csv"}
    first_runs = {}
    for task, dataset in tasks.items():
        launched = cli.invoke(
            dp,
            ["launch", CHAIN[0], "--task-id", task, "--param", f"task={task}", "--param", f"dataset={dataset}"],
            env=env,
        )
        assert launched.exit_code == 0, launched.output
        first_runs[task] = json.loads(launched.output)["run_id"]
        assert status(task)["state"] in ("pending", "running")  # just launched: not finished

    finished = {
        task: wait_for(
            f"task {task} to finish",
            lambda task=task: (s := status(task))["state"] in ("succeeded", "failed") and s,
            on_timeout=platform.logs,
        )
        for task in tasks
    }

    # the good task went through the whole chain, in order, each run started by the one before
    ok = finished["task-ok"]
    assert ok["state"] == "succeeded", json.dumps(ok, indent=1) + platform.logs()
    assert [r["flow_id"] for r in ok["runs"]] == CHAIN
    assert [r["status"] for r in ok["runs"]] == ["SUCCESS"] * 3
    assert [r["trigger"] for r in ok["runs"]] == ["cli", "flow", "flow"]
    assert [r["parent_run"] for r in ok["runs"]] == [None, ok["runs"][0]["run_id"], ok["runs"][1]["run_id"]]
    assert ok["runs"][0]["run_id"] == first_runs["task-ok"] and ok["waiting_for"] == []
    report = pd.read_csv(platform.home / "data" / "svops" / "task-ok" / "report.csv")
    pd.testing.assert_frame_equal(report, expected_model(tasks["task-ok"]), check_dtype=False)

    # the corrupt task failed in the middle: DAG 3 never started, the task is failed
    bad = finished["task-bad"]
    assert bad["state"] == "failed", json.dumps(bad, indent=1)
    assert [(r["flow_id"], r["status"]) for r in bad["runs"]] == [(CHAIN[0], "SUCCESS"), (CHAIN[1], "FAILURE")]
    assert bad["waiting_for"] == []
    task_dir = platform.home / "data" / "svops" / "task-bad"
    assert (task_dir / "features.parquet").exists() and not (task_dir / "model.parquet").exists()

    # ... and the failure was announced with a link to the failed run, once
    failed_run = bad["runs"][1]["run_id"]
    posts = wait_for(
        "the failure notification",
        lambda: [r for r in alerts.seen("/services/", "POST") if failed_run in r.text],
        on_timeout=platform.logs,
    )
    assert len(posts) == 1
    text = posts[0].json()["text"]
    assert CHAIN[1] in text and f"{platform.url}/runs/{failed_run}" in text
    assert not [r for r in alerts.requests if any(run["run_id"] in r.text for run in ok["runs"])]

    # the human-readable status names every run of the chain
    shown = cli.invoke(dp, ["status", "task-bad"], env=env)
    assert shown.exit_code == 0 and "task task-bad: failed" in shown.output
    assert CHAIN[0] in shown.output and CHAIN[1] in shown.output and CHAIN[2] not in shown.output
