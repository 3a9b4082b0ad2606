"""The workloads, in the order they run and appear in the report."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TypeVar

from bench.results import Row


@dataclass(frozen=True)
class Workload:
    name: str
    module: str
    title: str


WORKLOADS = (
    Workload("overhead", "bench.workloads.overhead", "1. Per-node overhead"),
    Workload("data_work", "bench.workloads.data_work", "2. Data work (join, filter, aggregate, window, pivot)"),
    Workload("load_time", "bench.workloads.load_time", "3. Code location load time"),
    Workload("io", "bench.workloads.io", "4. IO (bench.io_bench)"),
    Workload("events", "bench.workloads.events", "5. Events"),
    Workload("scale_out", "bench.scaleout", "6. Scale-out (Celery)"),
    Workload("run_start", "bench.workloads.run_start", "7. Run start and launchRun"),
    Workload("storage", "bench.workloads.storage", "8. Storage growth on PostgreSQL"),
    Workload("cli", "bench.workloads.cli", "9. Everyday dp commands (process start to exit)"),
    Workload("designer", "bench.workloads.designer", "10. Designer: validation round trip"),
    Workload("designer_browser", "bench.workloads.designer_browser", "10b. Designer in Chromium; previews"),
    Workload("parallel", "bench.workloads.parallel", "11. Independent branches in parallel"),
    Workload("data_work_duckdb", "bench.workloads.data_work_duckdb", "2b. Data work on the DuckDB engine"),
    Workload("invoke", "bench.workloads.invoke", "12. Invoke: flows as synchronous APIs"),
    Workload("sustained_runs", "bench.workloads.sustained_runs", "13. Sustained small runs"),
    Workload(
        "events_exactly_once",
        "bench.workloads.events_exactly_once",
        "5c. Events -> exactly one run each, dispatcher killed -9",
    ),
    Workload("ui_materialize", "bench.workloads.ui_materialize", "14. UI Materialize in Chromium"),
)
BY_NAME = {w.name: w for w in WORKLOADS}


T = TypeVar("T", int, float, str)


@dataclass
class RunContext:
    """What a workload's ``run`` gets: the size, and a row factory stamped with command and env."""

    smoke: bool
    command: str
    env_id: str
    #: sizes given on the command line: ``--set WORKLOAD.NAME=VALUE``
    params: dict[str, str] = field(default_factory=dict)

    def param(self, key: str, default: T) -> T:
        """The size ``key`` (``WORKLOAD.NAME``) given with ``--set``, as the type of ``default``;
        else ``default`` (the workload's full or smoke size)."""
        raw = self.params.get(key)
        return default if raw is None else type(default)(raw)  # type: ignore[call-arg]

    def row(self, workload: str, case: str, measure: str, value: float | None, unit: str, **kw) -> Row:
        return Row(
            workload=workload,
            case=case,
            measure=measure,
            value=value,
            unit=unit,
            command=self.command,
            env=self.env_id,
            smoke=self.smoke,
            **kw,
        )


def load(workload: Workload):
    return importlib.import_module(workload.module)
