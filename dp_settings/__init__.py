"""The platform's settings: one typed model of every ``DP_*`` variable (``docs/settings.md``).

A leaf package: it imports nothing of ours, so every package may import it.

    from dp_settings import load, PlatformSettings
    settings = load()                 # once, where a process starts; then pass it down
"""

from dp_settings.access import current, environment_key, fingerprint, load, using
from dp_settings.catalog import COMPOSE_VARIABLES, VARIABLE_PATTERNS, Variable, variables
from dp_settings.model import REPO_ROOT, PlatformSettings

__all__ = [
    "COMPOSE_VARIABLES",
    "REPO_ROOT",
    "VARIABLE_PATTERNS",
    "PlatformSettings",
    "Variable",
    "current",
    "environment_key",
    "fingerprint",
    "load",
    "using",
    "variables",
]
