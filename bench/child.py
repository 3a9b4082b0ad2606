"""Run one measurement in a fresh Python process and read back its result and peak memory.

``run_child("bench.workloads.data_work:platform_run", {...})`` starts
``python -m bench.child TARGET ARGS_JSON``; the child calls the function, adds its own peak RSS
(``ru_maxrss``, the high-water mark since the process started, imports included) and prints one
JSON line after a marker. The parent adds the wall time from process start to that result, so
load-time figures include interpreter start and imports, as a user would see them.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MARKER = "@@BENCH_RESULT@@"
REPO_ROOT = Path(__file__).resolve().parent.parent


class ChildFailed(RuntimeError):
    pass


def current_rss_mb() -> float:
    """Resident memory now (VmRSS), for a baseline after imports."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_child(
    target: str,
    args: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Call ``module:function(**args)`` in a child process; its dict plus wall and peak figures."""
    command = [sys.executable, "-m", "bench.child", target, json.dumps(args or {})]
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH")]))
    started = time.perf_counter()
    done = subprocess.run(
        command, env=child_env, cwd=cwd or REPO_ROOT, capture_output=True, check=False, text=True, timeout=timeout
    )
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise ChildFailed(
            f"benchmark child {target} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    result = json.loads(lines[-1][len(MARKER) :])
    result["process_wall_seconds"] = wall
    return result


def main(argv: list[str]) -> int:
    target, raw = argv[0], argv[1] if len(argv) > 1 else "{}"
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(**json.loads(raw)) or {}
    result["peak_rss_mb"] = peak_rss_mb()
    sys.stdout.write("\n" + MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
