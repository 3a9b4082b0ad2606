"""A throwaway code location for the Celery stack tests (not the platform's own location).

``fan_out``: one ``start`` step, ``DP_TEST_WIDTH`` ``work_i`` steps that each sleep
``DP_TEST_STEP_SECONDS`` (so that two single-slot workers must share them) and one ``collect``.
``slow``: one step that appends a line to ``$DP_TEST_MARKERS/<run id>`` when it starts and when it
ends (how many times a step ran, F1) and sleeps in between.
Outputs go through a filesystem IO manager under ``DP_OUTPUTS_URL``, which every worker shares.
Settings are read when the location loads (a test module; the platform never does this).
"""

import json
import os
import socket
import time
from pathlib import Path

import dagster as dg

from dp_resources.celery_config import celery_executor_for

WIDTH = int(os.environ.get("DP_TEST_WIDTH", "4"))
STEP_SECONDS = float(os.environ.get("DP_TEST_STEP_SECONDS", "2"))
LONGEST_STEP = float(os.environ.get("DP_TEST_LONGEST_STEP_SECONDS", "30"))
TUNING = json.loads(os.environ.get("DP_TEST_CELERY_TUNING") or "{}")
EXECUTOR = celery_executor_for(LONGEST_STEP, **TUNING)


@dg.op
def start() -> int:
    return 1


def _work(index: int) -> dg.OpDefinition:
    @dg.op(name=f"work_{index}")
    def work(value: int) -> dict:
        time.sleep(STEP_SECONDS)
        return {"index": index, "value": value, "pid": os.getpid(), "host": socket.gethostname()}

    return work


WORK = [_work(i) for i in range(WIDTH)]


@dg.op(ins={f"w{i}": dg.In(dict) for i in range(WIDTH)})
def collect(**parts: dict) -> list[dict]:
    return sorted(parts.values(), key=lambda part: part["index"])


@dg.job(executor_def=EXECUTOR, tags={"dp/flow": "fan_out"})
def fan_out() -> None:
    first = start()
    collect(**{f"w{i}": op(first) for i, op in enumerate(WORK)})


@dg.op
def slow_step(context: dg.OpExecutionContext) -> int:
    markers = Path(os.environ["DP_TEST_MARKERS"]) / context.run_id
    markers.parent.mkdir(parents=True, exist_ok=True)
    with markers.open("a") as handle:
        handle.write(f"start {os.getpid()}\n")
    time.sleep(STEP_SECONDS)
    with markers.open("a") as handle:
        handle.write(f"end {os.getpid()}\n")
    return 1


@dg.job(executor_def=EXECUTOR, tags={"dp/flow": "slow"})
def slow() -> None:
    slow_step()


defs = dg.Definitions(
    jobs=[fan_out, slow],
    resources={"io_manager": dg.FilesystemIOManager(base_dir=os.environ["DP_OUTPUTS_URL"])},
)
