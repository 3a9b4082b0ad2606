"""Workload 8, storage growth: Dagster's event log on PostgreSQL over many runs of a small flow.

A fresh PostgreSQL database (created and dropped here, as ``tests/conftest.py`` does) backs the
run, event-log and schedule storage of a Dagster instance in an isolated home, with the storage
class of the repository's dagster.yaml (``dp_instance.pg_storage``). A 3-node flow is run N
times in process (every 20th run also on dagster-postgres' own storage class, in a second fresh
database: the anchor of the run time); then event-log rows and bytes per node-run are read from
PostgreSQL.
A retention step follows: the platform's run-history retention (``retention: {keep_last: N,
run_history: true}``, ``dp_io.run_history.prune_run_history``) deletes every run but the last
``keep`` with its event-log rows, and the tables are measured again. Bytes are the live
rows' ``pg_column_size``; table sizes on disk only shrink after ``VACUUM FULL``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

FLOW_ID = "bench_storage"
STOCK_EVERY = 20  # one run on dagster-postgres' own storage class per this many on the platform's
TABLES = ("event_logs", "runs", "asset_keys", "asset_event_tags", "run_tags", "asset_check_executions")


def flow_spec() -> dict[str, Any]:
    rows = [{"id": i, "group": f"g{i % 3}", "value": float(i)} for i in range(20)]
    return {
        "id": FLOW_ID,
        "nodes": [
            {"id": "rows", "type": "StaticData", "params": {"rows": rows}},
            {"id": "sorted", "type": "SortData", "inputs": ["rows"], "params": {"by": "value"}},
            {
                "id": "totals",
                "type": "GroupAggregate",
                "inputs": ["sorted"],
                "params": {"by": "group", "agg": {"total": ["value", "sum"]}},
            },
        ],
    }


def _table_stats(engine) -> dict[str, dict[str, int]]:
    import sqlalchemy as sa

    stats = {}
    with engine.connect() as conn:
        present = {r[0] for r in conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
        for table in TABLES:
            if table not in present:
                continue
            rows, size = conn.execute(
                sa.text(f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t")
            ).one()
            disk = conn.execute(sa.text(f"SELECT pg_total_relation_size('{table}')")).scalar()
            stats[table] = {"rows": int(rows), "bytes": int(size), "disk": int(disk)}
    return stats


def measure(runs: int, keep: int) -> dict[str, Any]:
    """Child entry point: needs PostgreSQL on 127.0.0.1:5432."""
    import dagster as dg
    import sqlalchemy as sa

    from bench.harness import flow_store, fresh_database, isolated_home, percentile, pg_instance_yaml, publish_all
    from dp_assets.location import build_code_location
    from dp_io.run_history import prune_run_history

    out: dict[str, Any] = {}
    with fresh_database() as url, fresh_database() as stock_url, isolated_home() as home:
        store = flow_store(home)
        publish_all(store, [flow_spec()])
        defs = build_code_location(store=store, flows_folder=None)
        job = defs.resolve_job_def(FLOW_ID)
        stock_folder = home / "stock"
        stock_folder.mkdir()
        (stock_folder / "dagster.yaml").write_text(pg_instance_yaml(stock_url, storage_class=False))
        stock = dg.DagsterInstance.from_config(str(stock_folder))
        (home / "dagster" / "dagster.yaml").write_text(pg_instance_yaml(url))
        instance = dg.DagsterInstance.get()
        times, stock_times = [], []
        for number in range(runs):
            started = time.perf_counter()
            assert job.execute_in_process(instance=instance).success
            times.append(time.perf_counter() - started)
            if number % STOCK_EVERY == 0:  # the anchor, interleaved
                started = time.perf_counter()
                assert job.execute_in_process(instance=stock).success
                stock_times.append(time.perf_counter() - started)
        stock.dispose()
        engine = sa.create_engine(url)
        out["after_runs"] = _table_stats(engine)
        out["run_p50"], out["run_p95"] = percentile(times, 50), percentile(times, 95)
        out["stock_p50"], out["stock_runs"] = percentile(stock_times, 50), len(stock_times)
        started = time.perf_counter()
        report = prune_run_history(instance, FLOW_ID, keep_last=keep)
        out["prune_seconds"] = time.perf_counter() - started
        out["pruned_runs"] = len(report.deleted)
        out["after_prune"] = _table_stats(engine)
        latest = instance.get_latest_materialization_event(dg.AssetKey([FLOW_ID, "totals"]))
        out["latest_kept"] = latest is not None
        engine.dispose()
        instance.dispose()
    return out


def run(ctx: RunContext) -> WorkloadResult:
    from bench.child import run_child
    from bench.harness import postgres_up

    result = WorkloadResult("storage", "8. Storage growth on PostgreSQL (event log per node-run)")
    if not postgres_up():
        result.rows.append(
            ctx.row(
                "storage",
                "-",
                "event-log growth",
                None,
                "",
                check="n/a",
                notes="skipped: PostgreSQL is not reachable on 127.0.0.1:5432",
            )
        )
        return result
    runs, keep = (5, 2) if ctx.smoke else (1000, 50)
    data = run_child("bench.workloads.storage:measure", {"runs": runs, "keep": keep})
    node_runs = runs * 3
    events = data["after_runs"]["event_logs"]
    pruned = data["after_prune"]["event_logs"]
    kept_runs = runs - data["pruned_runs"]
    check = (
        "ok"
        if data["latest_kept"] and data["after_prune"]["runs"]["rows"] == kept_runs
        else ("FAILED: retention removed the wrong runs")
    )
    case = f"{runs:,} runs x 3 nodes"
    other = {t: s for t, s in data["after_runs"].items() if t != "event_logs"}
    result.rows += [
        ctx.row(
            "storage",
            case,
            "event-log rows per node-run",
            events["rows"] / node_runs,
            "rows",
            check=check,
            notes=f"{events['rows']:,} rows in event_logs after {runs:,} runs",
        ),
        ctx.row(
            "storage",
            case,
            "event-log bytes per node-run",
            events["bytes"] / node_runs,
            "B",
            check=check,
            notes=f"on disk with indexes: {events['disk'] / node_runs:,.0f} B per node-run; other tables: "
            + ", ".join(f"{t} {s['rows']:,} rows" for t, s in other.items()),
        ),
        ctx.row(
            "storage",
            case,
            "run time p50 on the PostgreSQL instance",
            data["run_p50"],
            "s",
            check=check,
            anchor=data["stock_p50"],
            anchor_label="dagster-postgres' own storage class",
            notes=f"p95 {data['run_p95']:.2f} s; the storage class of dagster.yaml (dp_instance.pg_storage: "
            f"one kept connection per process, schema questions answered once); the anchor: "
            f"{data['stock_runs']} runs interleaved on `storage: postgres:` in a database of its own",
        ),
        ctx.row(
            "storage",
            f"keep last {keep} runs",
            "event-log rows after retention",
            pruned["rows"],
            "rows",
            anchor=events["rows"],
            anchor_label="before retention",
            check=check,
            notes=f"prune_run_history (retention run_history: true) deleted {data['pruned_runs']:,} runs "
            f"in {data['prune_seconds']:.1f} s "
            f"({data['prune_seconds'] / max(data['pruned_runs'], 1) * 1000:.0f} ms per run); the asset's "
            "latest materialisation is still found",
        ),
    ]
    return result
