"""The flow routes: list, open, draft, publish, history, diff and restore, all through
``FlowStoreAPI`` (the one store API), so the designer follows the store's rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from dp_assets.spec.validation import FlowValidationError, validate_spec
from dp_assets.store_api import FlowNotFound, FlowStoreAPI, join_layout
from dp_auth.permissions import Action
from dp_designer.checks import check_document
from dp_designer.diffs import node_diff
from dp_designer.http import ApiError, read_body
from dp_designer.identity import author_of, caller
from dp_designer.numbers import with_reference_numbers
from dp_sensors.webhook.auth import FLOW_ID_RE


class DraftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: dict[str, Any] = Field(description="The flow spec, with an optional `layout` section.")
    base_version: str | None = Field(None, max_length=64, description="The version the draft started from.")


class PublishBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: dict[str, Any] | None = Field(None, description="The spec to publish; the saved draft when absent.")
    message: str = Field("", max_length=2000, description="What changed, shown in the history.")


class RestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64, description="The version (or a prefix) to restore.")


class ValidateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: dict[str, Any] = Field(description="The flow spec to check, with an optional `layout` section.")
    base_version: str | None = Field(
        None, max_length=64, description="The stored version the document started from (keeps its float values)."
    )


def flow_id_of(request: Request) -> str:
    flow_id = request.path_params["flow_id"]
    if not FLOW_ID_RE.fullmatch(flow_id):
        raise ApiError(404, f"no flow '{flow_id[:80]}': a flow id is lower case letters, digits and _")
    return flow_id


def document_for(flow_id: str, document: Mapping[str, Any]) -> dict[str, Any]:
    doc_id = document.get("id", flow_id)
    if doc_id != flow_id:
        raise ApiError(422, f"the document's id '{str(doc_id)[:80]}' is not the flow '{flow_id}' it is saved as")
    return {**document, "id": flow_id}


def _api(request: Request) -> FlowStoreAPI:
    """The store API acting for the caller: it refuses what their roles do not allow."""
    return request.app.state.store_api.acting_as(caller(request))


def as_stored(api: FlowStoreAPI, document: dict[str, Any], base_version: str | None) -> dict[str, Any]:
    """``document`` with the float values of the version it started from, where unchanged
    (``dp_designer.numbers``): the client's JSON has no ``20.0``, only ``20``."""
    flow_id = document.get("id")
    if not isinstance(flow_id, str) or not FLOW_ID_RE.fullmatch(flow_id):
        return document
    try:
        if base_version is None:
            base_version = api.info(flow_id).published_version
        if base_version is None:
            return document
        _, reference = api.get(flow_id, base_version)
    except (FlowNotFound, LookupError, ValueError):
        return document  # a new flow, or a version the store does not have: nothing to keep
    return with_reference_numbers(document, reference)


# --- reading ---------------------------------------------------------------------------------


def _listing(api: FlowStoreAPI, last_runs: Mapping[str, str]) -> list[dict[str, Any]]:
    drafts = api.draft_flow_ids()
    rows = []
    for listing in api.list():
        info = listing.info
        if info.state == "deleted":
            continue
        history = api.history(info.id)
        errors = [listing.conflict] if listing.conflict else []
        if info.published_version:
            _, spec = api.get(info.id)
            try:
                validate_spec(spec, api.catalog, check_schemas=False, check_compiles=False)
            except FlowValidationError as exc:
                errors += [str(e) for e in exc.errors]
        rows.append(
            {
                "id": info.id,
                "state": info.state,
                "published_version": info.published_version,
                "latest_version": history[-1].version if history else None,
                "versions": info.versions,
                "updated_at": info.updated_at.isoformat(),
                "draft": info.id in drafts,
                "last_run_status": last_runs.get(info.id),
                "source": listing.source,
                "errors": errors,
            }
        )
    known = {row["id"] for row in rows}
    for flow_id, saved in sorted(drafts.items()):
        if flow_id not in known and api.may(Action.view, flow_id):
            rows.append(
                {
                    "id": flow_id,
                    "state": "draft",
                    "published_version": None,
                    "latest_version": None,
                    "versions": 0,
                    "updated_at": saved.isoformat(),
                    "draft": True,
                    "last_run_status": None,
                    "source": None,
                    "errors": [],
                }
            )
    return rows


async def list_flows(request: Request) -> JSONResponse:
    """Every flow of the store: state, latest version, draft, last run's status and errors."""
    last_runs = await run_in_threadpool(request.app.state.runs.last_statuses)
    return JSONResponse({"flows": await run_in_threadpool(_listing, _api(request), last_runs)})


def _open(api: FlowStoreAPI, flow_id: str, version: str | None) -> dict[str, Any]:
    draft = api.draft(flow_id) if version is None else None
    stored = None
    try:
        wanted = version
        if wanted is None:
            history = api.history(flow_id)
            wanted = api.info(flow_id).published_version or (history[-1].version if history else None)
        if wanted is not None:
            found, document = api.document(flow_id, wanted)
            stored = {"version": found, "document": document}
    except FlowNotFound:
        if draft is None or version is not None:
            raise
    return {
        "id": flow_id,
        "stored": stored,
        "draft": None
        if draft is None
        else {
            "document": join_layout(draft.spec, draft.layout),
            "base_version": draft.base_version,
            "updated_at": draft.updated_at.isoformat(),
        },
    }


async def get_flow(request: Request) -> JSONResponse:
    """The flow's draft (if any) and its published (else newest) version, with node positions."""
    flow_id = flow_id_of(request)
    return JSONResponse(await run_in_threadpool(_open, _api(request), flow_id, None))


async def get_version(request: Request) -> JSONResponse:
    """One stored version, with its node positions."""
    flow_id = flow_id_of(request)
    version = request.path_params["version"][:64]
    return JSONResponse(await run_in_threadpool(_open, _api(request), flow_id, version))


async def history(request: Request) -> JSONResponse:
    """Every stored version, oldest first, with message, author and which one is published."""
    flow_id = flow_id_of(request)
    versions = await run_in_threadpool(_api(request).history, flow_id)
    return JSONResponse(
        {
            "versions": [
                {
                    "version": v.version,
                    "message": v.message,
                    "author": v.author,
                    "created_at": v.created_at.isoformat(),
                    "published": v.published,
                }
                for v in versions
            ]
        }
    )


def _audit(api: FlowStoreAPI, flow_id: str) -> list[dict[str, Any]]:
    api.info(flow_id)  # view checked; a flow that is not stored is a 404
    return [
        {"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "detail": e.detail}
        for e in api.access.audit(flow_id, limit=500)
    ]


async def audit(request: Request) -> JSONResponse:
    """Who published, deleted, restored and launched the flow, and who changed its roles."""
    flow_id = flow_id_of(request)
    return JSONResponse({"entries": await run_in_threadpool(_audit, _api(request), flow_id)})


def _diff(api: FlowStoreAPI, flow_id: str, a: str, b: str) -> dict[str, Any]:
    a_version, a_spec = api.get(flow_id, a)
    b_version, b_spec = api.get(flow_id, b)
    return {
        "from": a_version,
        "to": b_version,
        "nodes": node_diff(a_spec, b_spec),
        "yaml": api.diff(flow_id, a_version, b_version),
    }


async def diff(request: Request) -> JSONResponse:
    """Two versions compared by node (added, removed, changed) and as a YAML diff."""
    flow_id = flow_id_of(request)
    a, b = request.query_params.get("from"), request.query_params.get("to")
    if not a or not b:
        raise ApiError(400, "name the two versions: ?from=VERSION&to=VERSION")
    return JSONResponse(await run_in_threadpool(_diff, _api(request), flow_id, a[:64], b[:64]))


# --- writing ---------------------------------------------------------------------------------


async def save_draft(request: Request) -> JSONResponse:
    """Save the flow's draft (valid or not; never published or compiled) and check it."""
    flow_id = flow_id_of(request)
    body = await read_body(request, DraftBody)
    api = _api(request)

    def save() -> dict[str, Any]:
        document = as_stored(api, document_for(flow_id, body.document), body.base_version)
        check = check_document(document, api.catalog, read_sources=True)  # first: beyond the limits is refused
        draft = api.put_draft(flow_id, document, base_version=body.base_version, author=author_of(request))
        return {"saved_at": draft.updated_at.isoformat(), "check": check}

    return JSONResponse(await run_in_threadpool(save))


async def discard_draft(request: Request) -> JSONResponse:
    """Throw the draft away; the stored versions stay as they are."""
    flow_id = flow_id_of(request)
    return JSONResponse({"discarded": await run_in_threadpool(_api(request).discard_draft, flow_id)})


async def publish(request: Request) -> JSONResponse:
    """Validate, compile, store and publish the document (or the saved draft); the draft goes."""
    flow_id = flow_id_of(request)
    body = await read_body(request, PublishBody)
    api = _api(request)

    def run() -> dict[str, Any]:
        if body.document is not None:
            draft = api.draft(flow_id)
            document = as_stored(api, document_for(flow_id, body.document), draft.base_version if draft else None)
        else:
            draft = api.draft(flow_id)
            if draft is None:
                raise ApiError(409, f"flow '{flow_id}' has no draft to publish; send the document")
            document = join_layout(draft.spec, draft.layout)
        result = api.publish(document, message=body.message, author=author_of(request))
        api.discard_draft(flow_id)
        # The code location compiles what is published when it loads: load it now, so that a
        # launch from the designer runs this version.
        reloaded = result.published and request.app.state.runs.reload()
        return {
            "version": result.version,
            "created": result.created,
            "published": result.published,
            "reloaded": reloaded,
        }

    return JSONResponse(await run_in_threadpool(run))


async def restore(request: Request) -> JSONResponse:
    """An old version becomes the flow's draft; publishing it is a separate step."""
    flow_id = flow_id_of(request)
    body = await read_body(request, RestoreBody)
    api = _api(request)
    draft = await run_in_threadpool(lambda: api.restore_as_draft(flow_id, body.version, author=author_of(request)))
    return JSONResponse(
        {"document": join_layout(draft.spec, draft.layout), "base_version": draft.base_version}, status_code=201
    )


async def validate(request: Request) -> JSONResponse:
    """Check a document as ``dp validate`` does (not compiled): errors by node, field and edge,
    and the column schema at each node's output."""
    body = await read_body(request, ValidateBody)
    api = _api(request)
    return JSONResponse(
        await run_in_threadpool(
            lambda: check_document(as_stored(api, body.document, body.base_version), api.catalog, read_sources=True)
        )
    )
