"""``SandboxResource``: the deployment's sandbox limits and module allow-list, as a resource.

Nodes that run Python declare ``resources={"sandbox"}`` and call
``ctx.resource("sandbox").run(...)``. The resource keeps one ``Sandbox`` (with a fork server by
default) per process for the duration of a run, created on first use and shut down in
``teardown_after_execution``; a node's own ``limits`` override the deployment's defaults unless
``allow_node_limits`` is off, in which case they may only tighten them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr, field_validator

from dp_resources.sandbox.api import (
    Mode,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxResult,
)
from dp_resources.sandbox.rules import DEFAULT_ALLOWED_MODULES, check_allowed_modules


class SandboxResource(dg.ConfigurableResource):
    """Runs user Python snippets in a locked-down child process per snippet."""

    cpu_seconds: float = Field(
        default=10.0,
        gt=0,
        description="CPU seconds a snippet may use before it is stopped (RLIMIT_CPU).",
    )
    memory_mb: int = Field(
        default=1024,
        gt=0,
        description="Memory in MB a snippet may add on top of the preloaded interpreter, its "
        "inputs included (RLIMIT_AS).",
    )
    wall_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Wall-clock seconds before the snippet's process group is killed.",
    )
    max_output_bytes: int = Field(
        default=50_000_000,
        gt=0,
        description="Bytes of printed text plus the encoded result a snippet may return.",
    )
    allowed_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_MODULES),
        description="Modules snippets may import (pandas and numpy are always given as pd and "
        "np). Modules that reach files, processes, sockets or interpreter internals are refused.",
    )
    allow_node_limits: bool = Field(
        default=True,
        description="Whether a node's `limits` may raise these limits; when false a node may only tighten them.",
    )
    use_fork_server: bool = Field(
        default=True,
        description="Fork each snippet's child from a preloaded server (milliseconds per "
        "snippet) instead of starting a fresh interpreter (about a second).",
    )

    _sandbox: Sandbox | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("allowed_modules")
    @classmethod
    def _check_modules(cls, value: list[str]) -> list[str]:
        return list(check_allowed_modules(value))

    @property
    def limits(self) -> SandboxLimits:
        return SandboxLimits(
            cpu_seconds=self.cpu_seconds,
            memory_mb=self.memory_mb,
            wall_seconds=self.wall_seconds,
            max_output_bytes=self.max_output_bytes,
        )

    def effective_limits(self, override: SandboxLimits | None) -> SandboxLimits:
        if override is None:
            return self.limits
        if not self.allow_node_limits:
            base = self.limits
            for name in SandboxLimits.model_fields:
                if getattr(override, name) > getattr(base, name):
                    raise SandboxError(
                        f"limits.{name}={getattr(override, name)} is above the deployment's "
                        f"{name}={getattr(base, name)}, and the `sandbox` resource does not "
                        "allow nodes to raise limits (allow_node_limits=false); lower it or "
                        "change the resource config"
                    )
        return override

    def _get_sandbox(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = Sandbox(self.limits, self.allowed_modules, fork_server=self.use_fork_server)
            return self._sandbox

    def run(
        self,
        code: str,
        inputs: Mapping[str, Any],
        *,
        mode: Mode = "script",
        function_name: str = "apply",
        limits: SandboxLimits | None = None,
    ) -> SandboxResult:
        return self._get_sandbox().run(
            code,
            inputs,
            mode=mode,
            function_name=function_name,
            limits=self.effective_limits(limits),
        )

    def close(self) -> None:
        with self._lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()
