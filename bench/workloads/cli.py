"""Workload 9, the everyday dp commands: process start to exit, as a user types them.

Each command is a fresh process (the ``dp`` console script), run several times, interleaved with
its anchors so that both see the same machine load; the figure is the median wall time. Anchors:

- ``python -c pass``: the interpreter alone, the floor of any command;
- ``dagster --help``: Dagster's own CLI answering its help;
- ``python -c "import dagster"``: the floor of a command that compiles a flow, as ``dp validate``
  does (it checks that the flow compiles in Dagster, and the node catalog imports pandas).

The CPU time of each process (user + system, from the kernel's accounting of the child) is
reported beside the wall time: on a machine shared with other work it stays close to what the
command costs on an idle one, where the wall time does not.

Compiled bytecode is written on the warm-up run (``PYTHONDONTWRITEBYTECODE`` is unset for the
children), as after the first run of an installed package. Each platform command's output is
checked first (the help lists the commands; the spec validates).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness import median
from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SPEC = "flows/sales_summary.yaml"
COLD = f"dp validate {SPEC} (new version)"

#: name -> (argv, text its output must contain; None for an anchor)
COMMANDS: dict[str, tuple[list[str], str | None]] = {
    "python -c pass": ([sys.executable, "-c", "pass"], None),
    "dagster --help": ([str(BIN / "dagster"), "--help"], None),
    "python -c 'import dagster'": ([sys.executable, "-c", "import dagster"], None),
    "dp --help": ([str(BIN / "dp"), "--help"], "validate"),
    f"dp validate {SPEC}": ([str(BIN / "dp"), "validate", SPEC], "ok    "),
    # The same with no record of the version (a file just edited): it is compiled in Dagster.
    COLD: (["sh", "-c", f'rm -rf "$DP_HOME/cache" && exec {BIN / "dp"} validate {SPEC}'], "ok    "),
}


def _environment(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["DP_HOME"] = str(home)
    return env


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU seconds of one run of ``argv`` (the CPU of the children waited for meanwhile:
    this one alone, as runs are sequential)."""
    cpu, started = _cpu_of_children(), time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - started, _cpu_of_children() - cpu, done


def measure(repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, str]]:
    """Wall and CPU times per command (after one warm-up each), and each platform command's check."""
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    checks: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="dp-bench-cli-") as home:
        env = _environment(Path(home))
        for name, (argv, expected) in COMMANDS.items():  # warm-up: bytecode written, caches filled
            _, _, done = _time(argv, env)
            if expected is not None:
                ok = done.returncode == 0 and expected in done.stdout
                checks[name] = "ok" if ok else f"FAILED: exit {done.returncode}: {(done.stdout + done.stderr)[-300:]}"
        for _ in range(repeats):
            for name, (argv, _) in COMMANDS.items():
                wall, used, _ = _time(argv, env)
                times[name].append(wall)
                cpu[name].append(used)
    return times, cpu, checks


def run(ctx: RunContext) -> WorkloadResult:
    repeats = 2 if ctx.smoke else 7
    result = WorkloadResult("cli", "9. Everyday dp commands (process start to exit)")
    times, cpu, checks = measure(repeats)
    m = {name: median(values) for name, values in times.items()}
    c = {name: median(values) for name, values in cpu.items()}

    def spread(name: str) -> str:
        return f"min {min(times[name]):.2f} s, max {max(times[name]):.2f} s over {repeats} runs"

    help_, validate = "dp --help", f"dp validate {SPEC}"
    result.rows += [
        ctx.row(
            "cli",
            help_,
            "wall time (median)",
            m[help_],
            "s",
            anchor=m["python -c pass"],
            anchor_label="python -c pass",
            target="< 0.5 s",
            met=m[help_] < 0.5,
            check=checks[help_],
            notes=f"{spread(help_)}; lists the commands from dp_assets.cli.SUMMARIES, imports none of them",
        ),
        ctx.row(
            "cli",
            help_,
            "wall time (median)",
            m[help_],
            "s",
            anchor=m["dagster --help"],
            anchor_label="dagster --help",
            check=checks[help_],
            notes=f"dagster --help: {spread('dagster --help')}",
        ),
        ctx.row(
            "cli",
            validate,
            "wall time (median)",
            m[validate],
            "s",
            anchor=m["python -c 'import dagster'"],
            anchor_label="python -c 'import dagster'",
            target="< 1.5 s",
            met=m[validate] < 1.5,
            check=checks[validate],
            notes=f"{spread(validate)}; a version that compiled before (recorded in DP_HOME/cache/validated): "
            "every check but the Dagster compile, without importing dagster, pandas or the flow store",
        ),
        ctx.row(
            "cli",
            COLD,
            "wall time (median)",
            m[COLD],
            "s",
            anchor=m["python -c 'import dagster'"],
            anchor_label="python -c 'import dagster'",
            target="< 1.5 s",
            met=m[COLD] < 1.5,
            check=checks[COLD],
            notes=f"{spread(COLD)}; no record of the version: compiled in Dagster (imports dagster, not pandas)",
        ),
        ctx.row(
            "cli",
            help_,
            "CPU time (median)",
            c[help_],
            "s",
            anchor=c["python -c pass"],
            anchor_label="python -c pass",
            check=checks[help_],
            notes="user + system of the process",
        ),
        ctx.row(
            "cli",
            validate,
            "CPU time (median)",
            c[validate],
            "s",
            anchor=c["python -c 'import dagster'"],
            anchor_label="python -c 'import dagster'",
            check=checks[validate],
            notes="user + system of the process: close to its wall time on an idle machine",
        ),
    ]
    return result
