"""Workload 2b, data work on the DuckDB engine (issue 20): the data-work flow with
``policies.engine: duckdb`` and ``policies.ephemeral: intermediate``, against two anchors in the
same run, each in its own child process:

- the hand-written pandas script (``data_work.by_hand``);
- the same work written directly as DuckDB SQL (``duckdb_by_hand``): DuckDB reads the Parquet
  files, one query per result, the results written to Parquet as the script writes them;

and the flow on the default engine with every node kept (``data_work.platform_run``), whose
target stays 1.3x pandas, and on the DuckDB engine with every node kept (no target: each stored
node is computed in its row order and exported whole). Targets: at 10M rows the DuckDB flow <= 0.5x pandas and <= 1.5x
DuckDB directly; at 1M <= 1.0x pandas; peak memory <= 1.0x pandas. Every result is checked
against the pandas script's before any time is reported (``data_work.compare``).
``--set data_work_duckdb.rows=1000000`` measures that one size only (while iterating on it).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.results import WorkloadResult
from bench.workloads.data_work import _both, _one_check, _summary, compare, read_inputs_through, timed_by_hand

if TYPE_CHECKING:
    from bench.registry import RunContext

REPEAT = 3
DUCKDB_POLICIES = {"engine": "duckdb", "ephemeral": "intermediate"}
MEASURED = {
    "pandas": ("bench.workloads.data_work:pandas_run", {}),
    "duckdb engine": ("bench.workloads.data_work:platform_run", {"policies": DUCKDB_POLICIES}),
    "duckdb directly": ("bench.workloads.data_work_duckdb:duckdb_run", {}),
    "default engine": ("bench.workloads.data_work:platform_run", {}),
    "duckdb engine, every node kept": ("bench.workloads.data_work:platform_run", {"policies": {"engine": "duckdb"}}),
}

DAILY = """
    SELECT c.region, p.category, o.day, sum(o.quantity * o.unit_price) AS revenue, count(o.order_id) AS orders
    FROM read_parquet('{folder}/orders.parquet') o
    JOIN read_parquet('{folder}/customers.parquet') c USING (customer_id)
    JOIN read_parquet('{folder}/products.parquet') p USING (product_id)
    WHERE o.quantity >= 2 AND c.segment <> 'consumer'
    GROUP BY ALL
"""
RUNNING = """
    SELECT *, sum(revenue) OVER w AS running_revenue, lag(revenue) OVER w AS previous_revenue
    FROM daily WINDOW w AS (PARTITION BY region, category ORDER BY day)
    ORDER BY region, category, day
"""
PIVOT = "PIVOT daily ON region USING sum(revenue) GROUP BY day ORDER BY day"


def duckdb_by_hand(folder: Path, out_prefix: str) -> None:
    """The same work as a DuckDB user writes it: SQL over the Parquet files."""
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"CREATE TEMP TABLE daily AS {DAILY.format(folder=folder)}")
    for name, sql in (("running", RUNNING), ("pivot", PIVOT)):
        frame = connection.sql(sql).df()
        frame.to_parquet(folder / "out" / f"{out_prefix}_{name}.parquet", index=False)


def duckdb_run(folder: str) -> dict[str, Any]:
    """Child entry point: the DuckDB SQL version, timed."""
    import duckdb  # noqa: F401  (imports are not part of the work)

    return timed_by_hand(duckdb_by_hand, folder, "duckdb")


def run(ctx: RunContext) -> WorkloadResult:
    from bench.child import run_child

    only = ctx.param("data_work_duckdb.rows", 0)
    sizes = [only] if only else [20_000] if ctx.smoke else [1_000_000, 10_000_000]
    result = WorkloadResult("data_work_duckdb", "2b. Data work on the DuckDB engine (ephemeral intermediates)")
    for rows in sizes:
        folder = Path(run_child("bench.workloads.data_work:generate", {"rows": rows})["folder"])
        read_inputs_through(folder)
        samples: dict[str, list[dict[str, Any]]] = {k: [] for k in MEASURED}
        checks: dict[str, list[str]] = {k: [] for k in MEASURED}
        labels = list(MEASURED)
        repeat = 1 if ctx.smoke else REPEAT
        for round_ in range(repeat):  # the order rotates: each goes first once
            for label in labels[round_ % len(labels) :] + labels[: round_ % len(labels)]:
                target, args = MEASURED[label]
                os.sync()
                samples[label].append(run_child(target, {"folder": str(folder), **args}))
                if label != "pandas":
                    prefix = "duckdb" if label == "duckdb directly" else "platform"
                    checks[label].append(compare(folder, prefix)[0])
        plain, duck, direct, default, duck_kept = (_summary(samples[k]) for k in MEASURED)
        duck_check, direct_check, default_check, duck_kept_check = (
            _one_check(checks[k]) for k in MEASURED if k != "pandas"
        )
        case = f"{rows:,} rows"
        big = rows >= 10_000_000
        pandas_target = 0.5 if big else 1.0
        row = functools.partial(ctx.row, "data_work_duckdb", case)
        result.rows += [
            row(
                "run time, engine: duckdb, ephemeral: intermediate",
                duck["seconds"],
                "s",
                anchor=plain["seconds"],
                anchor_label="pandas by hand",
                target=f"<= {pandas_target}x",
                met=duck["seconds"] / plain["seconds"] <= pandas_target,
                check=duck_check,
                notes=f"kept {duck['kept_bytes'] / 1e6:,.0f} MB; runs: duckdb engine {duck['runs']}, "
                f"pandas {plain['runs']} (median reported)",
            ),
            row(
                "run time, engine: duckdb, ephemeral: intermediate",
                duck["seconds"],
                "s",
                anchor=direct["seconds"],
                anchor_label="the same work as DuckDB SQL",
                target="<= 1.5x" if big else "",
                met=duck["seconds"] / direct["seconds"] <= 1.5 if big else None,
                check=_both(duck_check, direct_check),
                notes=f"DuckDB directly: {direct['seconds'] / plain['seconds']:.2f}x pandas; runs: {direct['runs']}",
            ),
            row(
                "peak RSS, engine: duckdb, ephemeral: intermediate",
                duck["peak_rss_mb"],
                "MB",
                anchor=plain["peak_rss_mb"],
                anchor_label="pandas by hand",
                target="<= 1.0x",
                met=duck["peak_rss_mb"] / plain["peak_rss_mb"] <= 1.0,
                check=duck_check,
                notes=f"whole process high-water mark; DuckDB directly {direct['peak_rss_mb']:.0f} MB",
            ),
            row(
                "run time, default engine, every node kept",
                default["seconds"],
                "s",
                anchor=plain["seconds"],
                anchor_label="pandas by hand",
                target="<= 1.3x" if big else "",
                met=default["seconds"] / plain["seconds"] <= 1.3 if big else None,
                check=default_check,
                notes=f"kept {default['kept_bytes'] / 1e6:,.0f} MB; runs: {default['runs']}",
            ),
            row(  # no target: what engine: duckdb costs without ephemeral nodes (docs/nodes.md, Engines)
                "run time, engine: duckdb, every node kept",
                duck_kept["seconds"],
                "s",
                anchor=plain["seconds"],
                anchor_label="pandas by hand",
                check=duck_kept_check,
                notes=f"kept {duck_kept['kept_bytes'] / 1e6:,.0f} MB; default engine {default['seconds']:.2f} s; "
                f"runs: {duck_kept['runs']}",
            ),
        ]
    return result
