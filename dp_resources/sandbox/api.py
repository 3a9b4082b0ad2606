"""The sandbox's public surface: limits, errors, results, and ``Sandbox.run``.

``run_in_sandbox`` starts a fresh interpreter per call and shares nothing. ``Sandbox`` (held by
``SandboxResource``) can keep a fork server so that a step running many snippets pays the
pandas import once. Both run every snippet in its own child process; see ``docs/sandbox.md``.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from dp_resources.sandbox.isolation import EXIT_CPU_LIMIT, LAYERS
from dp_resources.sandbox.launcher import (
    Launcher,
    Outcome,
    SubprocessLauncher,
    communicate,
)
from dp_resources.sandbox.protocol import HEADER_ALLOWANCE, decode_value, unpack_frame
from dp_resources.sandbox.rules import DEFAULT_ALLOWED_MODULES, check_allowed_modules

Mode = Literal["script", "function"]

_HOW = "raise `limits.{field}` on the node, or `{field}` on the `sandbox` resource for the whole deployment"


class SandboxLimits(BaseModel):
    """Hard limits for one snippet; every one is enforced by the operating system or the parent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_seconds: float = Field(
        10,
        gt=0,
        description="CPU time the snippet may use (RLIMIT_CPU, whole seconds up).",
    )
    memory_mb: int = Field(
        1024,
        gt=0,
        description="Address space the child may add on top of the preloaded interpreter, inputs included (RLIMIT_AS).",
    )
    wall_seconds: float = Field(
        30,
        gt=0,
        description="Wall-clock time before the parent kills the child's process group.",
    )
    max_output_bytes: int = Field(50_000_000, gt=0, description="Printed text plus the encoded result, in bytes.")


class SandboxError(Exception):
    """Base of every sandbox failure; the message says which limit or rule and how to change it."""


class SandboxPolicyError(SandboxError):
    """The snippet asked for something the sandbox refuses (attribute, import, file, network)."""


class SandboxTimeout(SandboxError):
    """The snippet passed its CPU-time or wall-clock limit."""


class SandboxMemoryError(SandboxError):
    """The snippet passed its memory limit."""


class SandboxOutputError(SandboxError):
    """The snippet printed or returned more than ``max_output_bytes``."""


class SandboxCodeError(SandboxError):
    """The snippet itself failed: it raised, recursed too deep, or returned something unusable."""


@dataclass(frozen=True)
class SandboxResult:
    value: Any
    stdout: str
    duration_s: float
    layers: tuple[str, ...] = field(default=())


def validate_inputs(inputs: Mapping[str, Any]) -> None:
    for name in inputs:
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"sandbox input name {name!r} must be a Python identifier not starting with '_'")


class Sandbox:
    """Runs snippets in child processes; ``fork_server=True`` keeps a preloaded server.

    ``layers`` names the protection layers to apply (``isolation.LAYERS``: policy, rlimits,
    seccomp, namespaces, user). Every layer is on unless a caller says otherwise; only the tests
    that show each layer holds on its own switch some off. ``SandboxResource`` never does.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        allowed_modules: Iterable[str] = DEFAULT_ALLOWED_MODULES,
        *,
        fork_server: bool = False,
        layers: Iterable[str] = LAYERS,
    ):
        self.limits = limits or SandboxLimits()
        self.allowed_modules = check_allowed_modules(allowed_modules)
        self.layers = tuple(layers)
        unknown = set(self.layers) - set(LAYERS)
        if unknown:
            raise ValueError(f"unknown sandbox layers {sorted(unknown)}; the layers are {', '.join(LAYERS)}")
        self._launcher: Launcher
        if fork_server:
            from dp_resources.sandbox.forkserver import ForkServerLauncher

            self._launcher = ForkServerLauncher(self.allowed_modules)
        else:
            self._launcher = SubprocessLauncher()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._launcher.close()

    def run(
        self,
        code: str,
        inputs: Mapping[str, Any],
        *,
        mode: Mode = "script",
        function_name: str = "apply",
        limits: SandboxLimits | None = None,
    ) -> SandboxResult:
        limits = limits or self.limits
        if mode not in ("script", "function"):
            raise ValueError(f"sandbox mode must be 'script' or 'function', not {mode!r}")
        if not function_name.isidentifier() or function_name.startswith("_"):
            raise ValueError(f"function_name {function_name!r} must be a public identifier")
        validate_inputs(inputs)
        try:
            payload = pickle.dumps(
                {
                    "code": code,
                    "inputs": dict(inputs),
                    "mode": mode,
                    "function_name": function_name,
                    "allowed_modules": list(self.allowed_modules),
                },
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise SandboxError(f"the inputs cannot be sent to the sandbox: {exc}") from exc
        workdir = tempfile.mkdtemp(prefix="dp-sandbox-")
        try:
            os.chmod(workdir, 0o555)
            spec = {
                "cpu_seconds": limits.cpu_seconds,
                "memory_mb": limits.memory_mb,
                "wall_seconds": limits.wall_seconds,
                "max_output_bytes": limits.max_output_bytes,
                "workdir": workdir,
                "layers": list(self.layers),
            }
            try:
                child = self._launcher.start(spec)
            except (OSError, RuntimeError) as exc:
                raise SandboxError(
                    f"the sandbox could not start a child process: {exc}; check the host's process and memory limits"
                ) from exc
            outcome = communicate(
                child,
                payload,
                limits.wall_seconds,
                limits.max_output_bytes + HEADER_ALLOWANCE,
            )
        finally:
            os.chmod(workdir, 0o700)
            shutil.rmtree(workdir, ignore_errors=True)
        return interpret(outcome, limits)


def run_in_sandbox(
    code: str,
    inputs: dict[str, Any],
    *,
    mode: Mode = "script",
    function_name: str = "apply",
    limits: SandboxLimits | None = None,
) -> SandboxResult:
    """Run one snippet in a fresh child process (no fork server, nothing shared)."""
    with Sandbox(limits) as sandbox:
        return sandbox.run(code, inputs, mode=mode, function_name=function_name)


# -- turning what the parent saw into a result or an error ---------------------------------------


def _limit_error(kind: str, limits: SandboxLimits, detail: str = "") -> SandboxError:
    suffix = f" ({detail})" if detail else ""
    if kind == "wall":
        return SandboxTimeout(
            f"the code ran longer than wall_seconds={limits.wall_seconds:g} s and was killed"
            f"{suffix}; {_HOW.format(field='wall_seconds')}"
        )
    if kind == "cpu":
        return SandboxTimeout(
            f"the code used more than cpu_seconds={limits.cpu_seconds:g} s of CPU time and was "
            f"stopped{suffix}; {_HOW.format(field='cpu_seconds')}"
        )
    if kind == "memory":
        return SandboxMemoryError(
            f"the code needed more memory than memory_mb={limits.memory_mb} allows{suffix}; "
            f"{_HOW.format(field='memory_mb')}"
        )
    return SandboxOutputError(
        f"the code printed or returned more than max_output_bytes={limits.max_output_bytes}"
        f"{suffix}; {_HOW.format(field='max_output_bytes')}"
    )


def _error_from_header(error: dict[str, Any], limits: SandboxLimits) -> SandboxError:
    kind = error.get("kind")
    message = str(error.get("message", "")).rstrip(".")
    where = f" (line {error['line']}: {error.get('source', '')})" if error.get("line") else ""
    if kind == "policy":
        return SandboxPolicyError(
            f"the sandbox refused the code: {message}{where}. Snippets get their inputs, `pd`, "
            "`np` and the allowed modules; attributes starting with '_', str.format, "
            "eval/exec/open and other imports are refused (a deployment can allow more modules "
            "with the `sandbox` resource's allowed_modules)"
        )
    if kind == "isolation":
        return SandboxPolicyError(
            f"the code tried to use files, network or processes, which the sandbox does not "
            f"have: {message}{where}; pass data in through the node's inputs"
        )
    if kind in ("memory", "output"):
        return _limit_error(kind, limits, message + where)
    if kind == "recursion":
        return SandboxCodeError(
            f"the code recursed deeper than Python's recursion limit, which keeps the "
            f"process stack bounded: {message}{where}; rewrite the recursion as a loop"
        )
    if kind == "unavailable":
        return SandboxCodeError(
            f"a library needed a module that is not loaded inside the sandbox: {message}"
            f"{where}; if this is a common operation, ask for it to be preloaded"
        )
    if kind == "setup":
        return SandboxError(f"{message}; fix the `sandbox` resource's allowed_modules")
    if kind == "usage":
        return SandboxCodeError(message)
    if kind == "result":
        return SandboxCodeError(message)
    return SandboxCodeError(f"the code raised {message}{where}")


def _died(outcome: Outcome, limits: SandboxLimits) -> SandboxError:
    status = outcome.status
    tail = outcome.stderr.decode("utf-8", "replace").strip()[-2000:]
    if status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_CPU_LIMIT:
        return _limit_error("cpu", limits)
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return _limit_error("cpu", limits)
        if sig == signal.SIGKILL:
            cpu = outcome.cpu_seconds or 0.0
            if cpu >= limits.cpu_seconds:
                return _limit_error("cpu", limits)
            return _limit_error("memory", limits, "killed by the operating system")
    if "MemoryError" in tail or "Cannot allocate memory" in tail:
        return _limit_error("memory", limits)
    described = "unknown status" if status is None else f"wait status {status}"
    return SandboxError(f"the sandbox process ended without a result ({described}); stderr: {tail or '(empty)'}")


def interpret(outcome: Outcome, limits: SandboxLimits) -> SandboxResult:
    if outcome.killed_for in ("wall", "output"):
        raise _limit_error(outcome.killed_for, limits)
    if not outcome.frame:
        raise _died(outcome, limits)
    try:
        header, stdout, body = unpack_frame(outcome.frame)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise SandboxError(f"the sandbox returned a broken result: {exc}") from exc
    if not header.get("ok"):
        raise _error_from_header(header.get("error") or {}, limits)
    try:
        value = decode_value(header, body)
    except Exception as exc:  # whatever the child sent, the parent stays clean
        raise SandboxError(f"the sandbox returned a value that failed validation: {exc}") from exc
    return SandboxResult(
        value=value,
        stdout=stdout,
        duration_s=outcome.elapsed_s,
        layers=tuple(str(layer) for layer in header.get("layers", ())),
    )
