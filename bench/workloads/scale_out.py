"""Workload 6, scale-out with Celery: owned by the production issue; this row points to it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext


def run(ctx: RunContext) -> WorkloadResult:
    result = WorkloadResult("scale_out", "6. Scale-out (Celery)")
    result.rows.append(ctx.row(
        "scale_out", "-", "Celery executor throughput", None, "", check="n/a",
        notes="owned by the production issue (dagster-celery over Redis/RabbitMQ); not part of "
        "`python -m bench` yet. Known: about 1.1 s extra per step (the executor polls once a second)"))
    return result
