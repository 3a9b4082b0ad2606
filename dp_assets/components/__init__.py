"""The platform as Dagster Components, for ``dg`` (docs/dg.md).

``FlowStoreComponent``: every published flow of the flow store, a state-backed component whose
state is the store's published versions. ``FlowSpecComponent``: one flow spec written as a
component's attributes in a ``defs.yaml``. ``dp_assets.components.definitions`` is the code
location ``dg`` loads (``[tool.dg]`` in pyproject.toml); it builds the same definitions as
``dp_assets.definitions`` (tests/components).
"""

from dp_assets.components.flow_spec import FlowSpecComponent
from dp_assets.components.flow_store import FlowStoreComponent

__all__ = ["FlowSpecComponent", "FlowStoreComponent"]
