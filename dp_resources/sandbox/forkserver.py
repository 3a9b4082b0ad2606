"""A preloaded server that forks one sandbox child per snippet.

Starting Python and importing pandas costs about a second; forking a process that has already
done so costs milliseconds. The server is started with the same isolated ``python -I`` command
and minimal environment as a plain child, imports and warms up everything (``preload``), and then
only ever forks: it never reads snippet code, so every child starts from the same pristine state
and nothing one snippet does can reach the next.

Protocol over a ``SOCK_SEQPACKET`` socket pair (one JSON message per packet):

- ``spawn`` + three fds (payload read end, stderr write end, result write end) -> ``{"pid"}``;
  the child is a session leader and is not reaped until asked, so its pid cannot be recycled
  while the parent may still kill its group.
- ``reap`` ``{"pid"}`` -> ``{"status", "cpu"}`` (the parent asks after the child's pidfd showed
  it has exited).

The server exits when its socket closes, which includes its parent dying (a parent-death signal
would also fire when merely the *thread* that started it ends). Its children die with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from typing import Any

from dp_resources.sandbox.launcher import (
    CHILD_ENV,
    ChildHandle,
    child_pipes,
    open_pidfd,
    python_argv,
)

_MAX_MESSAGE = 65536
READY_TIMEOUT_S = 180.0


class ForkServerError(RuntimeError):
    pass


# -- server side (runs in the fork-server process) ----------------------------------------------


def _reply(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(json.dumps(message).encode())


def _child_after_fork(sock: socket.socket, spec: dict[str, Any], fds: list[int]) -> None:
    from dp_resources.sandbox import child

    try:
        sock.close()
        payload_fd, err_fd, result_fd = fds
        os.dup2(payload_fd, 0)
        os.dup2(err_fd, 1)
        os.dup2(err_fd, 2)
        os.close(payload_fd)
        os.close(err_fd)
        os.setsid()
        child.serve(spec, result_fd)
    finally:
        os._exit(1)


def serve_forever(control_fd: int, extra_modules: list[str]) -> None:
    from dp_resources.sandbox.preload import preload

    sock = socket.socket(fileno=control_fd)
    preload()
    for name in extra_modules:
        # A module that fails here is reported by each child, with the snippet that needed it.
        with contextlib.suppress(Exception):
            preload([name])
    _reply(sock, {"ready": True, "pid": os.getpid()})
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 3)
        except OSError:
            break
        if not message:
            break
        request = json.loads(message)
        op = request.get("op")
        if op == "spawn":
            if len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                _reply(sock, {"error": "spawn needs three fds"})
                continue
            pid = os.fork()
            if pid == 0:
                _child_after_fork(sock, request["spec"], fds)
            for fd in fds:
                os.close(fd)
            _reply(sock, {"pid": pid})
        elif op == "reap":
            try:
                _, status, usage = os.wait4(int(request["pid"]), 0)
                _reply(sock, {"status": status, "cpu": usage.ru_utime + usage.ru_stime})
            except ChildProcessError as exc:
                _reply(sock, {"error": str(exc)})
        else:
            _reply(sock, {"error": f"unknown op {op!r}"})
    os._exit(0)


# -- client side (runs in the parent) ------------------------------------------------------------


class ForkServerLauncher:
    """Starts the fork server on first use, restarts it if it died; thread-safe."""

    def __init__(self, preload_modules: tuple[str, ...] = ()) -> None:
        self._preload_modules = list(preload_modules)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._owner_pid = os.getpid()

    def _forget_if_forked(self) -> None:
        """After a fork of the parent, the server belongs to the original process: start anew."""
        if self._owner_pid != os.getpid():
            if self._sock is not None:
                self._sock.close()  # only this process's copy of the descriptor
            self._sock = None
            self._proc = None
            self._owner_pid = os.getpid()

    def _start_server(self) -> None:
        parent_sock, server_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                python_argv(
                    "--fork-server",
                    str(server_sock.fileno()),
                    json.dumps(self._preload_modules),
                ),
                pass_fds=(server_sock.fileno(),),
                env=CHILD_ENV,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            server_sock.close()
        parent_sock.settimeout(READY_TIMEOUT_S)
        self._sock = parent_sock
        try:
            ready = self._receive()
        except (OSError, ForkServerError) as exc:
            self._shutdown()
            raise ForkServerError(f"the sandbox fork server did not start: {exc}") from exc
        if not ready.get("ready"):
            self._shutdown()
            raise ForkServerError(f"the sandbox fork server did not start: {ready}")
        parent_sock.settimeout(30.0)

    def _receive(self) -> dict[str, Any]:
        assert self._sock is not None
        data = self._sock.recv(_MAX_MESSAGE)
        if not data:
            raise ForkServerError("the sandbox fork server closed its socket")
        reply = json.loads(data)
        if "error" in reply:
            raise ForkServerError(reply["error"])
        return reply

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._sock is not None

    def start(self, spec: dict[str, Any]) -> ChildHandle:
        (payload_r, payload_w), (result_r, result_w), (err_r, err_w) = child_pipes()
        try:
            with self._lock:
                self._forget_if_forked()
                for attempt in (1, 2):
                    if not self._alive():
                        self._shutdown()
                        self._start_server()
                    assert self._sock is not None
                    try:
                        socket.send_fds(
                            self._sock,
                            [json.dumps({"op": "spawn", "spec": spec}).encode()],
                            [payload_r, err_w, result_w],
                        )
                        pid = int(self._receive()["pid"])
                        break
                    except (OSError, ForkServerError):
                        self._shutdown()
                        if attempt == 2:
                            raise
        except BaseException:
            for fd in (payload_w, result_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (payload_r, result_w, err_w):
                os.close(fd)
        return ChildHandle(pid, payload_w, result_r, err_r, self, open_pidfd(pid))

    def reap(self, child: ChildHandle) -> tuple[int | None, float | None]:
        with self._lock:
            if not self._alive():
                return None, None
            assert self._sock is not None
            try:
                self._sock.send(json.dumps({"op": "reap", "pid": child.pid}).encode())
                reply = self._receive()
            except (OSError, ForkServerError):
                self._shutdown()
                return None, None
        return int(reply["status"]), float(reply["cpu"])

    def _shutdown(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._forget_if_forked()
            self._shutdown()
