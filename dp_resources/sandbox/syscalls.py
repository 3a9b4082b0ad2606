"""The seccomp filter: system calls a snippet's process may not make, whatever code makes them.

The policy (RestrictedPython) decides what Python a snippet may write; the filter decides what
the process may ask of the kernel, so it also holds for code that got past the policy, for a
bug in numpy's C code, and on hosts where namespaces are unavailable. It is a deny-list on top of
"allow": pandas, numpy and pyarrow use many ordinary calls (memory, time, futexes, reads and writes
on the fds the child already has) that an allow-list would have to track across library versions,
while what a snippet must never do is a short, stable list:

- open any file (``open``, ``openat``, ``openat2``, ``creat``, by handle), or change the file
  system (link, unlink, rename, mkdir, chmod, chown, mknod, truncate, ...);
- create or use a network endpoint (``socket``, ``socketpair``, ``connect``, ``bind``,
  ``listen``, ``accept``);
- start a program or a process or thread (``execve*``, ``fork``, ``vfork``, ``clone*``);
- signal any process but itself (``kill``/``tkill``/``tgkill``/``rt_*sigqueueinfo`` with another
  pid; ``pidfd_*``), look into another (``ptrace``, ``process_vm_*``, ``kcmp``);
- change its isolation (``unshare``, ``setns``, ``mount`` and the new mount API, ``chroot``,
  ``set*uid``/``set*gid``/``setgroups``, ``capset``, ``prctl``, raising an rlimit);
- reach kernel attack surface it has no use for (``bpf``, ``perf_event_open``, ``userfaultfd``,
  ``io_uring_*``, ``keyctl``, modules, ``kexec``, ``personality``, ``TIOCSTI``).

Each denied call fails with ``EPERM`` (Python raises ``PermissionError``), so a library that
probes for a file sees an ordinary error. System calls of another ABI (i386 ``int 0x80`` on
x86-64) kill the process: libseccomp's default for a foreign architecture.

The filter is loaded last in ``isolation.lockdown``, after the namespaces, ``chroot`` and the uid
change it forbids, and after every import: from then on the child only computes and writes to
the fds it holds.
"""

from __future__ import annotations

import errno
from typing import Any

DENIED_SYSCALLS: tuple[str, ...] = (
    # files
    "open",
    "openat",
    "openat2",
    "creat",
    "open_by_handle_at",
    "name_to_handle_at",
    "memfd_create",
    "memfd_secret",
    "mknod",
    "mknodat",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "truncate",
    "utimes",
    "utimensat",
    "inotify_init",
    "inotify_init1",
    "fanotify_init",
    # network
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    # programs, processes and threads
    "execve",
    "execveat",
    "fork",
    "vfork",
    "clone",
    "clone3",
    # other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "kcmp",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    # isolation itself
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "setfsuid",
    "setfsgid",
    "capset",
    "prctl",
    "setrlimit",
    # kernel surface with no use here
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "personality",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "sethostname",
    "setdomainname",
    "syslog",
    "iopl",
    "ioperm",
)
# Signal calls allowed only with the process's own pid as the first argument.
SELF_ONLY_SIGNALS: tuple[str, ...] = (
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
)
_TIOCSTI = 0x5412


def _seccomp() -> Any | None:
    """pyseccomp, or None where it or libseccomp is missing (the layer is then reported absent)."""
    try:
        import pyseccomp
    except (ImportError, OSError, RuntimeError):
        return None
    return pyseccomp


def available() -> bool:
    """Import pyseccomp now (it runs ``ldconfig`` to find libseccomp, which needs files)."""
    return _seccomp() is not None


def build_filter(own_pid: int) -> Any | None:
    """The filter for the process ``own_pid``; built before lockdown, loaded at its end."""
    seccomp = _seccomp()
    if seccomp is None:
        return None
    deny = seccomp.ERRNO(errno.EPERM)
    syscall_filter = seccomp.SyscallFilter(seccomp.ALLOW)
    # Every thread, not only the caller: a library may have started one while importing.
    syscall_filter.set_attr(seccomp.Attr.CTL_TSYNC, 1)
    for name in DENIED_SYSCALLS:
        _add_rule(syscall_filter, deny, name)
    for name in SELF_ONLY_SIGNALS:
        _add_rule(syscall_filter, deny, name, seccomp.Arg(0, seccomp.NE, own_pid))
    # prlimit64 with a new limit is a set; with NULL it is the read that getrlimit makes.
    _add_rule(syscall_filter, deny, "prlimit64", seccomp.Arg(2, seccomp.NE, 0))
    _add_rule(
        syscall_filter,
        deny,
        "ioctl",
        seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, _TIOCSTI),
    )
    return syscall_filter


def _add_rule(syscall_filter: Any, action: int, name: str, *args: Any) -> None:
    try:
        syscall_filter.add_rule(action, name, *args)
    except (OSError, ValueError, RuntimeError):
        pass  # not a system call on this architecture (``open`` on arm64, say)


def install(syscall_filter: Any) -> None:
    """Load the filter; a host with libseccomp that refuses it fails the snippet (fail closed)."""
    try:
        syscall_filter.load()
    except OSError as exc:
        raise OSError(f"the sandbox's seccomp filter could not be loaded: {exc}") from exc
