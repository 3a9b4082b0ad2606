"""Workload 11, independent branches: four Parquet sources, each filtered and aggregated, then
stacked (issue 20: independent nodes of a step run at the same time, in threads).

The same flow run in one child process on a real instance with the platform's IO manager
(every node's output kept), with ``policies.max_parallel_nodes: 1`` (one node after another:
the anchor, as every flow ran before) and with the default (the machine's cores, at most 4)
and 4, runs interleaved. The stacked result is compared with the same work written in pandas
before any time is reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.harness import median
from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

SOURCES = 4
FLOW = "bench_parallel"


def spec(limit: int | None) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    for i in range(SOURCES):
        nodes += [
            {"id": f"src{i}", "type": "FileInput", "params": {"path": f"part{i}.parquet"}},
            {"id": f"big{i}", "type": "FilterRows", "inputs": [f"src{i}"], "params": {"condition": "value > 250"}},
            {
                "id": f"agg{i}",
                "type": "GroupAggregate",
                "inputs": [f"big{i}"],
                "params": {"by": "key", "agg": {"total": ["value", "sum"], "n": ["value", "count"]}},
            },
        ]
    nodes.append({"id": "all", "type": "UnionConcatenate", "inputs": [f"agg{i}" for i in range(SOURCES)], "params": {}})
    policies = {"max_parallel_nodes": limit} if limit else {}
    return {"id": f"{FLOW}_{limit or 'default'}", "nodes": nodes, "policies": policies}


def pandas_result(folder: str) -> Any:
    import pandas as pd

    parts = []
    for i in range(SOURCES):
        df = pd.read_parquet(f"{folder}/part{i}.parquet")
        df = df[df["value"] > 250]
        parts.append(df.groupby("key", as_index=False).agg(total=("value", "sum"), n=("value", "count")))
    return pd.concat(parts, ignore_index=True)


def measure(rows: int, repeats: int) -> dict[str, Any]:
    """Child entry point: median run times per limit, and whether each result equals pandas'."""
    import tempfile
    import time
    from pathlib import Path

    import dagster as dg
    import numpy as np
    import pandas as pd

    from dp_assets.catalog import default_catalog
    from dp_assets.compiler.factory import build_flow_definitions
    from dp_assets.compiler.plan import default_parallel_nodes
    from dp_assets.dagster_internals import execute_run_in_process
    from dp_assets.spec.validation import validate_spec
    from dp_io import RunScopedIOManager
    from dp_resources.files import FilesResource

    tmp = Path(tempfile.mkdtemp(prefix="dp-bench-parallel-"))
    data = tmp / "data"
    data.mkdir()
    rng = np.random.default_rng(7)
    for i in range(SOURCES):
        frame = pd.DataFrame({"key": rng.integers(0, 1000, rows), "value": rng.random(rows) * 1000})
        frame["label"] = frame["key"].astype(str)
        frame.to_parquet(data / f"part{i}.parquet")
    expected = pandas_result(str(data))
    catalog = default_catalog()
    limits: list[int | None] = [1, None, 4]
    jobs = {}
    for limit in limits:
        defs = dg.Definitions.merge(
            build_flow_definitions(validate_spec(spec(limit), catalog), catalog),
            dg.Definitions(
                resources={
                    "io_manager": RunScopedIOManager(base_url=str(tmp / "runs")),
                    "files": FilesResource(data_dir=str(data)),
                },
                executor=dg.in_process_executor,
            ),
        )
        jobs[limit] = defs.resolve_job_def(spec(limit)["id"])
    times: dict[str, list[float]] = {str(limit): [] for limit in limits}
    checks: dict[str, str] = {}
    with dg.instance_for_test() as instance:
        for round_number in range(repeats + 1):  # the first round warms up
            for limit in limits:
                started = time.perf_counter()
                result = execute_run_in_process(jobs[limit], instance)
                elapsed = time.perf_counter() - started
                assert result.success
                if round_number:
                    times[str(limit)].append(elapsed)
                stored = pd.read_feather(tmp / "runs" / result.run_id / jobs[limit].name / "all.arrow")
                try:
                    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
                    checks[str(limit)] = "ok"
                except AssertionError as exc:
                    checks[str(limit)] = f"FAILED: {str(exc).splitlines()[0]}"
    return {
        "medians": {key: median(values) for key, values in times.items()},
        "runs": times,
        "checks": checks,
        "default_limit": default_parallel_nodes(),
    }


def run(ctx: RunContext) -> WorkloadResult:
    from bench.child import run_child

    rows = 20_000 if ctx.smoke else 2_000_000
    repeats = 1 if ctx.smoke else 3
    data = run_child("bench.workloads.parallel:measure", {"rows": rows, "repeats": repeats})
    result = WorkloadResult("parallel", "11. Independent branches in parallel (4 sources)")
    sequential = data["medians"]["1"]
    for key, label in (("None", f"default limit ({data['default_limit']})"), ("4", "limit 4")):
        runs = ", ".join(f"{t:.2f}" for t in data["runs"][key])
        result.rows.append(
            ctx.row(
                "parallel",
                f"4 sources x {rows:,} rows",
                f"run time, {label}",
                data["medians"][key],
                "s",
                anchor=sequential,
                anchor_label="the same flow, max_parallel_nodes: 1",
                check=data["checks"][key],
                notes=f"runs {runs}; every output stored; in process, one child",
            )
        )
    return result
