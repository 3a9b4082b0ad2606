"""Workload 3, load time: a code location of N stored flows of 5 nodes, to a serialised snapshot.

Each measurement is a fresh child process, timed from process start (interpreter and imports
included) until the repository snapshot is serialised, as a code server does before the UI can
show anything:

- the platform: ``build_code_location`` over a SQLite flow store holding N published flows
  (published beforehand by another child, not timed), one multi-asset and one job per flow;
- hand-written Dagster: the same 5N assets as one ``@asset`` per node (key, group and deps as the
  platform's), without jobs, and with one ``define_asset_job`` per flow.

The snapshot is ``RepositorySnap.from_def(repo, defer_snapshots=...)`` then ``serialize_value``;
``defer_snapshots=True`` is what a gRPC code server (``dagster dev``) sends, ``False`` builds
every job's snapshot as well.

At the target size (1,000 flows) the platform and the hand-written anchor are measured ``REPEAT``
times each, in rounds whose order alternates, and the medians are compared: a single load of 7-9 s
on this shared 2-core VM moved by +-15% from one run to the next (memory given back to the host,
the GC), more than the difference being measured.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

NODES = ("source", "sorted", "selected", "kept", "totals")
#: Loads of each kind at the target size (the median is reported).
REPEAT = 3
TARGET_FLOWS = 1000


#: The check of the "freshness" variant: each flow's last node declares one (a sensor evaluates it).
FRESHNESS = {"type": "freshness", "max_age_minutes": 1500}


def flow_spec(i: int, freshness: bool = False) -> dict[str, Any]:
    rows = [{"id": k, "group": f"g{k % 3}", "value": float(k * i % 17)} for k in range(4)]
    totals_checks = {"checks": [FRESHNESS]} if freshness else {}
    return {
        "id": f"flow_{i:05d}",
        "name": f"Flow {i}",
        "nodes": [
            {"id": "source", "type": "StaticData", "params": {"rows": rows}},
            {"id": "sorted", "type": "SortData", "inputs": ["source"], "params": {"by": "value"}},
            {
                "id": "selected",
                "type": "SelectColumns",
                "inputs": ["sorted"],
                "params": {"columns": ["group", "value"]},
            },
            {"id": "kept", "type": "FilterRows", "inputs": ["selected"], "params": {"condition": f"value > {i % 5}"}},
            {
                "id": "totals",
                "type": "GroupAggregate",
                "inputs": ["kept"],
                "params": {"by": "group", "agg": {"total": ["value", "sum"]}},
                **totals_checks,
            },
        ],
    }


def store_path(flows: int, freshness: bool = False) -> Path:
    """The cached store of N flows, one per schema revision (a store made before a migration
    is never read by a newer platform that skips the migration in a run worker)."""
    from dp_resources.store.store import HEAD_REVISION

    variant = "-freshness" if freshness else ""
    return Path(tempfile.gettempdir()) / f"dp-bench-store-{flows}{variant}-r{HEAD_REVISION}.db"


def prepare(flows: int, freshness: bool = False) -> dict[str, Any]:
    """Child entry point: publish N flows into a SQLite flow store (cached by N and variant)."""
    from bench.harness import publish_all
    from dp_resources.store import FlowStore

    path = store_path(flows, freshness)
    done = path.with_suffix(".complete")
    if done.exists():
        return {"path": str(path), "cached": True}
    path.unlink(missing_ok=True)
    store = FlowStore(f"sqlite:///{path}")
    store.upgrade()
    started = time.perf_counter()
    publish_all(store, [flow_spec(i, freshness) for i in range(flows)])
    done.write_text("ok")
    return {"path": str(path), "cached": False, "publish_seconds": time.perf_counter() - started}


def _snapshot(defs: Any, defer: bool) -> int:
    from dp_assets.dagster_internals import repository_snapshot

    return len(repository_snapshot(defs, defer))


def platform_load(path: str, defer: bool) -> dict[str, Any]:
    """Child entry point: the platform's code location over the stored flows."""
    started = time.perf_counter()
    from bench.harness import isolated_home
    from dp_assets.location import build_code_location
    from dp_resources.store import FlowStore

    imported = time.perf_counter()
    with isolated_home():
        defs = build_code_location(store=FlowStore(f"sqlite:///{path}"), flows_folder=None)
        built = time.perf_counter()
        size = _snapshot(defs, defer)
    done = time.perf_counter()
    jobs = len([j for j in defs.resolve_all_job_defs() if not j.name.startswith("__")])
    return {
        "import": imported - started,
        "build": built - imported,
        "snapshot": done - built,
        "bytes": size,
        "jobs": jobs,
    }


def handwritten_defs(flows: int, with_jobs: bool):
    import dagster as dg

    assets, jobs = [], []
    for i in range(flows):
        flow = f"flow_{i:05d}"
        keys = []
        for position, node in enumerate(NODES):
            deps = [dg.AssetKey([flow, NODES[position - 1]])] if position else []

            @dg.asset(key=[flow, node], deps=deps, group_name=flow)
            def _node(context):
                return None

            assets.append(_node)
            keys.append(dg.AssetKey([flow, node]))
        if with_jobs:
            jobs.append(dg.define_asset_job(flow, selection=dg.AssetSelection.assets(*keys)))
    return dg.Definitions(assets=assets, jobs=jobs)


def handwritten_load(flows: int, with_jobs: bool, defer: bool) -> dict[str, Any]:
    """Child entry point: the same assets written by hand, one ``@asset`` per node."""
    started = time.perf_counter()
    import dagster  # noqa: F401

    imported = time.perf_counter()
    defs = handwritten_defs(flows, with_jobs)
    built = time.perf_counter()
    size = _snapshot(defs, defer)
    done = time.perf_counter()
    return {"import": imported - started, "build": built - imported, "snapshot": done - built, "bytes": size}


def examples_load(home: str) -> dict[str, Any]:
    """Child entry point: the code location over the example flows (flows/), as ``dagster dev``
    loads it, in the platform home ``home`` (kept between calls: the second is a restart)."""
    import os

    started = time.perf_counter()
    from dp_assets.location import build_code_location

    imported = time.perf_counter()
    os.environ.update({"DP_HOME": home, "DAGSTER_HOME": f"{home}/dagster", "DP_FLOWS_DIR": "flows"})
    defs = build_code_location()
    built = time.perf_counter()
    _snapshot(defs, True)
    return {"import": imported - started, "build": built - imported, "snapshot": time.perf_counter() - built}


def dagster_import() -> dict[str, Any]:
    """Child entry point: ``import dagster`` alone, the floor of any code location."""
    started = time.perf_counter()
    import dagster  # noqa: F401

    return {"import": time.perf_counter() - started}


def _examples_rows(ctx: RunContext, result: WorkloadResult) -> None:
    """The examples: a first load (spec files imported, every flow validated) and a restart (files
    unchanged, validated versions restored from DP_HOME), each against ``import dagster``."""
    from bench.child import run_child

    with tempfile.TemporaryDirectory(prefix="dp-bench-examples-") as home:
        first = run_child("bench.workloads.load_time:examples_load", {"home": home})
        restart = run_child("bench.workloads.load_time:examples_load", {"home": home})
        floor = run_child("bench.workloads.load_time:dagster_import", {})
    for label, child in (("first load", first), ("restart", restart)):
        result.rows.append(
            ctx.row(
                "load_time",
                f"the example flows (flows/), {label}",
                "load, process start to snapshot",
                child["process_wall_seconds"],
                "s",
                anchor=floor["process_wall_seconds"],
                anchor_label="python process importing dagster alone",
                notes=(
                    f"import {child['import']:.2f} s, build {child['build']:.2f} s, snapshot "
                    f"{child['snapshot']:.2f} s; dagster alone imports in {floor['import']:.2f} s"
                ),
            )
        )


def run(ctx: RunContext) -> WorkloadResult:
    from bench.child import run_child

    sizes = [20] if ctx.smoke else [100, 1000, 5000]
    defer = True
    result = WorkloadResult("load_time", "3. Code location load time (process start -> serialised snapshot)")
    _examples_rows(ctx, result)
    for flows in sizes:
        path = run_child("bench.workloads.load_time:prepare", {"flows": flows})["path"]
        platform_args = {"path": path, "defer": defer}
        bare_args = {"flows": flows, "with_jobs": False, "defer": defer}
        rounds = REPEAT if flows == TARGET_FLOWS and not ctx.smoke else 1
        platform, bare = _interleaved(
            [
                ("bench.workloads.load_time:platform_load", platform_args),
                ("bench.workloads.load_time:handwritten_load", bare_args),
            ],
            rounds,
        )
        with_jobs = None
        if flows <= TARGET_FLOWS and not ctx.smoke:
            with_jobs = run_child(
                "bench.workloads.load_time:handwritten_load", {"flows": flows, "with_jobs": True, "defer": defer}
            )
        check = "ok" if platform["jobs"] == flows else f"FAILED: {platform['jobs']} jobs for {flows} flows"
        case = f"{flows:,} flows x 5 nodes"
        wall = platform["process_wall_seconds"]
        phases = (
            f"platform: import {platform['import']:.1f} s, build {platform['build']:.1f} s, "
            f"snapshot {platform['snapshot']:.1f} s ({platform['bytes'] / 1e6:.1f} MB), "
            f"peak {platform['peak_rss_mb']:.0f} MB; hand-written build {bare['build']:.1f} s, "
            f"snapshot {bare['snapshot']:.1f} s"
        )
        if rounds > 1:
            phases += f"; medians of {rounds} loads each, interleaved: platform {platform['runs']}, hand-written {bare['runs']}"
        result.rows.append(
            ctx.row(
                "load_time",
                case,
                "load, a job per flow",
                wall,
                "s",
                anchor=bare["process_wall_seconds"],
                anchor_label="hand-written @asset per node, no jobs",
                target="<= 1.0x" if flows == TARGET_FLOWS else "",
                met=(wall <= bare["process_wall_seconds"]) if flows == TARGET_FLOWS else None,
                check=check,
                notes=phases,
            )
        )
        if with_jobs is not None:
            result.rows.append(
                ctx.row(
                    "load_time",
                    case,
                    "load, a job per flow",
                    wall,
                    "s",
                    anchor=with_jobs["process_wall_seconds"],
                    anchor_label="hand-written @asset per node + asset job per flow",
                    check=check,
                    notes=f"hand-written with jobs: build {with_jobs['build']:.1f} s, snapshot {with_jobs['snapshot']:.1f} s",
                )
            )
        else:
            result.rows.append(
                ctx.row(
                    "load_time",
                    case,
                    "load, a job per flow",
                    wall,
                    "s",
                    anchor_label="hand-written + job per flow: not measured at this size (smoke, or 5,000 flows: many minutes)",
                    check=check,
                )
            )
        if flows == TARGET_FLOWS or ctx.smoke:  # what a freshness check on every flow adds to a load
            _freshness_row(ctx, result, flows, defer, platform)
    return result


def _interleaved(measures: list[tuple[str, dict[str, Any]]], rounds: int) -> list[dict[str, Any]]:
    """Each child measured ``rounds`` times, the order reversed every other round; per measure, the
    run of median wall time (its phases with it) and every wall time in ``runs``."""
    from bench.child import run_child

    samples: list[list[dict[str, Any]]] = [[] for _ in measures]
    for round_ in range(rounds):
        order = list(enumerate(measures))
        for index, (target, args) in order if round_ % 2 == 0 else reversed(order):
            samples[index].append(run_child(target, args))
    chosen = []
    for runs in samples:
        ordered = sorted(runs, key=lambda run: run["process_wall_seconds"])
        median = dict(ordered[len(ordered) // 2])
        median["runs"] = ", ".join(f"{run['process_wall_seconds']:.2f}" for run in runs) + " s"
        chosen.append(median)
    return chosen


def _freshness_row(ctx: RunContext, result: WorkloadResult, flows: int, defer: bool, plain: dict[str, Any]) -> None:
    """The same location with a freshness check on every flow, against the plain one: the cost
    of Dagster's freshness checks and of the location's one sensor that evaluates them."""
    from bench.child import run_child

    path = run_child("bench.workloads.load_time:prepare", {"flows": flows, "freshness": True})["path"]
    fresh = run_child("bench.workloads.load_time:platform_load", {"path": path, "defer": defer})
    extra_ms = (fresh["process_wall_seconds"] - plain["process_wall_seconds"]) * 1000 / flows
    result.rows.append(
        ctx.row(
            "load_time",
            f"{flows:,} flows x 5 nodes, each with a freshness check",
            "load, a job per flow",
            fresh["process_wall_seconds"],
            "s",
            anchor=plain["process_wall_seconds"],
            anchor_label="the same flows without the check",
            check="ok" if fresh["jobs"] == flows else f"FAILED: {fresh['jobs']} jobs for {flows} flows",
            notes=f"{extra_ms:+.1f} ms per flow; build {fresh['build']:.1f} s, snapshot {fresh['snapshot']:.1f} s",
        )
    )
