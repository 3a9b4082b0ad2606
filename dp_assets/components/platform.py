"""What the platform's components share within one load: the resources and the executors.

Dagster merges the definitions of every component of a project and refuses two resources under
one key unless they are the same object, so the flow store component and each flow spec
component take theirs from here rather than building their own.
"""

from __future__ import annotations

from dp_assets.compiler.executors import FlowExecutors
from dp_settings import PlatformSettings, fingerprint

_executors: dict[str, FlowExecutors] = {}


def platform_pieces(settings: PlatformSettings) -> tuple[dict[str, object], FlowExecutors]:
    """The resources and executors of a deployment's ``settings``, one set per settings in this
    process (a code server's reload under changed settings gets new ones). The resources are the
    location's own (``shared_default_resources``: keyed on every value, secrets included, and on
    the MCP config file), so a component and the location never hold two different sets."""
    from dp_assets.default_resources import shared_default_resources

    key = fingerprint(settings)
    if key not in _executors:
        _executors.clear()  # only the current settings' executors are asked for again
        _executors[key] = FlowExecutors(settings=settings)
    return shared_default_resources(settings), _executors[key]
