"""The designer's ASGI app: the JSON API under ``/api`` and the built client at ``/``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dp_assets.spec.document import SpecShapeError
from dp_assets.spec.validation import FlowValidationError
from dp_assets.store_api import FlowNotFound, FlowStoreAPI, Forbidden
from dp_designer import flows_api, previews_api, roles_api, runs_api
from dp_designer.catalog_view import catalog_view
from dp_designer.checks import check_document
from dp_designer.http import ApiError, error_response
from dp_designer.identity import DesignerAuth, caller
from dp_designer.imports import ImportBody, import_file
from dp_designer.openapi import openapi_document
from dp_designer.previews import PreviewService
from dp_designer.runs_api import RunsService

log = logging.getLogger("dp_designer")

#: Where ``make install`` puts the built client (``npm run build`` in ``designer/``).
CLIENT_DIST = Path(__file__).resolve().parent.parent / "designer" / "dist"

NO_CLIENT = """<!doctype html><title>dp designer</title>
<p>The designer's client is not built: run <code>make install</code> (it runs <code>npm ci</code> and
<code>npm run build</code> in <code>designer/</code>).
The API is at <a href="/api/openapi.json">/api/openapi.json</a>.</p>"""


async def catalog(request: Request) -> JSONResponse:
    """Node types grouped for the palette, with the JSON Schema of their params and their docs;
    and the JSON Schema of a whole flow spec (the code editor's completion)."""
    return JSONResponse(await run_in_threadpool(catalog_view, request.app.state.store_api.catalog))


API_ROUTES: list[tuple[str, str, Any, type[BaseModel] | None]] = [
    ("GET", "/api/catalog", catalog, None),
    ("POST", "/api/validate", flows_api.validate, flows_api.ValidateBody),
    ("POST", "/api/import", import_file, ImportBody),
    ("GET", "/api/flows", flows_api.list_flows, None),
    ("GET", "/api/flows/{flow_id}", flows_api.get_flow, None),
    ("GET", "/api/flows/{flow_id}/versions/{version}", flows_api.get_version, None),
    ("GET", "/api/flows/{flow_id}/history", flows_api.history, None),
    ("GET", "/api/flows/{flow_id}/audit", flows_api.audit, None),
    ("GET", "/api/flows/{flow_id}/diff", flows_api.diff, None),
    ("PUT", "/api/flows/{flow_id}/draft", flows_api.save_draft, flows_api.DraftBody),
    ("DELETE", "/api/flows/{flow_id}/draft", flows_api.discard_draft, None),
    ("POST", "/api/flows/{flow_id}/publish", flows_api.publish, flows_api.PublishBody),
    ("POST", "/api/flows/{flow_id}/restore", flows_api.restore, flows_api.RestoreBody),
    ("POST", "/api/flows/{flow_id}/runs", runs_api.launch, runs_api.LaunchBody),
    ("GET", "/api/flows/{flow_id}/runs", runs_api.flow_runs, None),
    ("GET", "/api/flows/{flow_id}/runs/{run_id}", runs_api.run_state, None),
    ("GET", "/api/flows/{flow_id}/runs/{run_id}/nodes/{node_id}", runs_api.node_output, None),
    ("POST", "/api/flows/{flow_id}/preview", previews_api.preview, previews_api.PreviewBody),
    ("POST", "/api/flows/{flow_id}/preview/test-case", previews_api.preview_test_case, previews_api.TestCaseBody),
    ("GET", "/api/me", roles_api.me, None),
    ("GET", "/api/roles", roles_api.list_grants, None),
    ("POST", "/api/roles", roles_api.grant, roles_api.GrantBody),
    ("POST", "/api/roles/revoke", roles_api.revoke, roles_api.PlaceBody),
]


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, **exc.detail)


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, str(exc))


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FlowValidationError)
    check = {"errors": [{"node": e.node, "field": e.field, "message": e.message, "text": str(e)} for e in exc.errors]}
    return error_response(422, str(exc), **check)


async def _shape(request: Request, exc: Exception) -> Response:
    return error_response(422, str(exc))


async def _authenticate(request: Request, call_next: Any) -> Response:
    """With roles on, every API call names its caller (401 otherwise), whatever it touches."""
    if request.url.path.startswith("/api/") and request.url.path != "/api/openapi.json":
        try:
            await run_in_threadpool(caller, request)
        except ApiError as exc:
            return error_response(exc.status, exc.message)
    return await call_next(request)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return error_response(403, str(exc))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail))


def _closing(previews: PreviewService) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        previews.close()  # the sandbox's fork server outlives the app otherwise

    return lifespan


def build_app(
    store_api: FlowStoreAPI,
    runs: RunsService,
    client_dist: Path | None = CLIENT_DIST,
    previews: PreviewService | None = None,
    auth: DesignerAuth | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The app; ``previews`` defaults to previews over the store's catalog and the settings'
    flows folder (where the flows' example data and spec files are). Without ``auth`` every
    caller is the local admin (the embedded default). ``allowed_hosts``: the only ``Host``
    headers answered (others get 400), so that a web page whose name an attacker re-points at
    127.0.0.1 (DNS rebinding) is not same-origin with a designer listening there."""
    if previews is None:
        from dp_settings import load

        previews = PreviewService(store_api.catalog, load().flows_folder())
    routes: list[Any] = [Route(path, endpoint, methods=[method]) for method, path, endpoint, _ in API_ROUTES]
    document = openapi_document(API_ROUTES)

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(document)

    routes.append(Route("/api/openapi.json", openapi, methods=["GET"]))
    if client_dist is not None and (client_dist / "index.html").is_file():
        routes.append(Mount("/", StaticFiles(directory=client_dist, html=True)))
    else:

        async def no_client(request: Request) -> HTMLResponse:
            return HTMLResponse(NO_CLIENT)

        routes.append(Route("/", no_client))
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            FlowNotFound: _not_found,
            Forbidden: _forbidden,
            FlowValidationError: _invalid,
            SpecShapeError: _shape,
            HTTPException: _http,
        },
        lifespan=_closing(previews),
    )
    if auth is not None:
        app.add_middleware(BaseHTTPMiddleware, dispatch=_authenticate)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.state.store_api = store_api
    app.state.runs = runs
    app.state.previews = previews
    app.state.auth = auth
    return app


#: The Host names a designer listening on a loopback address answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def hosts_for(listen_host: str) -> Sequence[str] | None:
    """The Host headers to answer when listening on ``listen_host``: only loopback names on a
    loopback address (nothing else can reach it but a proxy on the machine, which sends the
    address it connects to, as ``dp proxy`` and nginx's default do); any on another address."""
    import ipaddress

    if listen_host == "localhost":
        return LOOPBACK_HOSTS
    try:
        return LOOPBACK_HOSTS if ipaddress.ip_address(listen_host).is_loopback else None
    except ValueError:  # a host name: its own
        return None


__all__ = ["API_ROUTES", "LOOPBACK_HOSTS", "build_app", "check_document", "hosts_for"]
