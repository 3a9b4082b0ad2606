"""Workload 6, scale-out with Celery: a CPU-bound fan-out flow on one worker, then on two.

One production stack as plain processes (``tests/deploy/deploy_stack.py``: the gRPC code server
for ``dp_assets.definitions``, the webserver, the daemon, Celery workers; Dagster's storage and
the flow store on fresh PostgreSQL databases; Redis as broker and result backend), in this run:

1. one worker (one slot): a warm-up run, then the measured run of the fan-out flow;
2. a second worker joins (``celery-worker``, as ``docker compose up --scale worker=2`` would);
   a warm-up run, then the same measured run.

The flow (``tests/deploy/deploy_flows.py``): one source, ``WIDTH`` independent
``RunPythonScript`` nodes that each loop in pure Python (one core each), a union and a sink, with
``policies: {steps: node}`` so each node is a Celery task. Each run is launched through GraphQL.

Measured from the run's event log (timestamps of one machine):
- fan-out section: first burn step started -> last burn step finished; the speed-up is
  1-worker / 2-worker (target >= 1.7x on 2 cores, where the workers are the only load);
- the whole run: GraphQL launch -> RUN_SUCCESS;
- launch -> first step started on a worker: cold (the first run after the stack started: the
  worker's pool process loads the code location inside the step) and warm.
Check: the combined output equals the same loops in plain Python.

``python -m bench.scaleout [--smoke] [--width N] [--rounds N]`` prints the table on its own;
``run(ctx)`` is the entry point of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
HARNESS = REPO_ROOT / "tests" / "deploy"
FLOW = "bench_fan_out"
REDIS_URL = os.environ.get("DP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: Redis databases of this workload (emptied before and after): broker, results.
REDIS_DBS = (9, 10)
TARGET_SPEEDUP = 1.7

if TYPE_CHECKING:
    from bench.registry import RunContext
    from bench.results import WorkloadResult


def _harness() -> None:
    for folder in (HARNESS.parent, HARNESS):  # tests/, tests/deploy
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def _measure_run(stack: Any, rounds: int, width: int) -> dict[str, Any]:
    """Launch the flow through GraphQL and read its timings from the event log."""
    from dagster import DagsterEventType, DagsterRunStatus
    from deploy_flows import expected_combined

    from dp_io.formats import decode

    table = f"sink_{uuid.uuid4().hex[:8]}"
    load_before = round(os.getloadavg()[0], 2)
    launched = time.time()
    run_id = stack.launch(FLOW, {"rounds": rounds, "long_rounds": rounds, "table": table})
    run = stack.wait_run(run_id, bound_seconds=1800)
    if run.status != DagsterRunStatus.SUCCESS:
        raise RuntimeError(f"run {run_id} ended {run.status.value}:\n{stack.describe(run_id)}")
    starts = stack.events_of(run_id, DagsterEventType.STEP_START)
    burns_started = [r.timestamp for r in starts if "__node__burn_" in (r.step_key or "")]
    burns_done = [
        r.timestamp
        for r in stack.events_of(run_id, DagsterEventType.STEP_SUCCESS)
        if "__node__burn_" in (r.step_key or "")
    ]
    burn_seconds = _step_seconds(stack, run_id, "__node__burn_")
    finished = stack.events_of(run_id, DagsterEventType.RUN_SUCCESS)[0].timestamp
    combined = decode((stack.outputs / run_id / FLOW / "combined.arrow").read_bytes(), ".arrow")
    rows = sorted(combined[["k", "total", "salt"]].to_dict("records"), key=lambda r: (r["salt"], r["k"]))
    executions = stack.step_executions(run_id)
    return {
        "run_id": run_id,
        "run_seconds": finished - launched,
        "fanout_seconds": max(burns_done) - min(burns_started),
        "mean_step_seconds": sum(burn_seconds) / len(burn_seconds),
        "load_avg_before": load_before,
        "launch_to_first_step": min(r.timestamp for r in starts) - launched,
        "workers": sorted({e.worker_name for e in executions}),
        "check": "ok" if rows == expected_combined(width, rounds) else "FAILED: wrong totals",
    }


def _step_seconds(stack: Any, run_id: str, marker: str) -> list[float]:
    """STEP_START -> STEP_SUCCESS of each step whose key contains ``marker``."""
    from dagster import DagsterEventType

    started: dict[str, float] = {}
    durations = []
    for record in stack.records(run_id):
        event = record.dagster_event
        if not event or marker not in (record.step_key or ""):
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[record.step_key] = record.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            durations.append(record.timestamp - started[record.step_key])
    return durations


def measure(width: int, rounds: int, warmup_rounds: int) -> dict[str, Any]:
    """Start the stack with one worker, measure, add a second worker, measure again."""
    _harness()
    from deploy_flows import fan_out_spec, write_specs
    from deploy_stack import add_worker, start_stack, wait_workers

    out: dict[str, Any] = {"width": width, "rounds": rounds}
    with contextlib.ExitStack() as resources:
        from deploy_services import flushed_redis

        from bench.harness import fresh_database

        dagster_db = resources.enter_context(fresh_database(prefix="dp_bench_scaleout"))
        store_db = resources.enter_context(fresh_database(prefix="dp_bench_scaleout"))
        broker, backend = resources.enter_context(flushed_redis(REDIS_URL, REDIS_DBS))
        root = Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="dp-scaleout-")))
        spec = fan_out_spec(FLOW, width, rounds=rounds)
        started = time.time()
        stack = start_stack(
            root,
            postgres_url=dagster_db,
            store_url=store_db,
            broker_url=broker,
            backend_url=backend,
            flows_dir=write_specs(root / "flows", [spec]),
            workers=1,
            longest_step_seconds=600,
        )
        resources.callback(stack.stop)
        out["stack_start_seconds"] = time.time() - started
        out["cold"] = _measure_run(stack, warmup_rounds, width)
        out["one"] = _measure_run(stack, rounds, width)
        add_worker(stack, "worker2")
        wait_workers(stack, ["worker2"])
        _measure_run(stack, warmup_rounds, width)  # loads the location in worker2's pool
        out["two"] = _measure_run(stack, rounds, width)
    out["speedup_fanout"] = out["one"]["fanout_seconds"] / out["two"]["fanout_seconds"]
    out["speedup_run"] = out["one"]["run_seconds"] / out["two"]["run_seconds"]
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def table(result: dict[str, Any]) -> str:
    one, two, cold = result["one"], result["two"], result["cold"]
    lines = [
        (
            f"CPU-bound fan-out: {result['width']} independent nodes x {result['rounds']:,} rounds "
            "(RunPythonScript), a step per node, launched through GraphQL"
        ),
        "",
        (
            "| Celery workers (1 slot each) | fan-out section | whole run (launch -> success) "
            "| launch -> first step | mean node step | load avg (1 min) before |"
        ),
        "|---|---|---|---|---|---|",
        *(
            f"| {n} | {m['fanout_seconds']:.1f} s | {m['run_seconds']:.1f} s "
            f"| {m['launch_to_first_step']:.1f} s | {m['mean_step_seconds']:.1f} s "
            f"| {m['load_avg_before']} |"
            for n, m in ((1, one), (2, two))
        ),
        (
            f"| speed-up | **{result['speedup_fanout']:.2f}x** (target >= {TARGET_SPEEDUP}x) "
            f"| {result['speedup_run']:.2f}x | | | |"
        ),
        "",
        (
            f"Launch -> first step on a worker, cold (first run after start, the worker loads the "
            f"code location inside the step): {cold['launch_to_first_step']:.1f} s; warm: "
            f"{one['launch_to_first_step']:.1f} s and {two['launch_to_first_step']:.1f} s. "
            f"Stack start: {result['stack_start_seconds']:.0f} s. Checks: 1 worker {one['check']}, "
            f"2 workers {two['check']} (ran on {', '.join(two['workers'])}). Load average after: "
            f"{result['load_avg_after']}."
        ),
    ]
    return "\n".join(lines)


def _sizes(smoke: bool) -> tuple[int, int, int]:
    """(width, rounds, warm-up rounds)."""
    return (4, 1_000_000, 100_000) if smoke else (8, 30_000_000, 100_000)


def run(ctx: RunContext) -> WorkloadResult:
    """Entry point of ``python -m bench`` (registry name ``scale_out``)."""
    from bench.results import WorkloadResult

    result = WorkloadResult("scale_out", "6. Scale-out (Celery)")
    width, rounds, warmup = _sizes(ctx.smoke)
    case = f"{width} CPU-bound nodes"
    try:
        measured = measure(width, rounds, warmup)
    except Exception as exc:  # noqa: BLE001 - services missing or a run failed: say which
        print(f"scale_out failed: {type(exc).__name__}: {exc}", file=sys.stderr)  # all of it
        result.rows.append(
            ctx.row(
                "scale_out",
                case,
                "fan-out on 2 workers vs 1",
                None,
                "s",
                check=f"FAILED: {type(exc).__name__}: {str(exc)[:300]}",
            )
        )
        return result
    one, two = measured["one"], measured["two"]
    check = "ok" if one["check"] == two["check"] == "ok" else f"{one['check']} / {two['check']}"
    result.rows += [
        ctx.row(
            "scale_out",
            case,
            "fan-out section, 2 workers (anchor: 1 worker)",
            round(two["fanout_seconds"], 2),
            "s",
            anchor=round(one["fanout_seconds"], 2),
            anchor_label="1 worker",
            target=f">= {TARGET_SPEEDUP}x speed-up",
            met=measured["speedup_fanout"] >= TARGET_SPEEDUP,
            check=check,
            notes=f"speed-up {measured['speedup_fanout']:.2f}x",
        ),
        ctx.row(
            "scale_out",
            case,
            "whole run, launch -> success, 2 workers (anchor: 1 worker)",
            round(two["run_seconds"], 2),
            "s",
            anchor=round(one["run_seconds"], 2),
            anchor_label="1 worker",
            check=check,
            notes=f"speed-up {measured['speedup_run']:.2f}x",
        ),
        ctx.row(
            "scale_out",
            "warm workers",
            "GraphQL launch -> first step started on a worker",
            round(two["launch_to_first_step"], 2),
            "s",
            check=check,
        ),
        ctx.row(
            "scale_out",
            "cold workers",
            "GraphQL launch -> first step started on a worker",
            round(measured["cold"]["launch_to_first_step"], 2),
            "s",
            check=measured["cold"]["check"],
        ),
    ]
    result.text = table(measured)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="4 nodes, short loops")
    parser.add_argument("--width", type=int, default=None, help="independent CPU-bound nodes")
    parser.add_argument("--rounds", type=int, default=None, help="loop rounds per node")
    args = parser.parse_args(argv)
    width, rounds, warmup = _sizes(args.smoke)
    measured = measure(args.width or width, args.rounds or rounds, warmup)
    print(table(measured))
    return 0 if measured["speedup_fanout"] >= TARGET_SPEEDUP else 1


if __name__ == "__main__":
    raise SystemExit(main())
