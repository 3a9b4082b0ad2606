"""Workload 1, per-node overhead: chains of 1, 10 and 50 nodes on small data.

Three ways to do the same pandas calls, each run several times after a warm-up in one child
process with a real ``DagsterInstance`` in a temp ``DAGSTER_HOME``: the embedded default's
(SQLite), Dagster's SQLite default, and, when PostgreSQL is up, production's storage class on a
fresh database against dagster-postgres' own on another, all interleaved:

- plain pandas calls (the anchor);
- the platform as a user runs it on the embedded default: specs published to the SQLite flow
  store, the code location built by ``build_code_location``, the flow's job executed in process
  with the location's resources (``dp_io.RunScopedIOManager``). Both step strategies: one step per
  flow (the default) and ``policies.steps: node``;
- a hand-written chain of Dagster ``@asset``s (one step each, in-process executor, Dagster's
  default filesystem IO manager, which pickles to ``DAGSTER_HOME/storage``).

Overhead per node = (median platform run - median pandas run) / nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.harness import frames_equal, median
from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

ROWS = 200
FLOW = "bench_chain_{n}"


def sample_rows(n: int = ROWS) -> list[dict[str, Any]]:
    return [{"id": i, "group": f"g{i % 7}", "value": (i * 7919) % 1000 / 10} for i in range(n)]


def node_step(i: int) -> dict[str, Any]:
    """The i-th transform of the chain (i >= 1): sorts and column selections, alternating."""
    if i % 3 == 1:
        return {"type": "SortData", "params": {"by": "value", "ascending": False}}
    if i % 3 == 2:
        return {"type": "SelectColumns", "params": {"columns": ["id", "group", "value"]}}
    return {"type": "SortData", "params": {"by": ["group", "id"]}}


def chain_spec(n: int, rows: list[dict], steps: str = "flow") -> dict[str, Any]:
    nodes = [{"id": "n0", "type": "StaticData", "params": {"rows": rows}}]
    for i in range(1, n):
        nodes.append({"id": f"n{i}", **node_step(i), "inputs": [f"n{i - 1}"]})
    flow_id = FLOW.format(n=n) + ("_steps" if steps == "node" else "")
    return {"id": flow_id, "name": f"Chain of {n}", "nodes": nodes, "policies": {"steps": steps}}


def pandas_op(i: int, df):
    step = node_step(i)
    params = step["params"]
    if step["type"] == "SelectColumns":
        return df[params["columns"]]
    return df.sort_values(
        by=params["by"], ascending=params.get("ascending", True), kind="stable", na_position="last", ignore_index=True
    )


def plain_pandas(n: int, rows: list[dict]):
    import pandas as pd

    df = pd.DataFrame.from_records(rows)
    for i in range(1, n):
        df = pandas_op(i, df)
    return df


def handwritten_defs(n: int, rows: list[dict]):
    """What a Dagster user writes by hand: one ``@asset`` per step and an asset job."""
    import dagster as dg
    import pandas as pd

    # no annotations here: this module uses postponed annotations, which Dagster would resolve
    prefix = f"hand_{n}"
    assets = []

    @dg.asset(key=[prefix, "n0"])
    def first():
        return pd.DataFrame.from_records(rows)

    assets.append(first)
    for i in range(1, n):

        def make(i: int):
            @dg.asset(key=[prefix, f"n{i}"], ins={"df": dg.AssetIn(key=[prefix, f"n{i - 1}"])})
            def step(df):
                return pandas_op(i, df)

            return step

        assets.append(make(i))
    job = dg.define_asset_job(prefix, selection=dg.AssetSelection.assets(*assets))
    return dg.Definitions(assets=assets, jobs=[job], executor=dg.in_process_executor)


#: Instance kinds measured side by side: the embedded default and Dagster's SQLite default, and
#: production's PostgreSQL storage class against dagster-postgres' own.
KIND_LABELS = {
    "default": "instance of `dp init-home`",
    "per_run_files": "Dagster's SQLite default instead (SqliteEventLogStorage, a file per run)",
    "postgres": "PostgreSQL, the storage class of dagster.yaml (dp_instance.pg_storage)",
    "postgres_stock": "PostgreSQL, dagster-postgres' own storage class (`storage: postgres:`)",
}


def instance_yaml(kind: str, dagster_home: str, pg_url: str | None = None) -> str:
    """The embedded default's instance file (what ``dp init-home`` writes), Dagster's own SQLite
    default (a database file per run), or an instance on PostgreSQL at ``pg_url``."""
    from pathlib import Path

    from bench.harness import pg_instance_yaml
    from dp_assets.cli.home import LOCAL_INSTANCE, instance_file_text, local_run_queue

    if kind == "per_run_files":
        return LOCAL_INSTANCE + local_run_queue()
    if kind.startswith("postgres"):
        assert pg_url, f"{kind} needs a database"
        return pg_instance_yaml(pg_url, storage_class=kind == "postgres")
    return instance_file_text(Path(dagster_home))


def measure(sizes: list[int], repeats: int, kinds: list[str]) -> dict[str, Any]:
    """Child entry point: per instance kind and size, median run times of pandas, the platform
    (both step modes) and the hand-written chain. The instance kinds are measured side by side,
    their runs interleaved, so that a noisy machine affects them alike."""
    import time
    from contextlib import ExitStack

    import dagster as dg

    from bench.harness import flow_store, fresh_database, isolated_home, publish_all, timed
    from dp_assets.location import build_code_location

    rows = sample_rows()
    out: dict[str, Any] = {kind: {"sizes": {}} for kind in kinds}
    with isolated_home() as home, ExitStack() as databases:
        instances = {}
        for kind in kinds:
            folder = home / f"dagster_{kind}"
            folder.mkdir()
            pg_url = databases.enter_context(fresh_database()) if kind.startswith("postgres") else None
            (folder / "dagster.yaml").write_text(instance_yaml(kind, str(folder), pg_url))
            instances[kind] = dg.DagsterInstance.from_config(str(folder))
            out[kind]["event_log_storage"] = type(instances[kind].event_log_storage).__name__
        store = flow_store(home)
        publish_all(store, [chain_spec(n, rows, steps) for n in sizes for steps in ("flow", "node")])
        defs = build_code_location(store=store, flows_folder=None)
        io_manager = type(defs.resources["io_manager"]).__name__
        for n in sizes:
            expected = plain_pandas(n, rows)
            pandas_times, _ = timed(lambda n=n: plain_pandas(n, rows), repeats=max(repeats, 20))
            hand_job = handwritten_defs(n, rows).resolve_job_def(f"hand_{n}")
            jobs = {
                "platform": (defs.resolve_job_def(FLOW.format(n=n)), FLOW.format(n=n)),
                "platform_steps": (defs.resolve_job_def(FLOW.format(n=n) + "_steps"), FLOW.format(n=n) + "_steps"),
                "dagster": (hand_job, f"hand_{n}"),
            }
            times: dict[tuple[str, str], list[float]] = {}
            for attempt in range(repeats + 1):  # the first round warms up
                for label, (job, flow_id) in jobs.items():
                    for kind, instance in instances.items():
                        started = time.perf_counter()
                        result = job.execute_in_process(instance=instance)
                        elapsed = time.perf_counter() - started
                        assert result.success, f"{flow_id} failed on the {kind} instance"
                        if attempt:
                            times.setdefault((kind, label), []).append(elapsed)
                        else:
                            value = result.asset_value(dg.AssetKey([flow_id, f"n{n - 1}"]))
                            out[kind].setdefault("checks", {})[f"{n}/{label}"] = frames_equal(value, expected)
            for kind in kinds:
                case = {"pandas": median(pandas_times)}
                for label in jobs:
                    case[label] = median(times[(kind, label)])
                    case[label + "_check"] = out[kind]["checks"][f"{n}/{label}"]
                out[kind]["sizes"][str(n)] = case
                out[kind]["io_manager"] = io_manager
        for instance in instances.values():
            instance.dispose()
    return out


def run(ctx: RunContext) -> WorkloadResult:
    from bench.child import run_child
    from bench.harness import postgres_up

    sizes = [1, 5] if ctx.smoke else [1, 10, 50]
    repeats = 1 if ctx.smoke else 3
    kinds = ["default"] if ctx.smoke else ["default", "per_run_files"]
    if postgres_up():
        kinds += ["postgres", "postgres_stock"]
    result = WorkloadResult("overhead", "1. Per-node overhead (in-process executor; embedded default and PostgreSQL)")
    data = run_child("bench.workloads.overhead:measure", {"sizes": sizes, "repeats": repeats, "kinds": kinds})
    for kind in kinds:
        if kind != "postgres_stock":  # an anchor only: compared below
            result.rows += rows_for(ctx, data[kind], sizes, kind)
    pairs = [
        ("default", "per_run_files", "instance of `dp init-home`", "Dagster's SQLite default (a file per run)"),
        (
            "postgres",
            "postgres_stock",
            "PostgreSQL, dagster.yaml's storage class",
            "dagster-postgres' own storage class",
        ),
    ]
    for ours, theirs, label, anchor_label in pairs:
        if ours in kinds and theirs in kinds:
            for n in sizes:
                mine, stock = data[ours]["sizes"][str(n)], data[theirs]["sizes"][str(n)]
                result.rows.append(
                    ctx.row(
                        "overhead",
                        f"{n} nodes",
                        f"run time, {label}",
                        mine["platform"],
                        "s",
                        anchor=stock["platform"],
                        anchor_label=anchor_label,
                        check="ok",
                        notes="same child, runs interleaved",
                    )
                )
    return result


def rows_for(ctx, data: dict[str, Any], sizes: list[int], kind: str) -> list:
    where = f"{KIND_LABELS[kind]}, {data['event_log_storage']}, IO manager {data['io_manager']}"
    rows = []
    for n in sizes:
        case = data["sizes"][str(n)]
        check = (
            "ok"
            if case["platform_check"] == case["dagster_check"] == "ok"
            else (f"platform: {case['platform_check']}; dagster: {case['dagster_check']}")
        )
        per_node_ms = (case["platform"] - case["pandas"]) / n * 1000
        hand_ms = (case["dagster"] - case["pandas"]) / n * 1000
        name = f"{n} nodes [{kind}]"
        rows += [
            ctx.row(
                "overhead",
                name,
                "overhead per node (steps: flow)",
                per_node_ms,
                "ms",
                anchor=hand_ms,
                anchor_label="hand-written @asset chain, per asset",
                target="< 50 ms/node" if kind == "default" else "",
                met=per_node_ms < 50 if kind == "default" else None,
                check=check,
                notes=f"(run - pandas) / nodes; {where}",
            ),
            ctx.row(
                "overhead",
                name,
                "run time (steps: flow)",
                case["platform"],
                "s",
                anchor=case["pandas"],
                anchor_label="plain pandas",
                check=check,
            ),
            ctx.row(
                "overhead",
                name,
                "run time (steps: flow)",
                case["platform"],
                "s",
                anchor=case["dagster"],
                anchor_label="hand-written @asset chain",
                check=check,
                notes="hand-written: one step per asset, in-process executor, fs_io_manager (pickle)",
            ),
            ctx.row(
                "overhead",
                name,
                "run time (steps: node)",
                case["platform_steps"],
                "s",
                anchor=case["dagster"],
                anchor_label="hand-written @asset chain",
                check=case["platform_steps_check"],
                notes=f"{(case['platform_steps'] - case['pandas']) / n * 1000:.0f} ms/node beyond pandas",
            ),
        ]
    lo, hi = sizes[0], sizes[-1]
    first, last = data["sizes"][str(lo)], data["sizes"][str(hi)]
    slope = ((last["platform"] - last["pandas"]) - (first["platform"] - first["pandas"])) / (hi - lo) * 1000
    hand_slope = ((last["dagster"] - last["pandas"]) - (first["dagster"] - first["pandas"])) / (hi - lo) * 1000
    rows.append(
        ctx.row(
            "overhead",
            f"{lo}->{hi} nodes [{kind}]",
            "marginal cost per extra node (steps: flow)",
            slope,
            "ms",
            anchor=hand_slope,
            anchor_label="hand-written @asset chain, per extra asset",
            check="ok",
            notes="slope between the smallest and largest flow: the fixed cost per run left out",
        )
    )
    return rows
