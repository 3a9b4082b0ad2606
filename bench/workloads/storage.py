"""Workload 8, storage growth: Dagster's event log on PostgreSQL over many runs of a small flow.

A fresh PostgreSQL database (created and dropped here, as ``tests/conftest.py`` does) backs the
run, event-log and schedule storage of a Dagster instance in an isolated home. A 3-node flow is
run N times in process; then event-log rows and bytes per node-run are read from PostgreSQL.
A retention step follows: the platform's run-history retention (``retention: {keep_last: N,
run_history: true}``, ``dp_io.run_history.prune_run_history``) deletes every run but the last
``keep`` with its event-log rows, and the tables are measured again. Bytes are the live
rows' ``pg_column_size``; table sizes on disk only shrink after ``VACUUM FULL``.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

FLOW_ID = "bench_storage"
ADMIN_URL = os.environ.get("DP_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
TABLES = ("event_logs", "runs", "asset_keys", "asset_event_tags", "run_tags", "asset_check_executions")


def flow_spec() -> dict[str, Any]:
    rows = [{"id": i, "group": f"g{i % 3}", "value": float(i)} for i in range(20)]
    return {"id": FLOW_ID, "nodes": [
        {"id": "rows", "type": "StaticData", "params": {"rows": rows}},
        {"id": "sorted", "type": "SortData", "inputs": ["rows"], "params": {"by": "value"}},
        {"id": "totals", "type": "GroupAggregate", "inputs": ["sorted"],
         "params": {"by": "group", "agg": {"total": ["value", "sum"]}}},
    ]}


def _table_stats(engine) -> dict[str, dict[str, int]]:
    import sqlalchemy as sa

    stats = {}
    with engine.connect() as conn:
        present = {r[0] for r in conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
        for table in TABLES:
            if table not in present:
                continue
            rows, size = conn.execute(sa.text(
                f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t")).one()
            disk = conn.execute(sa.text(f"SELECT pg_total_relation_size('{table}')")).scalar()
            stats[table] = {"rows": int(rows), "bytes": int(size), "disk": int(disk)}
    return stats


def measure(runs: int, keep: int) -> dict[str, Any]:
    """Child entry point: needs PostgreSQL on 127.0.0.1:5432."""
    import dagster as dg
    import sqlalchemy as sa

    from bench.harness import flow_store, isolated_home, percentile, publish_all
    from dp_assets.location import build_code_location
    from dp_io.run_history import prune_run_history

    name = f"dp_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    out: dict[str, Any] = {}
    try:
        with isolated_home() as home:
            (home / "dagster" / "dagster.yaml").write_text(
                f"storage:\n  postgres:\n    postgres_url: {url}\ntelemetry:\n  enabled: false\n")
            store = flow_store(home)
            publish_all(store, [flow_spec()])
            defs = build_code_location(store=store, flows_folder=None)
            job = defs.resolve_job_def(FLOW_ID)
            instance = dg.DagsterInstance.get()
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                assert job.execute_in_process(instance=instance).success
                times.append(time.perf_counter() - started)
            engine = sa.create_engine(url)
            out["after_runs"] = _table_stats(engine)
            out["run_p50"], out["run_p95"] = percentile(times, 50), percentile(times, 95)
            started = time.perf_counter()
            report = prune_run_history(instance, FLOW_ID, keep_last=keep)
            out["prune_seconds"] = time.perf_counter() - started
            out["pruned_runs"] = len(report.deleted)
            out["after_prune"] = _table_stats(engine)
            latest = instance.get_latest_materialization_event(dg.AssetKey([FLOW_ID, "totals"]))
            out["latest_kept"] = latest is not None
            engine.dispose()
            instance.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return out


def postgres_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def run(ctx: RunContext) -> WorkloadResult:
    from bench.child import run_child

    result = WorkloadResult("storage", "8. Storage growth on PostgreSQL (event log per node-run)")
    if not postgres_up():
        result.rows.append(ctx.row("storage", "-", "event-log growth", None, "", check="n/a",
                                   notes="skipped: PostgreSQL is not reachable on 127.0.0.1:5432"))
        return result
    runs, keep = (5, 2) if ctx.smoke else (1000, 50)
    data = run_child("bench.workloads.storage:measure", {"runs": runs, "keep": keep})
    node_runs = runs * 3
    events = data["after_runs"]["event_logs"]
    pruned = data["after_prune"]["event_logs"]
    kept_runs = runs - data["pruned_runs"]
    check = "ok" if data["latest_kept"] and data["after_prune"]["runs"]["rows"] == kept_runs else (
        "FAILED: retention removed the wrong runs")
    case = f"{runs:,} runs x 3 nodes"
    other = {t: s for t, s in data["after_runs"].items() if t != "event_logs"}
    result.rows += [
        ctx.row("storage", case, "event-log rows per node-run", events["rows"] / node_runs, "rows", check=check,
                notes=f"{events['rows']:,} rows in event_logs after {runs:,} runs"),
        ctx.row("storage", case, "event-log bytes per node-run", events["bytes"] / node_runs, "B", check=check,
                notes=f"on disk with indexes: {events['disk'] / node_runs:,.0f} B per node-run; other tables: "
                + ", ".join(f"{t} {s['rows']:,} rows" for t, s in other.items())),
        ctx.row("storage", case, "run time p50 on the PostgreSQL instance", data["run_p50"], "s", check=check,
                notes=f"p95 {data['run_p95']:.2f} s"),
        ctx.row("storage", f"keep last {keep} runs", "event-log rows after retention", pruned["rows"], "rows",
                anchor=events["rows"], anchor_label="before retention", check=check,
                notes=f"prune_run_history (retention run_history: true) deleted {data['pruned_runs']:,} runs "
                f"in {data['prune_seconds']:.1f} s "
                f"({data['prune_seconds'] / max(data['pruned_runs'], 1) * 1000:.0f} ms per run); the asset's "
                "latest materialisation is still found"),
    ]
    return result
