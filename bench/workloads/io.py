"""Workload 4, IO: runs the IO engineer's ``bench.io_bench`` and includes its table as printed.

``bench/io_bench.py`` belongs to the per-run IO issue; it is run as ``python -m bench.io_bench``
(with ``--smoke`` for the CI size) in a child process, and its output goes into the report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(ctx: RunContext) -> WorkloadResult:

    result = WorkloadResult("io", "4. IO (bench.io_bench, per-run IO issue)")
    args = ["--smoke", "--formats", "arrow"] if ctx.smoke else []  # smoke: the default format only
    command = [sys.executable, "-m", "bench.io_bench", *args]
    shown = " ".join(["python -m bench.io_bench", *args])
    if not (REPO_ROOT / "bench" / "io_bench.py").exists():
        result.rows.append(
            ctx.row(
                "io",
                "-",
                "IO benchmark",
                None,
                "",
                check="n/a",
                notes="TODO: bench/io_bench.py (per-run IO issue) is not there yet",
            )
        )
        return result
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, check=False, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    output = done.stdout.strip()
    ok = done.returncode == 0 and output
    result.rows.append(
        ctx.row(
            "io",
            "smoke" if ctx.smoke else "full",
            f"`{shown}`",
            seconds,
            "s",
            check="ok" if ok else f"FAILED: exit {done.returncode}: {done.stderr.strip()[-300:]}",
            notes="its own table follows; it checks its round trips itself",
        )
    )
    if output:
        result.text = f"Output of `{shown}`:\n\n" + (output if "|" in output else f"```\n{output}\n```")
    return result
