"""``python -m bench [--smoke] [--only NAME ...] [--set WORKLOAD.NAME=VALUE ...] [--report] [--out FILE] [--docs DIR]``.

Runs the chosen workloads in this order, prints each table with its ratios as it finishes,
merges the rows into the results file (a workload not run keeps its last rows), and re-renders
``docs/benchmarks.md`` and its plot. ``--report`` only re-renders from the saved results.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from bench.env import REPO_ROOT, command_line, environment
from bench.registry import BY_NAME, WORKLOADS, RunContext, load
from bench.report import render_docs, render_table
from bench.results import LATEST, RESULTS_DIR, ResultSet, WorkloadResult

DOCS_DIR = REPO_ROOT / "docs"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks: the platform against plain pandas and hand-written Dagster, "
        "side by side, with ratios.",
    )
    parser.add_argument("--smoke", action="store_true", help="small sizes (what CI runs)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BY_NAME),
        metavar="NAME",
        help=f"run only these workloads: {', '.join(BY_NAME)}",
    )
    parser.add_argument(
        "--set",
        dest="params",
        action="append",
        default=[],
        type=_size,
        metavar="WORKLOAD.NAME=VALUE",
        help="a size instead of the workload's default, e.g. events_exactly_once.events=1000",
    )
    parser.add_argument(
        "--report", action="store_true", help="do not run anything: re-render docs/benchmarks.md from saved results"
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="copy the workloads of these results files into the results file, then "
        "render (for runs made with --out elsewhere)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default bench/results/latest.json, or smoke.json with --smoke)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="folder for benchmarks.md and benchmarks.png (default docs/; with --smoke "
        "docs are written only when this is given)",
    )
    return parser.parse_args(argv)


def _size(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    workload, dot, name = key.partition(".")
    if not (sep and dot and name and value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected WORKLOAD.NAME=VALUE")
    if workload not in BY_NAME:
        raise argparse.ArgumentTypeError(f"{text!r}: no workload {workload!r} (one of {', '.join(BY_NAME)})")
    return key, value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or (RESULTS_DIR / "smoke.json" if args.smoke else LATEST)
    docs = args.docs or (None if args.smoke else DOCS_DIR)
    results = ResultSet.load(out)
    if args.merge:
        for path in args.merge:
            other = ResultSet.load(path)
            for name, workload in other.workloads.items():
                envs = {r.env for r in workload.rows}
                results.workloads[name] = workload
                results.envs.update({k: v for k, v in other.envs.items() if k in envs})
        results.save(out)
        args.report = True
    if args.report:
        if docs is None:
            docs = DOCS_DIR
        print(f"rendered {render_docs(results, docs)}")
        return 0
    env = environment()
    ctx = RunContext(smoke=args.smoke, command=command_line(argv), env_id=env["id"], params=dict(args.params))
    chosen = [BY_NAME[name] for name in args.only] if args.only else list(WORKLOADS)
    print(
        f"machine: {env['cores']} cores, {env['memory_gib']} GiB, {env['cpu']}; "
        f"load {env['load_avg_at_start']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    )
    failed = []
    for workload in chosen:
        print(f"\n== {workload.title} {'(smoke)' if args.smoke else ''}", flush=True)
        started = time.perf_counter()
        try:
            result = load(workload).run(ctx)
        except Exception as exc:  # noqa: BLE001 - one workload's failure is reported, others run
            traceback.print_exc()
            failed.append(workload.name)
            result = WorkloadResult(workload.name, workload.title)
            result.rows.append(
                ctx.row(
                    workload.name,
                    "-",
                    "workload failed",
                    None,
                    "",
                    check=f"FAILED: {type(exc).__name__}: {str(exc)[:300]}",
                )
            )
        result.seconds = time.perf_counter() - started
        results.add(result, env)
        results.save(out)
        print(render_table(result))
        print(f"({result.seconds:.1f} s)", flush=True)
    if docs is not None:
        print(f"\nrendered {render_docs(results, docs)}")
    print(f"results saved to {out}")
    bad = [
        r
        for w in results.workloads.values()
        if w.name in {c.name for c in chosen}
        for r in w.rows
        if r.check.startswith("FAILED")
    ]
    if bad or failed:
        print(
            f"{len(bad)} row(s) failed their correctness check; failed workloads: {failed or 'none'}", file=sys.stderr
        )
        return 1
    return 0
