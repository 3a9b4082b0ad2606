"""A live benchmark platform (``bench.live``: ``dagster-daemon`` and ``dagster-webserver`` on a home
of their own) leaves no process behind: not when it stops, and not when the benchmark process is
killed (a timeout of ``bench.child`` kills it with SIGKILL, running no clean-up).

Each of them starts a ``dagster api grpc`` code server that ignores SIGTERM; stopped alone, a
leader leaves it running with init as its parent. The processes of a home are found by the
``DAGSTER_HOME`` in their environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT, wait_for

pytestmark = [pytest.mark.e2e]

CHILD = """
import sys, time
from bench.live import live_platform
from bench.workloads.sustained_runs import flow_spec

with live_platform("dp-test-live-", [flow_spec()]) as live:
    print(live.env["DAGSTER_HOME"], flush=True)
    time.sleep(3600)
"""


def processes_of(home: str) -> list[str]:
    """``pid command`` of every live process whose environment names ``home`` as DAGSTER_HOME."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited meanwhile, or not ours
            continue
        if f"DAGSTER_HOME={home}".encode() in environ:
            found.append(f"{entry.name} {command[:120]}")
    return found


def wait_until_gone(home: str, whose: str) -> None:
    """Until no process of ``home`` is left (a bound against a hang: SIGKILLed processes take a
    moment to go); the error lists the ones that are."""
    wait_for(
        f"no process of {whose}",
        lambda: not processes_of(home),
        timeout=120,
        every=1,
        on_timeout=lambda: "\n".join(processes_of(home)),
    )


def test_a_stopped_live_platform_leaves_no_process() -> None:
    from bench.live import live_platform
    from bench.workloads.sustained_runs import flow_spec

    with live_platform("dp-test-live-", [flow_spec()]) as live:
        home = live.env["DAGSTER_HOME"]
        running = processes_of(home)
        assert sum("api grpc" in p for p in running) >= 1, running  # the code servers to stop
    wait_until_gone(home, "the stopped platform")


def test_a_killed_benchmark_leaves_no_process() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        home = child.stdout.readline().strip()  # once the webserver serves the flow
        assert home, "the live platform did not start"
        assert any("api grpc" in p for p in processes_of(home))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    wait_until_gone(home, "the killed benchmark's platform")
