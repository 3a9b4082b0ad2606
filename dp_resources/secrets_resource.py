"""The ``secrets`` resource: which ``${env:NAME}`` references a deployment allows
(the rules themselves are ``dp_resources.secrets``)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from dp_resources.secrets import SecretScope


class SecretsResource(dg.ConfigurableResource):
    """Which environment variables specs may reference as ``${env:NAME}``, resolved at run time."""

    allowed_names: list[str] | None = Field(
        default=None,
        description="Glob patterns of environment variable names that specs may reference as "
        "secrets (`${env:NAME}`); anything else is refused. Default: DP_ALLOWED_SECRET_NAMES, "
        "else DP_SECRET_*.",
    )
    min_length: int = Field(
        default=4, ge=1, description="Shortest secret value accepted (shorter ones cannot be redacted safely)."
    )

    def scope(self) -> SecretScope:
        return SecretScope(self.allowed_names, self.min_length)
