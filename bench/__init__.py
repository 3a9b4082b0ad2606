"""Benchmarks: the platform against plain pandas and hand-written Dagster, side by side.

Run ``python -m bench`` (full sizes), ``python -m bench --smoke`` (CI size) or
``python -m bench --report`` (re-render ``docs/benchmarks.md`` from the last saved results).
Each workload lives in ``bench.workloads``; measurements that need an isolated environment or a
peak-memory figure run in a child process (``bench.child``).
"""
