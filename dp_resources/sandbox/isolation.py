"""The process walls around a snippet: resource limits, no files, no network, no environment.

Two steps, both run inside the child:

``apply_limits`` (before the payload is read):
  ``RLIMIT_CPU`` (soft = the CPU already spent + ``cpu_seconds``, then ``SIGXCPU``; hard one second
  later, then ``SIGKILL``), ``RLIMIT_AS`` (the address space now + ``memory_mb``, so the limit means
  the same whatever pandas itself maps), ``RLIMIT_FSIZE`` 0, ``RLIMIT_CORE`` 0, a wall-clock
  ``SIGALRM`` backstop in case the parent is gone, and death with the parent.

``lockdown`` (after the payload is read and every module is imported), by layer:
  ``namespaces``: a new user namespace of its own and a new network namespace (only a downed
  loopback: no route anywhere), then ``chroot`` into the empty per-snippet directory;
  ``rlimits``: every fd closed but the result pipe and stderr, ``RLIMIT_NOFILE`` set so no new
  fd (file, socket, pipe) can be opened, ``RLIMIT_NPROC`` 0 so no process or thread can start;
  ``user``: when started as root, all groups dropped and the uid/gid set to one of its own
  (``nobody`` inside its user namespace, a per-process uid outside it), so the hard limits can
  no longer be raised and no other process, not even another snippet, is its to signal;
  ``seccomp``: the system-call filter of ``syscalls.py``, loaded last;
  always: its own session (process group), ``no_new_privs``, not dumpable, environment emptied.

Every step that the host does not permit (no user namespaces, no libseccomp, say) is skipped
and left out of the returned layer list. ``enabled`` switches whole layers off for the tests
that show each one holds on its own; production always applies every layer.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import signal
from collections.abc import Collection
from typing import Any

from dp_resources.sandbox import syscalls

# The walls a snippet runs inside; the policy is applied in the child, the rest here.
LAYERS: tuple[str, ...] = ("policy", "rlimits", "seccomp", "namespaces", "user")

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
NOBODY = 65534
# Outside uid of a snippet run as root: ``UID_BASE + pid`` is unique among live processes, so no
# two snippets share a uid (a signal needs the same uid or a capability neither has).
UID_BASE = 1_000_000_000
# Exit status the child uses when its SIGXCPU handler runs; the parent maps it to a timeout.
EXIT_CPU_LIMIT = 87

_libc: Any = None


def _libc_call(name: str, *args: int) -> bool:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return getattr(_libc, name)(*args) == 0


def address_space_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _on_cpu_limit(signum: int, frame: Any) -> None:
    os.write(2, b"sandbox: CPU time limit reached\n")
    os._exit(EXIT_CPU_LIMIT)


def apply_limits(cpu_seconds: float, memory_mb: int, wall_seconds: float) -> None:
    _libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    soft = max(1, math.ceil(spent + cpu_seconds))
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
    limit = address_space_bytes() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Backstop only: the parent kills the process group at wall_seconds.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, wall_seconds + 5)


def snippet_uid_of(pid: int) -> int:
    return UID_BASE + pid


def _write_id_maps(pid: int, outside_uid: int) -> bool:
    """Map ``nobody`` inside ``pid``'s new user namespace to ``outside_uid``."""
    try:
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as id_map:
                id_map.write(f"{NOBODY} {outside_uid} 1\n")
    except OSError:
        return False
    return True


def _unshare_user_as_root() -> bool:
    """Enter a new user + network namespace whose ``nobody`` is this process's own uid outside.

    Only a process that stays in the parent namespace with ``CAP_SETUID`` may map another uid
    than its own, so a short-lived helper (forked before the unshare, still root outside) writes
    the maps once the child has moved.
    """
    me = os.getpid()
    ready_r, ready_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        status = 1
        try:
            os.close(ready_w)
            if os.read(ready_r, 1) == b"1":
                status = 0 if _write_id_maps(me, snippet_uid_of(me)) else 1
        finally:
            os._exit(status)
    os.close(ready_r)
    moved = _libc_call("unshare", CLONE_NEWUSER | CLONE_NEWNET)
    os.write(ready_w, b"1" if moved else b"0")
    os.close(ready_w)
    _, status = os.waitpid(helper, 0)
    if moved and status != 0:
        # Unmapped, nothing inside could change uid: better no snippet than a half wall.
        raise OSError("could not map the sandbox's user namespace")
    return moved


def _enter_namespaces(own_user: bool) -> list[str]:
    """A user namespace of its own where the host allows one, and a network namespace."""
    if os.geteuid() != 0:
        if _libc_call("unshare", CLONE_NEWUSER | CLONE_NEWNET):
            return ["userns", "netns"]
        return []
    if own_user and _unshare_user_as_root():
        return ["userns", "netns"]
    if _libc_call("unshare", CLONE_NEWNET):
        return ["netns"]
    return []


def _enter_network_namespace() -> str | None:
    """A network namespace alone (the test that shows it blocks loopback on its own uses it)."""
    if os.geteuid() == 0 and _libc_call("unshare", CLONE_NEWNET):
        return "netns"
    if os.geteuid() != 0 and _libc_call("unshare", CLONE_NEWUSER | CLONE_NEWNET):
        return "userns+netns"
    return None


def _enter_root(workdir: str) -> str | None:
    os.chdir(workdir)
    try:
        os.chroot(workdir)
    except OSError:
        return None
    os.chdir("/")
    return "chroot"


def _drop_privileges(started_as_root: bool, in_user_namespace: bool) -> str | None:
    # Inside a fresh user namespace ``geteuid`` shows the overflow uid even for root outside,
    # so the caller says what the process was before.
    if not started_as_root:
        return None
    # Inside its own user namespace ``nobody`` is mapped to the per-snippet uid outside; without
    # one the process takes that uid directly. Either way no other process has its uid.
    target = NOBODY if in_user_namespace else snippet_uid_of(os.getpid())
    os.setgroups([])
    os.setresgid(target, target, target)
    os.setresuid(target, target, target)
    return "nobody"


def lockdown(result_fd: int, workdir: str | None, enabled: Collection[str] = LAYERS) -> tuple[int, list[str]]:
    """Close the child off; returns the result pipe's new fd (0) and the layers applied.

    Expects fd 2 to be the stderr pipe and ``result_fd`` the result pipe. Afterwards fd 0 is
    the result pipe, fds 1 and 2 the stderr pipe, and nothing else can be opened. ``enabled``
    names the layers of ``LAYERS`` to apply (all of them outside tests).
    """
    layers: list[str] = []
    started_as_root = os.geteuid() == 0
    with contextlib.suppress(OSError):
        os.setsid()  # the launchers already made it a session leader; this is the backstop
    syscall_filter = syscalls.build_filter(os.getpid()) if "seccomp" in enabled else None
    if "namespaces" in enabled:
        layers += _enter_namespaces(own_user="user" in enabled)
        if workdir:
            root = _enter_root(workdir)
            if root:
                layers.append(root)
    if result_fd != 0:
        os.dup2(result_fd, 0)
        os.close(result_fd)
    os.dup2(2, 1)
    os.closerange(3, 1 << 20)
    if "rlimits" in enabled:
        resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))
        layers.append("nofile")
    if "user" in enabled:
        dropped = _drop_privileges(started_as_root, "userns" in layers)
        if dropped:
            layers.append(dropped)
    if "rlimits" in enabled:
        # No new processes or threads: nothing in the child needs one after this point, and a
        # fork (from code that got past the policy) could otherwise leave the process group.
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        layers.append("noproc")
    if _libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        layers.append("no_new_privs")
    _libc_call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)
    os.environ.clear()
    layers.append("empty_env")
    # Last: the filter forbids the unshare, chroot and uid changes above.
    if syscall_filter is not None:
        syscalls.install(syscall_filter)
        layers.append("seccomp")
    return 0, layers
