"""The launcher's side of the warm templates: find or start the template of a code location, and
ask it for a run worker (``dp_instance.warm_template`` is the other side).

One template per code location's Python origin and instance, shared by every process that
launches runs on the instance (the daemon, a webserver): its socket is at a path derived from
both, in a folder only this user can enter; a file lock makes sure one process starts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from dp_instance.warm_template import process_start_time

#: How long the launcher waits for a started template's answer to a request.
ANSWER_SECONDS = 30
#: How long a launch waits for another process deciding whether to start the same template.
LOCK_SECONDS = 30
#: After a template exited while loading, launches start none for this long (they say why).
RETRY_SECONDS = 60


class WarmStartError(Exception):
    """No warm worker could be started (the template would not start, or did not answer)."""


class TemplateStarting(WarmStartError):
    """No template is ready yet: one is loading (started now or earlier)."""


class PoolFull(Exception):
    """The template already runs its maximum number of run workers."""


@dataclass(frozen=True)
class Worker:
    pid: int
    start: str | None
    #: The template's pid; 0 for a worker started cold (``start_cold_worker``).
    template: int


@dataclass
class TemplatePool:
    """``state_dir`` holds the templates' logs and start locks (in ``DAGSTER_HOME``); sockets live
    under the temporary folder, whose short path fits the 107-byte limit of a socket name."""

    state_dir: Path
    max_workers: int
    idle_seconds: float
    start_timeout_seconds: float
    watch_cancel: bool = False

    def __post_init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []

    def key(self, serialized_origin: str) -> str:
        material = f"{self.state_dir.resolve()}\n{serialized_origin}"
        return hashlib.sha256(material.encode()).hexdigest()[:20]

    @staticmethod
    def socket_path(key: str) -> Path:
        folder = Path(tempfile.gettempdir()) / f"dp-warm-{os.getuid()}"
        folder.mkdir(mode=0o700, exist_ok=True)
        # The temporary folder is shared: a folder (or link) someone else made first at this name
        # would let them answer the launcher (which sends the instance reference, and kills the
        # pid a template names on terminate). Such a folder turns warm runs off, loudly.
        found = folder.lstat()
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
            raise WarmStartError(
                f"{folder} is not a folder only this user can enter (owner uid {found.st_uid}, mode "
                f"{stat.filemode(found.st_mode)}); remove it to turn warm runs back on"
            )
        return folder / f"{key}.sock"

    def start_worker(
        self,
        run_id: str,
        origin: Any,
        serialized_origin: str,
        serialized_instance_ref: str,
        tag_worker: Callable[[Worker], None],
    ) -> Worker:
        """Fork a run worker for ``run_id`` from the location's template. With no template ready
        (none yet, or the one found had stale code) this starts one and raises
        ``TemplateStarting`` at once: the caller starts the run another way rather than wait
        for the template's load. ``tag_worker`` records the worker on the run before the worker
        may start executing it."""
        self._reap_started()
        key = self.key(serialized_origin)
        path = self.socket_path(key)
        request = {"run_id": run_id, "instance_ref": serialized_instance_ref, "watch_cancel": self.watch_cancel}
        try:
            conn = _connect(path)
        except OSError:
            starting = self._start_template(key, path, origin, serialized_origin, serialized_instance_ref)
            raise TemplateStarting(starting) from None
        try:
            conn.settimeout(ANSWER_SECONDS)
            _send(conn, request)
            answer = json.loads(conn.makefile("r").readline() or "null")
            if not isinstance(answer, dict):
                raise WarmStartError(f"the warm template at {path} gave no answer")
            if "stale" in answer:
                # The template has gone (its socket with it); a new one loads the current code.
                started = self._start_template(key, path, origin, serialized_origin, serialized_instance_ref)
                raise TemplateStarting(f"{answer['stale']}; {started}")
            if "full" in answer:
                raise PoolFull(f"all {self.max_workers} warm run workers are busy")
            if "pid" not in answer:
                raise WarmStartError(f"the warm template refused the run: {answer.get('error')}")
            worker = Worker(int(answer["pid"]), answer.get("start"), int(answer.get("template", 0)))
            tag_worker(worker)
            conn.sendall(b"go\n")
            return worker
        except (OSError, ValueError) as exc:
            raise WarmStartError(f"the warm template at {path} failed: {exc}") from exc
        finally:
            conn.close()

    def _start_template(self, key: str, path: Path, origin: Any, serialized_origin: str, instance_ref: str) -> str:
        """Start the location's template unless one is loading already, without waiting for it
        to load; say what was found or done. The lock is held only while deciding and spawning:
        one process (the daemon, a webserver) starts a template; the others see it loading."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.state_dir / f"{key}.log"
        marker = self.state_dir / f"{key}.starting"
        with FileLock(self.state_dir / f"{key}.lock", timeout=LOCK_SECONDS):
            if path.exists() and _answers(path):
                return "a warm template has just become ready"
            killed = ""
            loading = _read_marker(marker)
            if loading is not None:
                age = time.time() - float(loading.get("at", 0))
                alive = process_start_time(int(loading["pid"])) == loading.get("start")
                if alive and age <= self.start_timeout_seconds:
                    return f"the warm template (pid {loading['pid']}) is loading the code location ({age:.0f} s so far)"
                if alive:
                    _kill(int(loading["pid"]))
                    killed = f"the warm template did not load the code location within {age:.0f} s; "
                elif age < RETRY_SECONDS:
                    # Do not start a template per run when the location cannot be loaded.
                    return f"the last warm template exited while loading the code location: {_tail(log_path)}"
            path.unlink(missing_ok=True)
            process = self._spawn(path, origin, serialized_origin, instance_ref, log_path, marker)
            marker.write_text(
                json.dumps({"pid": process.pid, "start": process_start_time(process.pid), "at": time.time()})
            )
        return f"{killed}started a warm template (pid {process.pid}); runs start warm once it is ready"

    def _spawn(
        self, path: Path, origin: Any, serialized_origin: str, instance_ref: str, log_path: Path, marker: Path
    ) -> subprocess.Popen[bytes]:
        argv = ["dp_instance.warm_template", "--socket", str(path), "--max-workers", str(self.max_workers)]
        argv += ["--idle-seconds", str(self.idle_seconds), "--loading-marker", str(marker)]
        argv += ["--launcher-pid", str(os.getpid())]
        process = self._start_module(origin, argv, log_path)
        # On stdin, not argv: an instance file may hold a password, and argv is public (ps).
        assert process.stdin is not None
        with process.stdin:
            process.stdin.write(json.dumps({"origin": serialized_origin, "instance_ref": instance_ref}).encode())
        return process

    def _start_module(self, origin: Any, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        """``python -m ARGV`` with the location's interpreter, in its working directory, reading
        stdin from this process and writing to ``log_path``."""
        working_directory = getattr(origin.code_pointer, "working_directory", None)
        with open(log_path, "ab") as log:
            # Its own session: a signal to the starting process's group (Ctrl-C in a terminal,
            # a process manager stopping the daemon) must not kill running runs.
            process = subprocess.Popen(
                [origin.executable_path, "-m", *argv],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=working_directory or None,
                start_new_session=True,
            )
        self._started.append(process)
        return process

    def start_cold_worker(
        self, run_id: str, origin: Any, serialized_instance_ref: str, tag_worker: Callable[[Worker], None]
    ) -> Worker:
        """Start a run worker of its own for ``run_id`` (``dp_instance.cold_worker``) and return
        at once: it imports and loads the location itself. ``tag_worker`` records it on the run
        before it is sent the run."""
        self._reap_started()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        process = self._start_module(origin, ["dp_instance.cold_worker"], self.state_dir / "cold-workers.log")
        assert process.stdin is not None
        with process.stdin:  # closed without a request (tagging failed): the worker exits, run untouched
            worker = Worker(process.pid, process_start_time(process.pid), 0)
            tag_worker(worker)
            request = {"run_id": run_id, "instance_ref": serialized_instance_ref, "watch_cancel": self.watch_cancel}
            process.stdin.write(json.dumps(request).encode())
        return worker

    def _reap_started(self) -> None:
        """Collect the exit status of processes this one started (templates, cold workers) that
        have exited."""
        self._started = [p for p in self._started if p.poll() is None]


def _answers(path: Path) -> bool:
    try:
        _connect(path).close()
    except OSError:
        return False
    return True


def _read_marker(marker: Path) -> dict[str, Any] | None:
    """The template started for a key and still loading: ``{"pid", "start", "at"}``; None when
    there is none (a template removes it once it is ready)."""
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "pid" in found else None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _connect(path: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        raise
    return conn


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall((json.dumps(message) + "\n").encode())


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
