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

#: How long the launcher waits for a started template's answer to a request.
ANSWER_SECONDS = 30


class WarmStartError(Exception):
    """No warm worker could be started (the template would not start, or did not answer)."""


class PoolFull(Exception):
    """The template already runs its maximum number of run workers."""


@dataclass(frozen=True)
class Worker:
    pid: int
    start: str | None
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

    def socket_path(self, key: str) -> Path:
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
        """Fork a run worker for ``run_id`` from the location's template (started first when
        there is none, replaced when its code is stale). ``tag_worker`` records the worker on
        the run before the worker may start executing it."""
        self._reap_started()
        key = self.key(serialized_origin)
        path = self.socket_path(key)
        request = {"run_id": run_id, "instance_ref": serialized_instance_ref, "watch_cancel": self.watch_cancel}
        stale = ""
        for _attempt in range(3):
            try:
                conn = _connect(path)
            except OSError:
                self._start_template(key, path, origin, serialized_origin, serialized_instance_ref)
                conn = _connect(path)
            try:
                conn.settimeout(ANSWER_SECONDS)
                _send(conn, request)
                reader = conn.makefile("r")
                answer = json.loads(reader.readline() or "null")
                if not isinstance(answer, dict):
                    raise WarmStartError(f"the warm template at {path} gave no answer")
                if "stale" in answer:
                    stale = answer["stale"]
                    continue  # the template has gone; the next attempt starts a new one
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
        raise WarmStartError(f"the warm template kept finding its code stale: {stale}")

    def _start_template(self, key: str, path: Path, origin: Any, serialized_origin: str, instance_ref: str) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.state_dir / f"{key}.lock", timeout=self.start_timeout_seconds):
            try:
                _connect(path).close()
                return  # another process started it while this one waited for the lock
            except OSError:
                path.unlink(missing_ok=True)
            log_path = self.state_dir / f"{key}.log"
            working_directory = getattr(origin.code_pointer, "working_directory", None)
            argv = [
                origin.executable_path,
                "-m",
                "dp_instance.warm_template",
                "--socket",
                str(path),
                "--max-workers",
                str(self.max_workers),
                "--idle-seconds",
                str(self.idle_seconds),
            ]
            with open(log_path, "ab") as log:
                # Its own session: a signal to the starting process's group (Ctrl-C in a
                # terminal, a process manager stopping the daemon) must not kill running runs.
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=working_directory or None,
                    start_new_session=True,
                )
            self._started.append(process)
            # On stdin, not argv: an instance file may hold a password, and argv is public (ps).
            assert process.stdin is not None
            with process.stdin:
                process.stdin.write(json.dumps({"origin": serialized_origin, "instance_ref": instance_ref}).encode())
            deadline = time.monotonic() + self.start_timeout_seconds
            while not path.exists():
                if process.poll() is not None:
                    raise WarmStartError(
                        f"the warm template exited with code {process.returncode} while loading the code "
                        f"location: {_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    process.kill()
                    raise WarmStartError(
                        f"the warm template did not load the code location within {self.start_timeout_seconds:.0f} s"
                    )
                time.sleep(0.05)

    def _reap_started(self) -> None:
        """Collect the exit status of templates this process started that have exited."""
        self._started = [p for p in self._started if p.poll() is None]


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
