"""X2: resource abuse is stopped by its own limit with a clean ``SandboxError`` subclass.

Busy loops (Python and C), allocations (str, list, numpy, pandas), output floods and deep
recursion each end with the error naming the limit and how to raise it; the parent and the
shared fork server keep working and no child process is left behind. No timing assertions: the
limits do the stopping, the tests check which limit did.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pandas as pd
import pytest

from dp_resources.sandbox import (
    Sandbox,
    SandboxCodeError,
    SandboxError,
    SandboxLimits,
    SandboxMemoryError,
    SandboxOutputError,
    SandboxTimeout,
    run_in_sandbox,
)

# Small limits keep the abuse quick; generous enough for a loaded two-core machine.
SMALL = SandboxLimits(cpu_seconds=2, memory_mb=256, wall_seconds=60, max_output_bytes=200_000)
CPU_BOUND = SMALL.model_copy(update={"cpu_seconds": 1, "wall_seconds": 120})
WALL_BOUND = SMALL.model_copy(update={"cpu_seconds": 120, "wall_seconds": 2})

ABUSE = [
    pytest.param(
        "while True:\n    pass",
        CPU_BOUND,
        SandboxTimeout,
        "cpu_seconds",
        id="X2-busy-loop-cpu",
    ),
    pytest.param(
        "while True:\n    pass",
        WALL_BOUND,
        SandboxTimeout,
        "wall_seconds",
        id="X2-busy-loop-wall",
    ),
    pytest.param(
        "x = np.ones(1000)\nwhile True:\n    x = np.sqrt(x + 1.0)",
        CPU_BOUND,
        SandboxTimeout,
        "cpu_seconds",
        id="X2-numpy-loop-cpu",
    ),
    pytest.param(
        # Catastrophic backtracking stays inside C, so only the hard RLIMIT_CPU (SIGKILL) stops it.
        "import re\nresult = re.match(r'(a+)+$', 'a' * 64 + 'b')",
        CPU_BOUND,
        SandboxTimeout,
        "cpu_seconds",
        id="X2-regex-backtracking-in-c",
    ),
    pytest.param(
        "x = 'a' * (10 ** 11)",
        SMALL,
        SandboxMemoryError,
        "memory_mb",
        id="X2-huge-string",
    ),
    pytest.param(
        "x = [0] * (10 ** 10)",
        SMALL,
        SandboxMemoryError,
        "memory_mb",
        id="X2-huge-list",
    ),
    pytest.param(
        "x = []\nwhile True:\n    x.append('a' * 10 ** 6)",
        SMALL,
        SandboxMemoryError,
        "memory_mb",
        id="X2-growing-list",
    ),
    pytest.param(
        "x = np.zeros(10 ** 10)",
        SMALL,
        SandboxMemoryError,
        "memory_mb",
        id="X2-numpy-alloc",
    ),
    pytest.param(
        "result = pd.DataFrame({'a': np.arange(10 ** 9)})",
        SMALL,
        SandboxMemoryError,
        "memory_mb",
        id="X2-pandas-alloc",
    ),
    pytest.param(
        "while True:\n    print('x' * 1000)",
        SMALL,
        SandboxOutputError,
        "max_output_bytes",
        id="X2-huge-stdout",
    ),
    pytest.param(
        "result = 'x' * 300000",
        SMALL,
        SandboxOutputError,
        "max_output_bytes",
        id="X2-huge-result-value",
    ),
    pytest.param(
        "result = pd.DataFrame({'a': np.arange(100000)})",
        SMALL,
        SandboxOutputError,
        "max_output_bytes",
        id="X2-huge-result-frame",
    ),
    pytest.param(
        "def f(n):\n    return f(n + 1)\nresult = f(0)",
        SMALL,
        SandboxCodeError,
        "recursion",
        id="X2-deep-recursion",
    ),
    pytest.param(
        "x = []\nfor i in range(200000):\n    x = [x]\nresult = repr(x)",
        SMALL,
        SandboxCodeError,
        "recursion",
        id="X2-deep-recursion-in-c",
    ),
]


def _fork_server_children(sandbox: Sandbox) -> list[int]:
    server_pid = sandbox._launcher._proc.pid  # type: ignore[attr-defined]
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == server_pid:
                children.append(int(entry.name))
    return children


@pytest.mark.fault
@pytest.mark.parametrize(("code", "limits", "error", "names_limit"), ABUSE)
def test_X2_abuse_is_stopped_by_its_limit(
    sandbox: Sandbox,
    code: str,
    limits: SandboxLimits,
    error: type[SandboxError],
    names_limit: str,
) -> None:
    """X2: the abuse ends with the matching error, which names the limit and how to raise it."""
    with pytest.raises(error) as stopped:
        sandbox.run(code, {"df": pd.DataFrame({"a": [1]})}, limits=limits)
    assert names_limit in str(stopped.value)
    assert sandbox.run("result = 1 + 1", {}).value == 2  # the shared server still serves
    assert _fork_server_children(sandbox) == []  # nothing left running or unreaped


@pytest.mark.fault
def test_X2_parent_memory_is_unaffected(sandbox: Sandbox) -> None:
    """X2: a child that fills its memory limit does not grow the parent."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    big = SMALL.model_copy(update={"memory_mb": 512})
    for _ in range(3):
        with pytest.raises(SandboxMemoryError):
            sandbox.run("x = []\nwhile True:\n    x.append('a' * 10 ** 6)", {}, limits=big)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 100_000


@pytest.mark.fault
@pytest.mark.parametrize(
    ("limits", "names_limit"),
    [
        pytest.param(CPU_BOUND, "cpu_seconds", id="X2-fresh-process-cpu"),
        pytest.param(
            SMALL.model_copy(update={"cpu_seconds": 120, "wall_seconds": 6}),
            "wall_seconds",
            id="X2-fresh-process-wall",
        ),
    ],
)
def test_X2_fresh_process_path_enforces_time(limits: SandboxLimits, names_limit: str) -> None:
    """X2: ``run_in_sandbox`` (a fresh interpreter per call) enforces the same time limits."""
    with pytest.raises(SandboxTimeout) as stopped:
        run_in_sandbox("while True:\n    pass", {}, limits=limits)
    assert names_limit in str(stopped.value)


def test_X2_fresh_process_path_enforces_memory() -> None:
    """X2: the memory limit holds without the fork server too."""
    with pytest.raises(SandboxMemoryError):
        run_in_sandbox("x = np.zeros(10 ** 10)", {}, limits=SMALL)


def test_X2_error_messages_say_how_to_change_the_limit(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxOutputError) as stopped:
        sandbox.run("result = 'x' * 300000", {}, limits=SMALL)
    message = str(stopped.value)
    assert "max_output_bytes=200000" in message
    assert "`limits.max_output_bytes` on the node" in message
    assert "`sandbox` resource" in message
