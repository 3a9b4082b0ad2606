"""The code sandbox: user Python snippets run in a locked-down child process per snippet.

``RestrictedPython`` refuses unsafe code when it is compiled and guards attribute access, imports
and printing while it runs; the child process adds hard limits (CPU, memory, wall clock, output)
and has no files, network or environment. See ``docs/sandbox.md`` for the model.

Exports are resolved lazily: the sandbox child imports this package too and must not pay for
pydantic or Dagster, and ``import dp_resources.sandbox`` stays cheap for everyone else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dp_resources.sandbox.api import (
        Sandbox,
        SandboxCodeError,
        SandboxError,
        SandboxLimits,
        SandboxMemoryError,
        SandboxOutputError,
        SandboxPolicyError,
        SandboxResult,
        SandboxTimeout,
        run_in_sandbox,
    )
    from dp_resources.sandbox.resource import SandboxResource
    from dp_resources.sandbox.rules import DEFAULT_ALLOWED_MODULES

_EXPORTS = {
    "Sandbox": "api",
    "SandboxCodeError": "api",
    "SandboxError": "api",
    "SandboxLimits": "api",
    "SandboxMemoryError": "api",
    "SandboxOutputError": "api",
    "SandboxPolicyError": "api",
    "SandboxResult": "api",
    "SandboxTimeout": "api",
    "run_in_sandbox": "api",
    "DEFAULT_ALLOWED_MODULES": "rules",
    "SandboxResource": "resource",
}

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "Sandbox",
    "SandboxCodeError",
    "SandboxError",
    "SandboxLimits",
    "SandboxMemoryError",
    "SandboxOutputError",
    "SandboxPolicyError",
    "SandboxResource",
    "SandboxResult",
    "SandboxTimeout",
    "run_in_sandbox",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dp_resources.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dp_resources.sandbox.{module}"), name)
