"""The process walls around a snippet: resource limits, no files, no network, no environment.

Two steps, both run inside the child:

``apply_limits`` (before the payload is read):
  ``RLIMIT_CPU`` (soft = the CPU already spent + ``cpu_seconds``, then ``SIGXCPU``; hard one second
  later, then ``SIGKILL``), ``RLIMIT_AS`` (the address space now + ``memory_mb``, so the limit means
  the same whatever pandas itself maps), ``RLIMIT_FSIZE`` 0, ``RLIMIT_CORE`` 0, a wall-clock
  ``SIGALRM`` backstop in case the parent is gone, and death with the parent.

``lockdown`` (after the payload is read and every module is imported):
  a new network namespace (only a downed loopback: no route anywhere); ``chroot`` into the empty
  per-snippet directory; every fd closed but the result pipe and stderr, and
  ``RLIMIT_NOFILE`` set so no new fd (file, socket, pipe) can be opened; when started as root,
  all groups dropped and uid/gid set to ``nobody`` so the hard limits can no longer be raised;
  ``RLIMIT_NPROC`` 0, so no process or thread can be started;
  ``no_new_privs`` and not dumpable; the environment emptied.

Every step that the host does not permit (no ``CAP_SYS_ADMIN`` for a namespace, say) is skipped
and left out of the returned layer list; the fd limit and rlimits always apply.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
from typing import Any

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
NOBODY = 65534
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


def _enter_network_namespace() -> str | None:
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


def _drop_privileges() -> str | None:
    if os.geteuid() != 0:
        return None
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return "nobody"


def lockdown(result_fd: int, workdir: str | None) -> tuple[int, list[str]]:
    """Close the child off; returns the result pipe's new fd (0) and the layers applied.

    Expects fd 2 to be the stderr pipe and ``result_fd`` the result pipe. Afterwards fd 0 is
    the result pipe, fds 1 and 2 the stderr pipe, and nothing else can be opened.
    """
    layers: list[str] = []
    namespace = _enter_network_namespace()
    if namespace:
        layers.append(namespace)
    if workdir:
        root = _enter_root(workdir)
        if root:
            layers.append(root)
    if result_fd != 0:
        os.dup2(result_fd, 0)
        os.close(result_fd)
    os.dup2(2, 1)
    os.closerange(3, 1 << 20)
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))
    layers.append("nofile")
    dropped = _drop_privileges()
    if dropped:
        layers.append(dropped)
    # No new processes or threads: nothing in the child needs one after this point, and a
    # fork (from code that got past the policy) could otherwise leave the process group.
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    layers.append("noproc")
    if _libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        layers.append("no_new_privs")
    _libc_call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)
    os.environ.clear()
    layers.append("empty_env")
    return 0, layers
