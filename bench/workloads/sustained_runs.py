"""Workload 13, sustained small runs: how many runs a minute this machine completes, with every
run's history kept.

A real ``dagster-daemon`` and ``dagster-webserver`` on ``dp init-home``'s instance (the warm run
launcher; the run queue as shipped: ``max_concurrent_runs: 4``, read every second). A 5-node
flow on small data is launched ``runs`` times through GraphQL ``launchRun`` as fast as the
webserver answers, so the queue stays full, after one run that is apart (the warm launcher
starts its template with it). Measured: from the first of those launches to the last run's end,
runs per minute, and the same per run; also the steady rate (first run's end to last run's end).
The anchor, in the same bench run, is the same instance with Dagster's default run launcher
(``DefaultRunLauncher``: a fresh run worker process per run).

Check, before a rate means anything: every run SUCCESS, and its history intact in the instance
(run start and success, step start and success, one materialisation per node:
``bench.live.history_problems``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

TITLE = "13. Sustained small runs (runs per minute, history intact)"
FLOW_ID = "bench_sustained"
NODES = 5


def flow_spec() -> dict[str, Any]:
    from bench.workloads.load_time import flow_spec as five_nodes

    return {**five_nodes(1), "id": FLOW_ID, "name": "Sustained runs"}


def measure(runs: int, launcher: str) -> dict[str, Any]:
    """Child entry point. ``launcher``: ``warm`` (dp init-home's) or ``default`` (Dagster's)."""
    import dagster as dg

    from bench.harness import percentile
    from bench.live import DEFAULT_LAUNCHER, history_problems, live_platform, run_timeline, wait_finished

    def instance_file(config: dict[str, Any]) -> None:
        if launcher == "default":
            config["run_launcher"] = DEFAULT_LAUNCHER

    with (
        live_platform("dp-bench-sustained-", [flow_spec()], instance=instance_file) as live,
        dg.DagsterInstance.get() as instance,
    ):
        first = live.client.launch_run(FLOW_ID)
        wait_finished(instance, [first], timeout=900, live=live)
        began = time.time()
        run_ids = [live.client.launch_run(FLOW_ID) for _ in range(runs)]
        submitted = time.time() - began
        wait_finished(instance, run_ids, timeout=600 + 30 * runs, live=live)
        timelines = [run_timeline(instance, run_id) for run_id in run_ids]
        problems = history_problems(instance, [first, *run_ids], NODES)
    ends = sorted(t["ended"] for t in timelines)
    wall = ends[-1] - began
    steady = (ends[-1] - ends[0]) / (runs - 1) if runs > 1 else wall
    executing = [t["success"] - t["started"] for t in timelines if "success" in t and "started" in t]
    return {
        "runs": runs,
        "wall": wall,
        "submitted": submitted,
        "steady_seconds_per_run": steady,
        "run_p50": percentile(executing, 50),
        "problems": problems[:5],
        "problem_count": len(problems),
    }


def run(ctx: RunContext) -> WorkloadResult:
    from bench.child import run_child

    runs = int(ctx.param("sustained_runs.runs", 2 if ctx.smoke else 200))
    result = WorkloadResult("sustained_runs", TITLE)
    measured = {
        launcher: run_child("bench.workloads.sustained_runs:measure", {"runs": runs, "launcher": launcher})
        for launcher in ("default", "warm")
    }
    warm, default = measured["warm"], measured["default"]
    bad = {k: v for k, v in measured.items() if v["problem_count"]}
    check = (
        "ok"
        if not bad
        else "FAILED: " + "; ".join(f"{k}: {v['problem_count']} runs {v['problems']}" for k, v in bad.items())
    )
    case = f"5-node flow, small data, {runs} runs queued at once (max_concurrent_runs 4)"
    per_minute = runs / warm["wall"] * 60
    default_per_minute = runs / default["wall"] * 60
    result.rows += [
        ctx.row(
            "sustained_runs",
            case,
            "runs per minute (first launch -> last run ended)",
            per_minute,
            "/min",
            check=check,
            notes=f"Dagster's default launcher, same run: {default_per_minute:.0f}/min; steady (first end -> last "
            f"end): {60 / warm['steady_seconds_per_run']:.0f}/min vs {60 / default['steady_seconds_per_run']:.0f}/min; "
            "every run SUCCESS with its events (run, step, a materialisation per node)",
        ),
        ctx.row(
            "sustained_runs",
            case,
            "wall seconds per run",
            warm["wall"] / runs,
            "s",
            anchor=default["wall"] / runs,
            anchor_label="Dagster's default launcher, same instance",
            check=check,
            notes=f"launchRun x{runs} took {warm['submitted']:.1f} s (default: {default['submitted']:.1f} s); "
            f"a run's RUN_START -> RUN_SUCCESS p50 {warm['run_p50']:.2f} s (default {default['run_p50']:.2f} s)",
        ),
    ]
    return result
