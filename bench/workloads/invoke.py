"""Workload 12: flows as synchronous APIs — ``POST /flows/{flow_id}/invoke`` on a 5-node flow.

A real ``dagster-daemon`` and ``dagster-webserver`` on ``dp init-home``'s instance (the shipped
run coordinator, which starts a run at submit when it need not queue, and whatever run launcher
it names), and the receiver as ``dp webhook serve`` builds it, under uvicorn in this
process. Measured:

- invoke -> answer (the result rows) received, one caller at a time, p50/p95; the anchor, in the
  same run, is the same flow launched through GraphQL ``launchRun`` and polled until SUCCESS
  (what a client of Dagster's API does, without reading the result);
- ``callers`` concurrent callers invoking for ``seconds``: answers per minute, errors (anything
  but 200, or rows that differ from pandas), and whether every answered run is recorded in the
  instance with ``dp/trigger: invoke``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from bench.harness import wait_until
from bench.workloads.events_e2e import BIN, _environment, start_dagster, stop_all

FLOW_ID = "bench_invoke"
ROWS = [{"region": r, "amount": a} for r, a in [("EU", 3), ("US", 10), ("EU", 7), ("APAC", 1), ("US", 4)]]
TOKEN = "bench-invoke"


def flow_spec() -> dict[str, Any]:
    return {
        "id": FLOW_ID,
        "params": {"min_amount": {"type": "number", "default": 0}},
        "nodes": [
            {"id": "rows", "type": "StaticData", "params": {"rows": ROWS}},
            {
                "id": "valid",
                "type": "FilterRows",
                "inputs": ["rows"],
                "params": {"condition": "amount >= params.min_amount"},
            },
            {
                "id": "totals",
                "type": "GroupAggregate",
                "inputs": ["valid"],
                "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
            },
            {"id": "ranked", "type": "SortData", "inputs": ["totals"], "params": {"by": "total", "ascending": False}},
            {"id": "shown", "type": "DisplayResults", "inputs": ["ranked"], "params": {"n": 10}},
        ],
    }


def expected_rows(min_amount: float) -> list[dict[str, Any]]:
    import pandas as pd

    frame = pd.DataFrame(ROWS)
    frame = frame[frame["amount"] >= min_amount]
    totals = frame.groupby("region", as_index=False).agg(total=("amount", "sum")).sort_values("total", ascending=False)
    return json.loads(totals.to_json(orient="records"))


def measure(sequential: int, callers: int, seconds: float) -> dict[str, Any]:
    """Child entry point."""
    import dagster as dg
    import httpx

    from bench.harness import free_port, percentile
    from dp_assets.receiver import platform_invoke_backend, receiver_app
    from dp_resources.store import FlowStore
    from dp_sensors.events.sql import SqlEventBus
    from dp_sensors.launch import GraphQLClient, GraphQLLauncher, LaunchError
    from dp_sensors.webhook import LaunchLedger, serve_in_thread
    from dp_settings import load

    root = Path(tempfile.mkdtemp(prefix="dp-bench-invoke-"))
    env = _environment(root)
    (root / "flows").mkdir(parents=True)
    (root / "flows" / f"{FLOW_ID}.yaml").write_text(yaml.safe_dump(flow_spec()))
    subprocess.run([str(BIN / "dp"), "init-home"], env=env, check=True, capture_output=True)
    os.environ.update(env)
    port = free_port()
    graphql = f"http://127.0.0.1:{port}/graphql"
    logs = [open(root / f"{name}.log", "w") for name in ("daemon", "webserver")]  # noqa: SIM115
    procs = start_dagster(root, env, port, logs)
    settings = load({**env, "DP_WEBHOOK_TOKEN": TOKEN})
    store = FlowStore(settings.store_url())
    store.upgrade()
    bus = SqlEventBus(f"sqlite:///{root / 'events.db'}")
    bus.ensure_schema()
    ledger = LaunchLedger(f"sqlite:///{root / 'launches.db'}")
    ledger.ensure_schema()
    client = GraphQLClient(graphql)
    try:

        def loaded() -> bool:
            try:
                client.location_of(FLOW_ID)
                return True
            except LaunchError:  # not answering yet, or the location still loading
                return False

        wait_until("the webserver to load the flow", loaded, procs, timeout=600)
        backend = platform_invoke_backend(store, graphql, settings)
        app = receiver_app(
            store,
            bus,
            ledger=ledger,
            launcher=GraphQLLauncher(graphql),
            invoke_backend=backend,
            webhook=settings.webhook,
            invoke_max_wait_seconds=300,
        )
        with serve_in_thread(app) as base:
            auth = {"Authorization": f"Bearer {TOKEN}"}

            def invoke_once(http: httpx.Client, min_amount: float) -> tuple[float, int, str | None, bool]:
                started = time.perf_counter()
                response = http.post(
                    f"{base}/flows/{FLOW_ID}/invoke", json={"params": {"min_amount": min_amount}}, headers=auth
                )
                took = time.perf_counter() - started
                body = response.json()
                right = response.status_code == 200 and body["result"]["shown"]["rows"] == expected_rows(min_amount)
                return took, response.status_code, body.get("run_id"), right

            anchor: list[float] = []
            for _ in range(sequential):
                started = time.perf_counter()
                run_id = client.launch_run(FLOW_ID, {"min_amount": 4})
                status = client.wait_for_run(run_id, timeout=600, poll=0.02)
                anchor.append(time.perf_counter() - started)
                assert status == "SUCCESS", status
            with httpx.Client(timeout=600) as http:
                answers = [invoke_once(http, 4) for _ in range(sequential)]
            single = [took for took, *_ in answers]
            single_ok = all(right for *_, right in answers)

            results: list[tuple[float, int, str | None, bool]] = []
            lock = threading.Lock()
            stop_at = time.monotonic() + seconds

            def caller(index: int) -> None:
                with httpx.Client(timeout=600) as http:
                    while time.monotonic() < stop_at:
                        answer = invoke_once(http, index % 5)
                        with lock:
                            results.append(answer)

            threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.monotonic() - began
        instance = dg.DagsterInstance.get()
        answered = {run_id for _, _, run_id, _ in results if run_id}
        recorded = {
            run.run_id for run in instance.get_runs(dg.RunsFilter(job_name=FLOW_ID, tags={"dp/trigger": "invoke"}))
        }
        return {
            "sequential": sequential,
            "single_p50": percentile(single, 50),
            "single_p95": percentile(single, 95),
            "single_ok": single_ok,
            "anchor_p50": percentile(anchor, 50),
            "anchor_p95": percentile(anchor, 95),
            "callers": callers,
            "seconds": wall,
            "answers": len(results),
            "errors": sum(1 for _, status, _, right in results if not right),
            "concurrent_p50": percentile([took for took, *_ in results], 50) if results else None,
            "concurrent_p95": percentile([took for took, *_ in results], 95) if results else None,
            "all_recorded": answered <= recorded,
        }
    finally:
        client.close()
        bus.close()
        ledger.close()
        stop_all(procs, logs)


def run(ctx: Any) -> Any:
    from bench.child import run_child
    from bench.results import WorkloadResult

    sequential, callers, seconds = (2, 2, 10.0) if ctx.smoke else (20, 20, 60.0)
    data = run_child(
        "bench.workloads.invoke:measure", {"sequential": sequential, "callers": callers, "seconds": seconds}
    )
    result = WorkloadResult("invoke", "12. Invoke (flows as synchronous APIs)")
    single_check = "ok" if data["single_ok"] else "FAILED: an answer's rows differ from pandas"
    case = f"5-node flow, small data, {sequential} invokes one at a time"
    anchor = {"anchor_label": "launchRun + poll to SUCCESS, same run"}
    result.rows += [
        ctx.row(
            "invoke",
            case,
            "invoke -> answer, p50",
            data["single_p50"] * 1000,
            "ms",
            anchor=data["anchor_p50"] * 1000,
            target="< 300 ms",
            met=data["single_p50"] < 0.3,
            check=single_check,
            **anchor,
        ),
        ctx.row(
            "invoke",
            case,
            "invoke -> answer, p95",
            data["single_p95"] * 1000,
            "ms",
            anchor=data["anchor_p95"] * 1000,
            target="< 600 ms",
            met=data["single_p95"] < 0.6,
            check=single_check,
            **anchor,
        ),
    ]
    fine = data["errors"] == 0 and data["all_recorded"] and data["answers"] > 0
    check = (
        "ok"
        if fine
        else f"FAILED: {data['errors']} errors of {data['answers']}, every run recorded: {data['all_recorded']}"
    )
    case = f"{data['callers']} concurrent callers for {data['seconds']:.0f} s"
    per_minute = data["answers"] / data["seconds"] * 60
    result.rows += [
        ctx.row(
            "invoke",
            case,
            "answers per minute",
            per_minute,
            "/min",
            check=check,
            notes=f"{data['answers']} answers, {data['errors']} errors; every answered run recorded: {data['all_recorded']}",
            target="no errors, every run recorded",
            met=fine,
        ),
        ctx.row(
            "invoke", case, "invoke -> answer under load, p50", (data["concurrent_p50"] or 0) * 1000, "ms", check=check
        ),
        ctx.row(
            "invoke", case, "invoke -> answer under load, p95", (data["concurrent_p95"] or 0) * 1000, "ms", check=check
        ),
    ]
    return result
