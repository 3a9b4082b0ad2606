"""Real processes for the deployment tests: start, wait until ready, stop by process group.

Every process gets its own session (process group), so a teardown or a fault test can signal the
whole tree it spawned (a webserver's code server, a Celery worker's pool children) and nothing
else; and a parent-death signal, so that a killed test run leaves no server behind. Readiness is polled with a generous start-up bound: it guards against a hang, it does not
assert speed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from bench.harness import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
START_BOUND_SECONDS = 120



@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace_seconds: float = 15) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``grace_seconds``."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                pass
        # Children may outlive their parent (a code server, pool processes): kill the group.
        self.signal_group(signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a new child (``preexec_fn``): receive ``sig`` when the test process dies.

    A test run that is killed (a CI timeout, ``kill -9``) runs no fixture teardown; without this
    its servers and workers would live on as orphans. Linux only; elsewhere a no-op.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_dir: Path,
    cwd: Path = REPO_ROOT,
    preexec_fn: Callable[[], None] = die_with_parent,
) -> ManagedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    handle = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    popen = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=preexec_fn,  # noqa: PLW1509 - only prctl/setuid, no locks taken
    )
    handle.close()
    return ManagedProcess(name, popen, log_path)


def wait_until(
    ready: Callable[[], bool],
    *,
    process: ManagedProcess | None = None,
    what: str,
    bound_seconds: float = START_BOUND_SECONDS,
    interval: float = 0.25,
) -> None:
    """Poll ``ready`` until true; fail with the process log when it dies or never gets there."""
    deadline = time.monotonic() + bound_seconds
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited before {what}:\n{process.log_tail()}")
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001, S110 - not ready yet
            pass
        time.sleep(interval)
    tail = process.log_tail() if process else ""
    raise RuntimeError(f"{what}: not ready after {bound_seconds:g} s\n{tail}")


def http_status(url: str, **kwargs: object) -> int:
    return httpx.get(url, timeout=5, **kwargs).status_code


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket LISTENing on ``port`` (read from /proc/net/tcp*)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, port_hex = local.partition(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
            else:
                raw = bytes.fromhex(address)
                swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, swapped))
    return found


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment with the repository importable and extras set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env
