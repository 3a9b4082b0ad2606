"""The webhook and launch receiver as the platform serves it, over the flow store.

``dp_sensors.webhook.create_app`` takes a flow lookup (``FlowCatalog``); the lookup here reads the
``params`` and ``triggers`` of published flows from the store with the spec's own models, so it
lives in dp_assets: dp_sensors sits below the spec and never imports it. ``dp webhook serve`` and
``dp status`` (``dp_assets/cli/triggers.py``) use it.

Only ``params`` and ``triggers`` of a spec are parsed, so this does not need the node catalog and
stays cheap enough to ask per request: a flow published a moment ago is known at once.

Webhooks must only be accepted for flows whose event trigger reads ``webhook.<flow id>`` (else the
event would wait forever), while idempotent launches make sense for every flow. So two receiver
apps are built, one per lookup, and requests are dispatched by path; both share the bus and the
launch ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.types import ASGIApp, Receive, Scope, Send

from dp_assets.spec.model import FlowParam
from dp_assets.spec.triggers import Trigger
from dp_sensors.triggers.params import params_model
from dp_sensors.webhook import create_app
from dp_settings import PlatformSettings

LAUNCH_PREFIXES = ("/flows/", "/runs/")


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


def event_targets(store: Any) -> list[Any]:
    """The enabled event triggers of the published flows, named as their sensors are, for the
    dispatcher (``dp dispatch``); a spec that no longer parses is left out."""
    from dp_sensors.events.dispatcher import EventTarget
    from dp_sensors.triggers.events import event_sensor_name

    targets: list[EventTarget] = []
    for _, _, spec in store.published_specs():
        try:
            flow = flow_triggers(spec)
        except ValueError:
            continue
        skip = (spec.get("policies") or {}).get("when_running") == "skip"
        events = [trigger for trigger in flow.triggers if trigger.type == "event"]
        for index, trigger in enumerate(events):  # the sensor's index counts disabled ones too
            if trigger.enabled:
                targets.append(
                    EventTarget(
                        flow_id=flow.id,
                        sensor_name=event_sensor_name(flow.id, index),
                        patterns=tuple(trigger.topics),
                        params=flow.params,
                        trigger_params=trigger.params,
                        skip_when_running=skip,
                    )
                )
    return targets


def default_flow_catalog(*, webhooks_only: bool = True, settings: PlatformSettings | None = None) -> StoreFlowCatalog:
    """The catalog of the deployment's flow store (``settings``, default: read now)."""
    from dp_resources.store import FlowStore
    from dp_settings import load

    store = FlowStore((settings or load()).store_url())
    store.upgrade()
    return StoreFlowCatalog(store, webhooks_only=webhooks_only)


def service_token_check(store: Any) -> Callable[[str, str, str], bool]:
    """Whether a service token of ``store`` may ``run`` (launch, post) or ``view`` (read a
    result of) a flow: its grants decide, so a token opens only the flows it holds a role on."""
    from dp_auth.access import AccessStore
    from dp_auth.permissions import Action, Forbidden

    access = AccessStore(store)

    def check(flow_id: str, token: str, action: str) -> bool:
        principal = access.authenticate_token(token)
        if principal is None:
            return False
        try:
            access.check_flow(principal, Action[action], flow_id)
        except Forbidden:
            return False
        return True

    return check


def launch_audit(store: Any) -> Callable[[str, str, str], None]:
    """Record each launch the receiver makes in the store's audit trail."""
    from dp_auth.access import AccessStore

    access = AccessStore(store)

    def record(flow_id: str, run_id: str, actor: str) -> None:
        workspace = access.workspace_of(flow_id) or ""
        access.record(
            actor, "launch", workspace=workspace, flow_id=flow_id, detail={"run_id": run_id, "via": "receiver"}
        )

    return record


def receiver_app(
    store: Any,
    bus: Any,
    *,
    ledger: Any = None,
    launcher: Any = None,
    invoke_backend: Any = None,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> ASGIApp:
    """The ASGI app of ``dp webhook serve`` over a flow store (see the module docstring)."""
    options.setdefault("service_tokens", service_token_check(store))
    options.setdefault("on_launch", launch_audit(store))
    hooks = create_app(catalog=StoreFlowCatalog(store, webhooks_only=True), bus=bus, environ=environ, **options)
    if ledger is None or launcher is None:
        return hooks
    launches = create_app(
        catalog=StoreFlowCatalog(store, webhooks_only=False),
        bus=bus,
        ledger=ledger,
        launcher=launcher,
        environ=environ,
        invoke_backend=invoke_backend,
        **options,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        target = launches if scope.get("path", "").startswith(LAUNCH_PREFIXES) else hooks
        await target(scope, receive, send)

    return app


def serve_receiver(
    host: str,
    port: int,
    *,
    events_url: str | None,
    launches_url: str | None,
    dagster_url: str | None,
    max_body_bytes: int,
    log_level: str,
    settings: PlatformSettings | None = None,
) -> None:
    """Run the receiver until interrupted (what ``dp webhook serve`` does), with the
    deployment's ``settings`` (read once at start: store, bus, ledger, tokens)."""
    import uvicorn

    from dp_resources.store import FlowStore
    from dp_sensors.events.factory import event_bus_from_url
    from dp_sensors.launch import GraphQLLauncher
    from dp_sensors.webhook import LaunchLedger
    from dp_settings import load

    settings = settings or load()
    store = FlowStore(settings.store_url())
    store.upgrade()
    bus = event_bus_from_url(events_url or settings.events_bus_url())
    bus.ensure_schema()
    ledger = launcher = invoke_backend = None
    if dagster_url:
        ledger = LaunchLedger(launches_url or settings.launch_ledger_url())
        ledger.ensure_schema()
        token = settings.dagster.token
        launcher = GraphQLLauncher(
            dagster_url,
            location=settings.code_location,
            token=token.get_secret_value() if token else None,
        )
        invoke_backend = platform_invoke_backend(store, dagster_url, settings)
    app = receiver_app(
        store,
        bus,
        ledger=ledger,
        launcher=launcher,
        invoke_backend=invoke_backend,
        max_body_bytes=max_body_bytes,
        webhook=settings.webhook,
        invoke_max_wait_seconds=settings.invoke_wait_cap(),
    )
    from dp_resources.http_server import hardened_server_options

    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="off", **hardened_server_options())
    finally:
        bus.close()
        if ledger is not None:
            ledger.close()
        if invoke_backend is not None:
            invoke_backend.client.close()
        if launcher is not None:
            launcher.close()


def platform_invoke_backend(store: Any, dagster_url: str, settings: PlatformSettings) -> Any:
    """The invoke endpoints' runs and results: the webserver at ``dagster_url``, the store's specs
    and the kept outputs of ``settings`` (``dp_assets.invoke_results``)."""
    from dp_assets.invoke_results import PlatformInvokeBackend, ui_url_of
    from dp_sensors.launch import GraphQLClient

    token = settings.dagster.token
    client = GraphQLClient(
        dagster_url, location=settings.code_location, token=token.get_secret_value() if token else None
    )
    return PlatformInvokeBackend(
        store,
        client,
        outputs_base=settings.outputs_base(),
        max_rows=settings.invoke_row_limit(),
        ui_url=ui_url_of(settings.webserver_url, client.url),
    )
