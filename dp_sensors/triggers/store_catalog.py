"""What the receiver and ``dp status`` need to know about published flows, read from the store.

Only ``params`` and ``triggers`` of a spec are parsed (with the spec's own models), so this does
not need the node catalog and stays cheap enough to ask per request: a flow published a moment
ago is known at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from dp_assets.spec.model import FlowParam, Trigger
from dp_sensors.triggers.params import params_model
from dp_settings import PlatformSettings


class FlowTriggers(BaseModel):
    """The part of a spec that triggers read; everything else is ignored here."""

    model_config = ConfigDict(extra="ignore")

    id: str
    params: dict[str, FlowParam] = Field(default_factory=dict)
    triggers: list[Trigger] = Field(default_factory=list)


_TRIGGERS = TypeAdapter(FlowTriggers)


def flow_triggers(spec: Mapping[str, Any]) -> FlowTriggers:
    return _TRIGGERS.validate_python(dict(spec))


class StoreFlowCatalog:
    """``FlowCatalog`` of the webhook receiver over the flow store.

    With ``webhooks_only`` (for ``POST /hooks/<flow id>``) a flow is known when an enabled
    ``event`` trigger of its published version listens to ``webhook.<flow id>``; any other flow
    is unknown (404), so a webhook can never publish an event that no sensor reads. Without it
    (for ``POST /flows/<flow id>/runs``) every published flow is known.
    """

    def __init__(self, store: Any, *, webhooks_only: bool = True):
        self.store = store
        self.webhooks_only = webhooks_only
        self._chains: dict[tuple[str, str], list[str]] | None = None

    def get_params_model(self, flow_id: str) -> type[BaseModel] | None:
        from dp_resources.store import FlowNotFound
        from dp_sensors.triggers.events import accepts_webhooks

        try:
            _, spec = self.store.get(flow_id)
            flow = flow_triggers(spec)
        except FlowNotFound:
            return None
        except ValueError:  # a stored spec that no longer parses: not servable
            return None
        if self.webhooks_only and not accepts_webhooks(flow):
            return None
        return params_model(flow.id, flow.params)

    def downstream(self, flow_id: str, outcome: str) -> list[str]:
        """Flows whose ``flow`` trigger starts them when ``flow_id`` ends with ``outcome``
        (read from the store once per catalog object)."""
        if self._chains is None:
            chains: dict[tuple[str, str], list[str]] = {}
            for other_id, _, spec in self.store.published_specs():
                try:
                    flow = flow_triggers(spec)
                except ValueError:
                    continue
                for trigger in flow.triggers:
                    if trigger.type == "flow" and trigger.enabled:
                        targets = chains.setdefault((trigger.flow, trigger.on), [])
                        if other_id not in targets:
                            targets.append(other_id)
            self._chains = chains
        return list(self._chains.get((flow_id, outcome), []))


def default_flow_catalog(*, webhooks_only: bool = True, settings: PlatformSettings | None = None) -> StoreFlowCatalog:
    """The catalog of the deployment's flow store (``settings``, default: read now)."""
    from dp_resources.store import FlowStore
    from dp_settings import load

    store = FlowStore((settings or load()).store_url())
    store.upgrade()
    return StoreFlowCatalog(store, webhooks_only=webhooks_only)
