"""``ShellResource``: run an allow-listed program with an argv list, never through a shell.

Off unless the deployment turns it on (``enabled``). Each argument goes to the program as one
argv element exactly as written — ``;``, ``$(...)``, backticks and newlines are plain characters
because no shell ever parses them (reliability V9). The program must be on ``allowed_programs``
(a bare name looked up on the resource's own ``search_path``, or an absolute path), the working
folder must lie under ``root``, the environment holds only ``PATH``, ``LANG`` and the variables
the node names, the process gets its own session so a timeout kills everything it started, and
stdout/stderr are kept up to ``max_output_bytes`` each.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from dp_settings import current

ENV_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
RESERVED_ENV = {
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "BASH_ENV",
    "ENV",
    "IFS",
    "PYTHONHOME",
    "PERL5OPT",
    "NODE_OPTIONS",
}


class ShellRefused(PermissionError):
    """The command is not allowed by the deployment's shell settings."""


class ShellTimeout(TimeoutError):
    pass


@dataclass(frozen=True)
class ShellResult:
    argv: tuple[str, ...]
    program: str
    cwd: str
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool


class ShellResource(dg.ConfigurableResource):
    """Runs allow-listed programs for ``ShellTool`` nodes; off unless enabled."""

    enabled: bool = Field(default=False, description="Whether ShellTool nodes may run at all.")
    allowed_programs: list[str] = Field(
        default_factory=list,
        description="Programs that may run: bare names (looked up on search_path) or absolute paths. "
        "Shells and interpreters (sh, bash, python, ...) defeat argv-only execution; list them only on purpose.",
    )
    root: str | None = Field(
        default=None, description="Working folders must lie under this folder (default: DP_HOME/shell)."
    )
    search_path: str = Field(
        default="/usr/local/bin:/usr/bin:/bin", description="PATH used to find programs and given to them."
    )
    timeout_seconds: float = Field(default=60.0, gt=0, description="Longest run; the process group is killed after.")
    max_output_bytes: int = Field(
        default=1_000_000, gt=0, description="Bytes of stdout and of stderr kept (the rest is dropped)."
    )

    def root_path(self) -> Path:
        return Path(self.root).resolve() if self.root else (current().dp_home() / "shell").resolve()

    def program(self, name: str) -> str:
        """The absolute path of ``name`` if the deployment allows it, else ``ShellRefused``."""
        if not self.enabled:
            raise ShellRefused(
                "the shell is disabled in this deployment; set `enabled: true` and `allowed_programs` on "
                "the `shell` resource to allow ShellTool nodes"
            )
        if not name or "\x00" in name:
            raise ShellRefused("argv[0] must name a program")
        allowed = {self._locate(entry) for entry in self.allowed_programs} - {None}
        wanted = self._locate(name) if ("/" not in name or name in self.allowed_programs) else None
        if wanted is None or wanted not in allowed:
            raise ShellRefused(
                f"program '{name}' is not allowed; the `shell` resource allows: "
                f"{', '.join(self.allowed_programs) or 'none'}"
            )
        return wanted

    def _locate(self, entry: str) -> str | None:
        found = entry if os.path.isabs(entry) else shutil.which(entry, path=self.search_path)
        if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
            return None
        return os.path.realpath(found)

    def working_dir(self, cwd: str | None) -> Path:
        root = self.root_path()
        target = (root / (cwd or ".")).resolve()
        if not target.is_relative_to(root):
            raise ShellRefused(f"working folder '{cwd}' is outside the shell root")
        target.mkdir(parents=True, exist_ok=True)
        return target

    def run(
        self,
        argv: list[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout_seconds: float | None = None,
    ) -> ShellResult:
        """Run ``argv`` (a list, never parsed by a shell) and collect its output."""
        if not argv:
            raise ShellRefused("argv is empty; give the program and its arguments as a list")
        if any("\x00" in arg for arg in argv):
            raise ShellRefused("an argument contains a NUL byte")
        program = self.program(argv[0])
        folder = self.working_dir(cwd)
        child_env = {"PATH": self.search_path, "LANG": "C.UTF-8"}
        for name, value in (env or {}).items():
            if not name or set(name) - ENV_NAME_CHARS or name.upper() in RESERVED_ENV:
                raise ShellRefused(f"environment variable name '{name}' is not allowed")
            child_env[name] = str(value)
        timeout = min(timeout_seconds or self.timeout_seconds, self.timeout_seconds)
        started = time.monotonic()
        process = subprocess.Popen(
            [program, *argv[1:]],
            cwd=folder,
            env=child_env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        readers = [_Reader(process.stdout, self.max_output_bytes), _Reader(process.stderr, self.max_output_bytes)]
        if stdin is not None:
            threading.Thread(target=_feed, args=(process, stdin), daemon=True).start()
        try:
            exit_code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise ShellTimeout(
                f"'{argv[0]}' ran longer than {timeout:g}s and was killed (timeout_seconds on the node "
                "or the `shell` resource)"
            ) from None
        finally:
            _kill_group(process)  # children left behind in the session
            for reader in readers:
                reader.join()
        out, err = readers
        return ShellResult(
            argv=tuple(argv),
            program=program,
            cwd=str(folder),
            exit_code=exit_code,
            stdout=out.text(),
            stderr=err.text(),
            duration_s=time.monotonic() - started,
            truncated=out.truncated or err.truncated,
        )


class _Reader:
    """Drains a pipe on a thread, keeping at most ``cap`` bytes (so a chatty child never blocks)."""

    def __init__(self, pipe, cap: int):
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self.truncated = False
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe) -> None:
        with pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                keep = max(0, min(len(chunk), self.cap - self.size))
                if keep:
                    self.parts.append(chunk[:keep])
                    self.size += keep
                if keep < len(chunk):
                    self.truncated = True

    def join(self) -> None:
        self._thread.join(timeout=5)

    def text(self) -> str:
        return b"".join(self.parts).decode("utf-8", "replace")


def _feed(process: subprocess.Popen, data: str) -> None:
    try:
        assert process.stdin is not None
        process.stdin.write(data.encode())
        process.stdin.close()
    except (BrokenPipeError, OSError):
        pass


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
