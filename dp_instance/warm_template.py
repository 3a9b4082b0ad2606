"""The template process of the warm run launcher (``dp_instance.warm_launcher``).

Started by the launcher once per code location (its Python origin: interpreter, code pointer,
working directory), it imports Dagster and the platform, loads the code location (every flow
compiled, which fills the compiler's per-process cache) and only then listens on a Unix socket.
For each run the launcher sends, it forks a child that executes the run exactly as
``dagster api execute_run`` does (``dagster._cli.api._execute_run_command_body``), so the run's
events, logs, tags and retries are Dagster's own. The child pays for none of the imports: a run
starts in tens of milliseconds instead of seconds (docs/run-launcher.md).

What a child would otherwise pay for after the fork, the template does once: it imports what
runs import and a location load does not (the location module's ``prepare_run_worker``, for the
platform pandas, numpy, pyarrow and every node module), and it opens the Dagster instance of its
launcher (storage classes, schema checks) so that a child executes its run on a copy of it.

Fork safety: the template closes every database connection it opened (the location's load, the
instance's schema checks) before it listens, and starts no thread; ``fork_hazards`` lists what
would make a fork unsafe (a second thread, an open network socket): an opened instance that
leaves one is dropped (children then open their own), and the template refuses to start with
any left.

Stale code: the template remembers the modification time and size of every project module it
imported (and of the site-packages folders, which change when a package is installed). Before
each fork it looks again; when anything changed it answers ``stale`` and exits, and the launcher
starts a new template. Flow specs need no such check: a run worker rebuilds the flows at the
versions its run was planned with (``dp_assets/loading.py``), from the compiled cache when the
template compiled that version, else from the store.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dp_instance.warm_preload import close_database_pools, fork_hazards, open_instance, preload

log = logging.getLogger("dp.warm_template")

#: How long a child waits for the launcher's go-ahead (sent once the launcher has tagged the run
#: with the child's pid, so that run monitoring can always find the worker of a started run).
GO_AHEAD_SECONDS = 60
#: How long the template waits for a request line on an accepted connection.
REQUEST_SECONDS = 10
#: Exit code of a child that never got the go-ahead (the run was never touched).
NO_GO_AHEAD = 3


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22): with the
    pid it names one process, even after the pid is reused. None when there is no such process or
    it is a zombie (dead, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields follow the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def code_fingerprint() -> dict[str, tuple[int, int]]:
    """(mtime, size) of every imported module file outside site-packages, and of each
    site-packages folder (installing or removing a package changes its entries)."""
    site_dirs = sorted({p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)})
    files: dict[str, tuple[int, int]] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or any(path.startswith(site) for site in site_dirs) or path.startswith(sys.base_prefix):
            continue
        files[path] = _stat(path)
    for site in site_dirs:
        files[site] = _stat(site)
    return files


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


def changed_files(fingerprint: dict[str, tuple[int, int]]) -> list[str]:
    return [path for path, seen in fingerprint.items() if _stat(path) != seen]


class Template:
    def __init__(
        self, socket_path: str, max_workers: int, idle_seconds: float, opened: tuple[str, Any] | None = None
    ) -> None:
        self.socket_path = socket_path
        self.max_workers = max_workers
        self.idle_seconds = idle_seconds
        #: (serialized instance reference, the instance opened from it): a child whose run names
        #: the same reference executes on (its copy of) that instance.
        self.opened = opened
        self.children: set[int] = set()
        self.fingerprint: dict[str, tuple[int, int]] = {}
        self.listener: socket.socket | None = None
        self.inode: int | None = None

    def listen(self) -> None:
        """Bind to a temporary name and rename it into place: the socket appears only once the
        template is ready, so a launcher that can connect can send runs."""
        partial = f"{self.socket_path}.{os.getpid()}.tmp"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(partial)
        self.listener.listen(64)
        os.replace(partial, self.socket_path)
        self.inode = os.stat(self.socket_path).st_ino

    def still_mine(self) -> bool:
        try:
            return os.stat(self.socket_path).st_ino == self.inode
        except OSError:
            return False

    def reap(self) -> None:
        for pid in list(self.children):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)

    def serve(self, launcher_pid: int | None = None) -> None:
        """Answer requests until the socket is taken away, or until no run is going and the
        template has been idle too long or the process that started it (``launcher_pid``: a
        daemon, a webserver) is gone: a restarted launcher starts a template of its own."""
        assert self.listener is not None
        # The launcher's pid as it started us, not our parent now: a launcher that stopped while
        # we loaded has already left us to init, and that parent would never change.
        parent = launcher_pid or os.getppid()
        idle_since = time.monotonic()
        while True:
            self.reap()
            if self.children:
                idle_since = time.monotonic()
            elif os.getppid() != parent or time.monotonic() - idle_since > self.idle_seconds:
                return
            if not self.still_mine():
                return
            try:
                # Children are reaped at least this often (run monitoring also tells a zombie
                # from a live worker, ``process_start_time``).
                readable, _, _ = select.select([self.listener], [], [], 0.5)
            except InterruptedError:
                continue
            if readable:
                conn, _ = self.listener.accept()
                if self.handle(conn) == "stale":
                    return

    def handle(self, conn: socket.socket) -> str:
        conn.settimeout(REQUEST_SECONDS)
        try:
            request = json.loads(conn.makefile("r").readline() or "null")
            if not isinstance(request, dict) or "run_id" not in request:
                _send(conn, {"error": "malformed request"})
                return "bad"
            changed = changed_files(self.fingerprint)
            if changed:
                # Gone before the answer: the launcher's next attempt starts a new template.
                if self.still_mine():
                    os.unlink(self.socket_path)
                _send(conn, {"stale": f"code changed since the template loaded it: {', '.join(changed[:3])}"})
                return "stale"
            self.reap()
            if len(self.children) >= self.max_workers:
                _send(conn, {"full": len(self.children)})
                return "full"
            pid = os.fork()
            if pid == 0:
                self.run_child(conn, request)  # never returns
            self.children.add(pid)
            return "forked"
        except (OSError, ValueError) as exc:
            log.warning("warm template: a request failed: %s", exc)
            return "bad"
        finally:
            conn.close()

    def run_child(self, conn: socket.socket, request: dict[str, Any]) -> None:
        code = 1
        try:
            os.setsid()
            if self.listener is not None:
                self.listener.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            gc.unfreeze()
            pid = os.getpid()
            _send(conn, {"pid": pid, "start": process_start_time(pid), "template": os.getppid()})
            conn.settimeout(GO_AHEAD_SECONDS)
            if conn.makefile("r").readline().strip() != "go":
                os._exit(NO_GO_AHEAD)
            conn.close()
            ref = request["instance_ref"]
            opened = self.opened[1] if self.opened is not None and self.opened[0] == ref else None
            execute_run(request["run_id"], ref, bool(request.get("watch_cancel")), opened)
            code = 0
        except BaseException:  # noqa: BLE001 - the child must end here, never in the template's loop
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall((json.dumps(message) + "\n").encode())


def execute_run(run_id: str, serialized_instance_ref: str, watch_cancel: bool = False, opened: Any = None) -> None:
    """What ``dagster api execute_run`` does with its arguments, in this process; on ``opened``
    (the template's instance for this reference) when given, else on an instance opened now.

    ``watch_cancel``: also poll the run's status and interrupt the run when it becomes CANCELING
    (Dagster's own cancellation thread), for a ``terminate`` that comes from another machine or
    container, which cannot signal this process."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.execution.run_cancellation_thread import start_run_cancellation_thread
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), _instance(serialized_instance_ref, opened) as instance:
        watcher = start_run_cancellation_thread(instance, run_id) if watch_cancel else None
        try:
            _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)
        finally:
            if watcher is not None:
                watcher[1].set()
                watcher[0].join(timeout=5)


@contextmanager
def _instance(serialized_instance_ref: str, opened: Any) -> Iterator[Any]:
    from dagster._cli.utils import _inject_local_env_file, get_instance_for_cli
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import deserialize_value

    if opened is None:
        with get_instance_for_cli(instance_ref=deserialize_value(serialized_instance_ref, InstanceRef)) as instance:
            yield instance
        return
    with _inject_local_env_file(log), opened:
        yield opened


def _loaded(marker: Path) -> None:
    """Remove the launcher's note that this template is loading (``dp_instance.warm_pool``), when
    it still names this process: a template that exits after this was not one that failed to load."""
    try:
        if json.loads(marker.read_text()).get("pid") == os.getpid():
            marker.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dp_instance.warm_template")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--max-workers", type=int, required=True)
    parser.add_argument("--idle-seconds", type=float, required=True)
    parser.add_argument("--loading-marker", help="the launcher's note of this template loading; removed once ready")
    parser.add_argument("--launcher-pid", type=int, help="the process that started this template (see serve)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from dagster._core.instance.ref import InstanceRef
    from dagster._core.origin import RepositoryPythonOrigin
    from dagster._serdes import deserialize_value

    started = time.perf_counter()
    # The serialized origin and instance reference come on stdin (an instance file may hold a
    # password; argv is visible to every user).
    given = json.loads(sys.stdin.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    origin = deserialize_value(given["origin"], RepositoryPythonOrigin)
    instance_ref = deserialize_value(given["instance_ref"], InstanceRef)
    preload(origin, instance_ref)
    instance = open_instance(instance_ref)
    close_database_pools()
    gc.collect()
    hazards = fork_hazards()
    if hazards and instance is not None:
        log.warning("warm template: the opened instance leaves %s; children open their own", "; ".join(hazards))
        instance.dispose()
        instance = None
        close_database_pools()
        gc.collect()
        hazards = fork_hazards()
    if hazards:
        log.error("warm template: cannot fork safely after loading the location: %s", "; ".join(hazards))
        return 2
    opened = (given["instance_ref"], instance) if instance is not None else None
    template = Template(args.socket, args.max_workers, args.idle_seconds, opened)
    template.fingerprint = code_fingerprint()
    # Objects loaded so far are shared with the children copy-on-write; the collector would
    # touch (and so copy) every one of them in each child.
    gc.freeze()
    template.listen()
    if args.loading_marker:
        _loaded(Path(args.loading_marker))
    log.info(
        "warm template %s ready in %.1fs (%d modules) at %s",
        os.getpid(),
        time.perf_counter() - started,
        len(sys.modules),
        args.socket,
    )
    try:
        template.serve(args.launcher_pid)
    finally:
        if template.still_mine():
            os.unlink(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
