"""What the platform's components share within one load: the resources and the executors.

Dagster merges the definitions of every component of a project and refuses two resources under
one key unless they are the same object, so the flow store component and each flow spec
component take theirs from here rather than building their own.
"""

from __future__ import annotations

from dp_assets.compiler.executors import FlowExecutors
from dp_settings import PlatformSettings

_shared: dict[str, tuple[dict[str, object], FlowExecutors]] = {}


def platform_pieces(settings: PlatformSettings) -> tuple[dict[str, object], FlowExecutors]:
    """The resources and executors of a deployment's ``settings``, one set per settings in this
    process (a code server's reload under changed settings gets new ones)."""
    from dp_assets.default_resources import default_resources

    key = settings.model_dump_json()
    if key not in _shared:
        _shared.clear()  # only the current settings' pieces are asked for again
        _shared[key] = (default_resources(settings), FlowExecutors(settings=settings))
    return _shared[key]
