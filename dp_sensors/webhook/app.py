"""The webhook and launch receiver: a small Starlette app in front of the event bus and Dagster.

``POST /hooks/{flow_id}`` turns a JSON body into an event on ``webhook.{flow_id}``; the flow's
event sensor starts the run, with the event id as run key, so a redelivered webhook (same
``Idempotency-Key``) starts nothing new. ``POST /flows/{flow_id}/runs`` launches a run directly,
once per ``Idempotency-Key`` (see :mod:`dp_sensors.webhook.launches`).

Checks run in this order so that nothing is learnt or read without a token: token (401), flow
(404), media type (415), size and time (413 at the cap, 408 past the body deadline: see
:mod:`dp_sensors.webhook.bodies`), JSON (400), params (422). Idempotency keys live in one
namespace per flow: a flow's callers can neither see nor block another flow's keys. Flow
lookups, publishing and launching are injected, so the lead's flow store and GraphQL launcher
plug in and tests use small stand-ins.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, overload, runtime_checkable

from anyio import to_thread
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dp_sensors.events.base import MAX_KEY_LENGTH, EventBus
from dp_sensors.webhook.auth import FLOW_ID_RE, LaunchAudit, ServiceTokenCheck, caller_label, is_authorised_by_any
from dp_sensors.webhook.bodies import (
    DEFAULT_BODY_TIMEOUT_SECONDS,
    Refused,
    check_json_content_type,
    parse_json_object,
    read_bounded_body,
)
from dp_sensors.webhook.invoke import InvokeBackend, InvokeRoutes
from dp_sensors.webhook.launches import (
    LAUNCH_ERRORS,
    Launcher,
    LaunchLedger,
    body_partition,
    launch_once,
    launch_refusal,
    launch_tags,
    request_hash,
)
from dp_settings import load
from dp_settings.groups import WebhookSettings

log = logging.getLogger("dp_sensors.webhook")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_IDEMPOTENCY_KEY = 255
WEBHOOK_SOURCE = "webhook"
#: What ``POST /flows/{flow_id}/runs`` takes: the params, and a partition of a partitioned flow.
LAUNCH_BODY_KEYS = frozenset({"params", "partition"})


@runtime_checkable
class FlowCatalog(Protocol):
    """What the receiver needs to know about flows."""

    def get_params_model(self, flow_id: str) -> type[BaseModel] | None:
        """The flow's params model (strict: ``extra="forbid"``), ``None`` for an unknown flow."""
        ...


ParamsLookup = Callable[[str], type[BaseModel] | None]


def webhook_topic(flow_id: str) -> str:
    return f"webhook.{flow_id}"


def webhook_dedupe_key(flow_id: str, idempotency_key: str) -> str:
    """The bus dedupe key of a delivery; long keys are hashed to fit the bus's 255 characters."""
    composed = f"webhook:{flow_id}:{idempotency_key}"
    if len(composed) <= MAX_KEY_LENGTH:
        return composed
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return f"webhook:{flow_id}:sha256:{digest}"


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Field, message and type of each error, without echoing the submitted values."""
    return [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_input=False, include_url=False)
    ]


class _Receiver:
    def __init__(
        self,
        lookup: ParamsLookup,
        bus: EventBus,
        ledger: LaunchLedger | None,
        launcher: Launcher | None,
        max_body_bytes: int,
        webhook: WebhookSettings | None,
        launch_wait_seconds: float,
        body_timeout_seconds: float,
        service_tokens: ServiceTokenCheck | None = None,
        on_launch: LaunchAudit | None = None,
    ) -> None:
        self.lookup = lookup
        self.service_tokens = service_tokens
        self.on_launch = on_launch
        self.bus = bus
        self.ledger = ledger
        self.launcher = launcher
        self.max_body_bytes = max_body_bytes
        self.webhook = webhook  # None: the settings in force at each request
        self.launch_wait_seconds = launch_wait_seconds
        self.body_timeout_seconds = body_timeout_seconds

    async def authorised(self, flow_id: str, authorization: str | None, action: str = "run") -> bool:
        """The receiver's token for the flow, or a service token allowed ``action`` on it."""
        return await to_thread.run_sync(
            is_authorised_by_any, flow_id, authorization, self.webhook, self.service_tokens, action
        )

    async def launched(self, request: Request, flow_id: str, run_id: str, replayed: bool) -> None:
        """Record a new launch in the audit trail (a replayed one launched nothing)."""
        if self.on_launch is not None and not replayed:
            actor = caller_label(request.headers.get("authorization"))
            try:
                await to_thread.run_sync(self.on_launch, flow_id, run_id, actor)
            except Exception:  # the run is launched: its answer must not turn into a 500
                log.exception("could not record the launch of run %s of flow %s in the audit trail", run_id, flow_id)

    async def authorised_flow(self, request: Request) -> tuple[str, type[BaseModel]]:
        flow_id = request.path_params["flow_id"]
        if not await self.authorised(flow_id, request.headers.get("authorization")):
            raise Refused(401, "missing or invalid bearer token (send 'Authorization: Bearer TOKEN')")
        model = None
        if FLOW_ID_RE.fullmatch(flow_id):
            model = await to_thread.run_sync(self.lookup, flow_id)
        if model is None:
            raise Refused(404, f"there is no flow {flow_id!r}; check the flow id in the URL")
        return flow_id, model

    async def json_object(self, request: Request, flow_id: str) -> dict[str, Any]:
        where = f"flow {flow_id!r}"
        check_json_content_type(request.headers.get("content-type"), where)
        raw = await read_bounded_body(request, self.max_body_bytes, self.body_timeout_seconds)
        return parse_json_object(raw, where)

    @staticmethod
    def validate_params(flow_id: str, model: type[BaseModel], params: Any) -> dict[str, Any]:
        try:
            validated = model.model_validate(params)
        except ValidationError as exc:
            raise Refused(
                422,
                f"the params do not fit flow {flow_id!r}; fix the fields listed in 'errors'",
                errors=_validation_errors(exc),
            ) from None
        return validated.model_dump(mode="json", exclude_unset=True)

    @overload
    @staticmethod
    def idempotency_key(request: Request, required: Literal[True]) -> str: ...

    @overload
    @staticmethod
    def idempotency_key(request: Request, required: Literal[False]) -> str | None: ...

    @staticmethod
    def idempotency_key(request: Request, required: bool) -> str | None:
        key = request.headers.get("idempotency-key")
        if key is None or key == "":
            if required:
                raise Refused(
                    400,
                    "the Idempotency-Key header is required: send a unique value (e.g. a UUID) "
                    "per intended run and repeat it on retries",
                )
            return None
        if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
            raise Refused(
                400,
                f"the Idempotency-Key must be printable and at most {MAX_IDEMPOTENCY_KEY} chars",
            )
        return key

    async def hook(self, request: Request) -> JSONResponse:
        try:
            flow_id, model = await self.authorised_flow(request)
            key = self.idempotency_key(request, required=False)
            params = self.validate_params(flow_id, model, await self.json_object(request, flow_id))
            dedupe_key = None if key is None else webhook_dedupe_key(flow_id, key)
            try:
                event = await to_thread.run_sync(
                    lambda: self.bus.publish(
                        webhook_topic(flow_id),
                        {"flow_id": flow_id, "params": params},
                        dedupe_key=dedupe_key,
                        source=WEBHOOK_SOURCE,
                    )
                )
            except Exception:
                log.exception("publishing the webhook event for flow %r failed", flow_id)
                raise Refused(503, "the event bus is unavailable; retry later") from None
        except Refused as refused:
            return refused.response()
        except ClientDisconnect:
            return JSONResponse({"detail": "client disconnected"}, 400)
        return JSONResponse({"event_id": event.id, "topic": event.topic}, 202)

    async def launch(self, request: Request) -> JSONResponse:
        try:
            if self.ledger is None or self.launcher is None:
                raise Refused(404, "launching through this receiver is not configured")
            flow_id, model = await self.authorised_flow(request)
            key = self.idempotency_key(request, required=True)
            body = await self.json_object(request, flow_id)
            unknown = sorted(set(body) - LAUNCH_BODY_KEYS)
            if unknown:
                raise Refused(
                    422, f'unknown keys {unknown} in the body; send {{"params": {{...}}, "partition": "KEY"}}'
                )
            raw_params = body.get("params", {})
            params = self.validate_params(flow_id, model, raw_params)
            partition = body_partition(body, flow_id)
            outcome = await launch_once(
                self.ledger,
                self.launcher,
                key=key,
                flow_id=flow_id,
                params=params,
                hashed=request_hash(flow_id, raw_params, partition),
                tags=launch_tags("api", partition),
                wait_seconds=self.launch_wait_seconds,
            )
        except Refused as refused:
            return refused.response()
        except ClientDisconnect:
            return JSONResponse({"detail": "client disconnected"}, 400)
        except LAUNCH_ERRORS as exc:
            return launch_refusal(exc, flow_id).response()
        await self.launched(request, flow_id, outcome.run_id, outcome.replayed)
        return JSONResponse(outcome.model_dump(), 200 if outcome.replayed else 201)


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(
    *,
    catalog: FlowCatalog | ParamsLookup,
    bus: EventBus,
    ledger: LaunchLedger | None = None,
    launcher: Launcher | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    environ: Mapping[str, str] | None = None,
    launch_wait_seconds: float = 60.0,
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
    webhook: WebhookSettings | None = None,
    invoke_backend: InvokeBackend | None = None,
    invoke_max_wait_seconds: float = 60.0,
    service_tokens: ServiceTokenCheck | None = None,
    on_launch: LaunchAudit | None = None,
) -> Starlette:
    """The receiver's ASGI app.

        ``catalog`` is a :class:`FlowCatalog` or a plain ``flow_id -> params model | None`` callable.
        ``bus`` receives webhook events; ``ledger`` and ``launcher`` (both or neither) enable
        ``POST /flows/{flow_id}/runs``. Tokens come from ``webhook`` (the receiver's settings), else
    from the variables of ``environ``, else from the settings in force at each request.
        A body must arrive within ``body_timeout_seconds`` (else 408) and fit ``max_body_bytes``.
        Schemas are not created here: call ``ensure_schema()`` on the bus and the ledger first.
        ``invoke_backend`` (with ledger and launcher) enables ``POST /flows/{flow_id}/invoke`` and
        ``GET /runs/{run_id}/result``, waiting at most ``invoke_max_wait_seconds``
        (:mod:`dp_sensors.webhook.invoke`). ``service_tokens`` lets the store's service tokens
        open the flows their roles allow (runner to launch or post, viewer to read a result);
        ``on_launch`` records each new launch (the audit trail).
    """
    if (ledger is None) != (launcher is None):
        raise ValueError("give both ledger and launcher to serve launches, or neither")
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be positive")
    if body_timeout_seconds <= 0:
        raise ValueError("body_timeout_seconds must be positive")
    lookup: ParamsLookup = catalog.get_params_model if isinstance(catalog, FlowCatalog) else catalog
    if webhook is None and environ is not None:
        webhook = load(environ).webhook
    receiver = _Receiver(
        lookup,
        bus,
        ledger,
        launcher,
        max_body_bytes,
        webhook,
        launch_wait_seconds,
        body_timeout_seconds,
        service_tokens,
        on_launch,
    )
    invoke = InvokeRoutes(receiver, invoke_backend, invoke_max_wait_seconds)
    return Starlette(
        routes=[
            Route("/healthz", _health, methods=["GET"]),
            Route("/hooks/{flow_id}", receiver.hook, methods=["POST"]),
            Route("/flows/{flow_id}/runs", receiver.launch, methods=["POST"]),
            Route("/flows/{flow_id}/invoke", invoke.invoke, methods=["POST"]),
            Route("/runs/{run_id}/result", invoke.result, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _routing_error},
    )


async def _routing_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (no such route 404, another method 405 with its Allow header) as
    JSON with a ``detail``, as every answer of the receiver is (they were plain text)."""
    status, detail = getattr(exc, "status_code", 500), getattr(exc, "detail", "error")
    return JSONResponse({"detail": detail}, status_code=status, headers=getattr(exc, "headers", None))
