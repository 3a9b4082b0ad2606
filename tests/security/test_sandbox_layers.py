"""X4 per layer: each protection layer, alone, stops what docs/sandbox.md says it stops.

Every test runs a real child with only one layer switched on (``Sandbox(layers=...)``; with the
policy off the snippet is unrestricted Python, i.e. code that already got past RestrictedPython)
and then the same attack with that layer off too, which must succeed: so each test fails if its
layer is removed or stops working, and proves the attack is real.

The seccomp cases are the "no namespaces on this host" path the issue found open: with
namespaces, chroot, the uid change and the fd limit all off, the filter alone refuses reading
``/etc/passwd``, a loopback connection and a signal to another snippet.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dp_resources.sandbox import Sandbox, SandboxError, SandboxPolicyError, SandboxResult
from dp_resources.sandbox.isolation import LAYERS

ROOT = os.geteuid() == 0

READ_PASSWD = "result = open('/etc/passwd').read()[:5]"
CONNECT = "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\nresult = s.recv(4).decode()"
READ_FILE = "result = open({path!r}).read()"
# RestrictedPython alone (every process wall off): the escape, functools copying
# attributes into a module; unrestricted, it simply works.
COPY_INTO_MODULE = (
    "import functools, math\n"
    "class Holder:\n"
    "    pass\n"
    "h = Holder()\n"
    "h.pi = 3\n"
    "functools.update_wrapper(math, h, assigned=('pi',), updated=())\n"
    "result = math.pi"
)


def _run(layers: tuple[str, ...], code: str) -> SandboxResult:
    with Sandbox(layers=layers) as sandbox:
        return sandbox.run(code, {})


def _refused_alone_and_open_without(layer: str, code: str, expected: Any) -> None:
    with pytest.raises(SandboxPolicyError):
        _run((layer,), code)
    assert _run((), code).value == expected, f"{layer}: the attack should work with no layer"


@pytest.mark.parametrize(
    "layer", [pytest.param(layer, id=f"X4-layer-{layer}") for layer in ("policy", "rlimits", "seccomp", "namespaces")]
)
def test_X4_layer_alone_stops_reading_files(layer: str) -> None:
    """X4: each of policy, fd limit, seccomp and chroot alone keeps ``/etc/passwd`` unread."""
    if layer == "namespaces" and not ROOT:
        pytest.skip("chroot needs root or a user namespace; checked in test_sandbox_isolation")
    _refused_alone_and_open_without(layer, READ_PASSWD, "root:")


@pytest.mark.parametrize(
    "layer", [pytest.param(layer, id=f"X4-layer-{layer}") for layer in ("policy", "rlimits", "seccomp", "namespaces")]
)
def test_X4_layer_alone_stops_loopback(layer: str, loopback_server: Any) -> None:
    """X4: each of policy, fd limit, seccomp and the network namespace alone reaches no socket."""
    code = CONNECT.format(port=loopback_server.port)
    with pytest.raises(SandboxPolicyError):
        _run((layer,), code)
    assert loopback_server.connections == 0
    assert _run((), code).value == "HTTP"
    assert loopback_server.connections == 1


# Issue 16's finding on a host without namespaces: the fd limit alone is walked around by
# closing one of the child's own fds first.
FREE_AN_FD = "import os\nos.close(1)\n"
NO_NAMESPACE_HOST = ("rlimits", "user")


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(READ_PASSWD, id="X4-no-namespaces-read-passwd"),
        pytest.param(CONNECT, id="X4-no-namespaces-connect-loopback"),
    ],
)
def test_X4_seccomp_holds_where_namespaces_are_unavailable(attack: str, loopback_server: Any) -> None:
    """X4: without namespaces, code past the policy that frees an fd is still refused, by seccomp.

    Without seccomp (the sandbox before issue 16) the same code reads ``/etc/passwd`` and
    connects to loopback: the control below.
    """
    code = FREE_AN_FD + attack.format(port=loopback_server.port)
    with pytest.raises(SandboxPolicyError, match="Operation not permitted"):
        _run((*NO_NAMESPACE_HOST, "seccomp"), code)
    assert loopback_server.connections == 0
    assert _run(NO_NAMESPACE_HOST, code).value in ("root:", "HTTP")


SYSCALL_PROBES = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)

def outcome(call):
    try:
        call()
        return "allowed"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, exc.errno)

def raw(name, *args):
    def call():
        if getattr(libc, name)(*args) == -1:
            raise OSError(ctypes.get_errno(), name)
    return call

def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

result = {
    "fork": outcome(fork),
    "exec": outcome(lambda: os.execv("/nonexistent-program", ["x"])),
    "unshare": outcome(raw("unshare", 0x40000000)),
    "memfd_create": outcome(raw("memfd_create", b"x", 0)),
    "setuid": outcome(lambda: os.setuid(os.getuid())),
    "prctl": outcome(raw("prctl", 4, 1, 0, 0, 0)),
}
"""


@pytest.mark.skipif(not ROOT, reason="the control needs root to unshare and setuid")
def test_X4_seccomp_alone_refuses_process_and_isolation_calls() -> None:
    """X4: seccomp alone refuses new processes, programs, namespaces, uid changes and prctl."""
    refused = _run(("seccomp",), SYSCALL_PROBES).value
    assert set(refused.values()) == {"EPERM"}, refused
    control = _run((), SYSCALL_PROBES).value
    assert control == {
        "fork": "allowed",
        "exec": "ENOENT",
        "unshare": "allowed",
        "memfd_create": "allowed",
        "setuid": "allowed",
        "prctl": "allowed",
    }


def test_X1_policy_alone_stops_attribute_copying() -> None:
    """X1: the policy alone refuses functools copying an attribute into a module (issue 16)."""
    _refused_alone_and_open_without("policy", COPY_INTO_MODULE, 3)


@pytest.mark.skipif(not ROOT, reason="only a root parent changes the child's uid")
def test_X4_layer_user_alone_stops_reading_root_files(tmp_path: Path) -> None:
    """X4: the uid change alone keeps a root-only file unread."""
    secret = tmp_path / "secret"
    secret.write_text("only root")
    secret.chmod(0o600)
    _refused_alone_and_open_without("user", READ_FILE.format(path=str(secret)), "only root")


def test_X4_production_sandbox_applies_every_layer(sandbox: Sandbox) -> None:
    """X4: the default sandbox reports every layer the host permits, seccomp included."""
    layers = set(sandbox.run("result = 1", {}).layers)
    assert {"policy", "nofile", "noproc", "seccomp", "empty_env"} <= layers
    if ROOT:
        assert {"userns", "netns", "chroot", "nobody"} <= layers


def test_X4_layers_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown sandbox layers"):
        Sandbox(layers=("policy", "selinux"))
    assert set(LAYERS) == {"policy", "rlimits", "seccomp", "namespaces", "user"}


# -- one snippet cannot signal another ---------------------------------------------------------

# About two seconds of CPU: long enough for the attacker to strike.
BUSY = "total = 0\nfor i in range(5_000_000):\n    total = total + i\nresult = total"
BUSY_RESULT = sum(range(5_000_000))
KILL = (
    "import os, signal\n"
    "outcome = []\n"
    "for send in (lambda: os.kill({pid}, signal.SIGKILL), lambda: os.killpg({pid}, signal.SIGKILL)):\n"
    "    try:\n"
    "        send()\n"
    "        outcome.append('sent')\n"
    "    except OSError as exc:\n"
    "        outcome.append(type(exc).__name__)\n"
    "result = outcome"
)


@pytest.fixture
def victim(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, list[int]]]:
    """A production sandbox (every layer) whose children's pids the test can see."""
    with Sandbox(fork_server=True) as sandbox:
        sandbox.run("result = 1", {})  # the server is warm: a child locks down in milliseconds
        pids: list[int] = []
        launcher = sandbox._launcher
        start = launcher.start

        def recording_start(spec: dict[str, Any]) -> Any:
            child = start(spec)
            pids.append(child.pid)
            return child

        monkeypatch.setattr(launcher, "start", recording_start)
        yield sandbox, pids


def _attack_victim(victim: tuple[Sandbox, list[int]], attacker_layers: tuple[str, ...]) -> tuple[Any, Any]:
    sandbox, pids = victim
    outcome: dict[str, Any] = {}

    def run_victim() -> None:
        try:
            outcome["victim"] = sandbox.run(BUSY, {}).value
        except SandboxError as exc:
            outcome["victim"] = exc

    with Sandbox(fork_server=True, layers=attacker_layers) as attacker:
        attacker.run("result = 1", {})
        thread = threading.Thread(target=run_victim)
        thread.start()
        deadline = time.monotonic() + 10
        while not pids and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the victim is locked down and busy
        try:
            attack = attacker.run(KILL.format(pid=pids[-1]), {}).value
        finally:
            thread.join(timeout=60)
    return attack, outcome["victim"]


@pytest.mark.parametrize(
    "layers",
    [
        pytest.param(tuple(layer for layer in LAYERS if layer != "policy"), id="X4-kill-all-walls"),
        pytest.param(("seccomp",), id="X4-kill-seccomp-alone"),
        pytest.param(("user",), id="X4-kill-user-alone", marks=pytest.mark.skipif(not ROOT, reason="root only")),
    ],
)
def test_X4_snippet_cannot_signal_another(victim: tuple[Sandbox, list[int]], layers: tuple[str, ...]) -> None:
    """X4: a snippet past the policy, given another snippet's pid, cannot kill it or its group."""
    attack, victim_result = _attack_victim(victim, layers)
    assert attack == ["PermissionError", "PermissionError"]
    assert victim_result == BUSY_RESULT


def test_X4_signal_control_without_layers_kills(victim: tuple[Sandbox, list[int]]) -> None:
    """X4 control: with no layer the same attack does kill the other snippet (the pid is right)."""
    attack, victim_result = _attack_victim(victim, ())
    assert attack[0] == "sent"
    assert isinstance(victim_result, SandboxError)
