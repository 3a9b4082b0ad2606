"""Real processes for tests: start one in its own process group, wait until it is ready, stop it.

Every process gets its own session (process group), so a teardown or a fault test can signal the
whole tree it spawned (a webserver's code server, a Celery worker's pool children) and nothing
else; and a parent-death signal, so that a killed test run leaves no server behind. Waits poll
with generous bounds: a bound guards against a hang, it never asserts speed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
#: The console scripts of this interpreter's environment (dagster, dagster-webserver, ...).
BIN = Path(PYTHON).parent
#: How long a process may take to become ready (a busy 2-core machine starts Dagster slowly).
START_BOUND_SECONDS = 120.0
#: How long a test waits for a condition (a run to finish, a sensor to tick) by default.
WAIT_BOUND_SECONDS = 240.0
T = TypeVar("T")


def free_port() -> int:
    """A free TCP port on loopback for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 1) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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


@dataclass
class ManagedProcess:
    """A process started by :func:`start_process`: its own process group, output in a log file."""

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
        """Send ``sig`` to the whole process group (the process and every child it started)."""
        signal_group(self.popen, sig)

    def kill(self) -> None:
        """``kill -9`` the process group (a crash, as a fault test wants it), then reap it."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(30)

    def stop(self, grace_seconds: float = 15) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``grace_seconds``."""
        stop_groups([self.popen], grace_seconds)


def signal_group(popen: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process group ``popen`` leads (started with ``start_new_session``)."""
    try:
        os.killpg(popen.pid, sig)
    except ProcessLookupError:
        pass


def popen_in_session(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdout: IO[Any] | int,
    preexec_fn: Callable[[], None] = die_with_parent,
) -> subprocess.Popen:
    """Start ``argv`` as the leader of a new session, stderr with its stdout, no stdin."""
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=preexec_fn,  # only prctl/setuid in the child: no lock it could deadlock on
    )


def stop_groups(popens: Iterable[subprocess.Popen], grace_seconds: float = 10) -> None:
    """SIGTERM every process group at once, then SIGKILL every group after one shared grace
    (stopping them one by one would add up the graces of a stack of processes). Children may
    outlive their leader (a ``dagster api grpc`` code server ignores SIGTERM, pool processes):
    the SIGKILL goes to the group even when the leader has exited."""
    popens = list(popens)
    for popen in popens:
        if popen.poll() is None:
            signal_group(popen, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for popen in popens:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(max(0.1, deadline - time.monotonic()))
    for popen in popens:
        signal_group(popen, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(5)


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_dir: Path,
    cwd: Path = REPO_ROOT,
    preexec_fn: Callable[[], None] = die_with_parent,
) -> ManagedProcess:
    """Start ``argv`` in a new session, its output appended to ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    handle = open(log_path, "ab")  # noqa: SIM115 - the child keeps its own copy of the descriptor
    popen = popen_in_session(argv, env=env, cwd=cwd, stdout=handle, preexec_fn=preexec_fn)
    handle.close()
    return ManagedProcess(name, popen, log_path)


def stop_all(processes: Iterable[ManagedProcess], grace_seconds: float = 10) -> None:
    """:func:`stop_groups` for processes started by :func:`start_process`."""
    stop_groups([process.popen for process in processes], grace_seconds)


class NotReady(RuntimeError):
    """A wait ran out of time, or the process waited for exited first."""


def wait_for(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float = WAIT_BOUND_SECONDS,
    every: float = 0.5,
    process: ManagedProcess | None = None,
    on_timeout: Callable[[], str] | None = None,
    not_yet: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``probe`` until it returns something truthy, and return that.

    Fails with :class:`NotReady` naming ``what`` after ``timeout`` seconds, or at once when
    ``process`` exits; the message ends with ``on_timeout()`` (or the process's log). An exception of
    a type in ``not_yet`` counts as "not yet"; any other exception of the probe is raised at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and not process.alive():
            raise NotReady(f"{process.name} exited before {what}:\n{process.log_tail()}")
        try:
            value = probe()
        except not_yet:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tail = on_timeout() if on_timeout else (process.log_tail() if process else "")
            raise NotReady(f"{what}: not after {timeout:g} s\n{tail}")
        time.sleep(every)


def wait_until(
    ready: Callable[[], object],
    *,
    what: str,
    process: ManagedProcess | None = None,
    bound_seconds: float = START_BOUND_SECONDS,
    interval: float = 0.25,
) -> None:
    """Wait for a process that is starting: any error of ``ready`` (connection refused, a
    half-started server's odd answer) means "not yet"; the process exiting fails at once."""
    wait_for(what, ready, timeout=bound_seconds, every=interval, process=process, not_yet=(Exception,))


def http_status(url: str, **kwargs: object) -> int:
    import httpx

    return httpx.get(url, timeout=5, **kwargs).status_code


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket LISTENing on ``port`` (read from /proc/net/tcp*)."""
    found: set[str] = set()
    for fields in _tcp_table_rows():
        local, state = fields[1], fields[3]
        address, _, port_hex = local.partition(":")
        if state != "0A" or int(port_hex, 16) != port:
            continue
        if len(address) == 8:
            found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
        else:
            raw = bytes.fromhex(address)
            swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            found.add(socket.inet_ntop(socket.AF_INET6, swapped))
    return found


def _tcp_table_rows() -> Iterator[list[str]]:
    """The fields of each row of the kernel's TCP tables (IPv4, then IPv6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            yield line.split()


def process_tree(root_pid: int) -> set[int]:
    """``root_pid`` and every live descendant (read from /proc; sessions do not matter)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo += children.get(pid, [])
    return {pid for pid in found if pid_alive(pid)}


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment with the repository importable and extras set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def tcp_ports_of(pids: Iterable[int]) -> set[int]:
    """The local ports of the TCP connections the processes ``pids`` hold open (read from /proc:
    each process's socket inodes, looked up in the kernel's TCP tables)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return {int(fields[1].rsplit(":", 1)[1], 16) for fields in _tcp_table_rows() if fields[9] in inodes}
