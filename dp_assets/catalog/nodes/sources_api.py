"""API sources: JSON from an HTTP endpoint (paginated, retried), and the event that started a run.

``ApiEndpoint`` goes through ``HttpResource`` (SSRF guard, byte cap, total timeout) and
``send_with_retries`` (429/5xx retried, ``Retry-After`` honoured). Secret headers come from the
``secrets`` resource, like the tool nodes': ``headers`` values may hold ``${env:NAME}`` the spec's
author wrote (the old ``header_env`` is read as that, ``dp_assets.spec.secret_forms``); only names
the deployment allows (default ``DP_SECRET_*``), their values are redacted from the output,
metadata and errors, and they are not sent to another origin: not after a redirect
(``max_redirects``), not to a next-page link. ``${env:NAME}`` text in other params is not resolved
and is sent as written.

``WebhookListener`` reads the payload of the event that triggered the run. Contract with the
triggers: a run started by an event has the flow param ``event`` (type ``object``) holding the
event's data; the node turns it, or the list at ``record_path`` inside it, into rows.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dp_assets.catalog.base import (
    NO_INPUTS,
    ColumnSchema,
    NodeContext,
    NodeType,
    Params,
)
from dp_assets.deferred import pd
from dp_assets.spec.secret_forms import refuse_header_env
from dp_resources.secrets import SecretScope, as_written, scope_for, without_credentials

LogicalType = Literal["integer", "float", "string", "boolean", "datetime", "date", "any"]
JsonScalar = str | int | float | bool | None


def walk_path(data: Any, path: str | list[str] | None, where: str) -> Any:
    """The value at a dotted path (or list of keys) inside parsed JSON."""
    if path is None or path == "" or path == []:
        return data
    keys = path.split(".") if isinstance(path, str) else list(path)
    for key in keys:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.lstrip("-").isdigit() and -len(data) <= int(key) < len(data):
            data = data[int(key)]
        else:
            raise ValueError(f"{where}: no '{key}' at path {'.'.join(keys)}")
    return data


def records_at(data: Any, path: str | list[str] | None, where: str) -> list[Any]:
    found = walk_path(data, path, where)
    if found is None:
        return []
    return found if isinstance(found, list) else [found]


class Pagination(Params):
    """How to ask for the next page; stops at an empty page, a missing cursor/link, or ``max_pages``."""

    type: Literal["page", "offset", "cursor", "next_link"] = Field(
        description="page number, row offset, a cursor from the response, or the next URL (Link header or `next_path`)."
    )
    param: str | None = Field(
        default=None,
        description="Query param of the page number / offset / cursor (default 'page', 'offset', 'cursor').",
    )
    start: int = Field(default=1, description="First page number (page) ; offsets start at 0.")
    page_size: int | None = Field(default=None, gt=0, description="Rows per page, sent as `size_param`.")
    size_param: str = Field(default="limit", description="Query param that carries `page_size`.")
    cursor_path: str | None = Field(default=None, description="Path of the next cursor in the response.")
    next_path: str | None = Field(
        default=None, description="Path of the next URL in the response; default: the Link header."
    )
    max_pages: int = Field(default=100, ge=1, description="Most pages fetched.")


class ApiEndpointParams(Params):
    url: str = Field(description="http(s) URL of the first page.")
    method: Literal["GET", "POST"] = Field(default="GET", description="HTTP method.")
    query: dict[str, JsonScalar] = Field(default_factory=dict, description="Query string params.")
    body: dict[str, Any] | list[Any] | None = Field(default=None, description="JSON body for POST.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers; values may hold ${env:NAME} secrets (only names the "
        "deployment allows, default DP_SECRET_*), kept on the URL's origin.",
    )
    record_path: str | list[str] | None = Field(
        default=None, description="Path to the list of records in the response (dotted or keys)."
    )
    sep: str = Field(default=".", description="Separator of nested keys in column names (json_normalize).")
    max_level: int | None = Field(
        default=None, description="Levels of nesting flattened (json_normalize); default all."
    )
    pagination: Pagination | None = Field(default=None, description="How to fetch further pages; default one request.")
    retries: int = Field(default=3, ge=0, le=20, description="Retries on 429/5xx/timeouts.")
    backoff_seconds: float = Field(default=0.5, ge=0, description="First wait between retries; doubles each time.")
    max_retry_after: float = Field(default=60.0, ge=0, description="Longest Retry-After honoured.")
    columns: dict[str, LogicalType] | None = Field(default=None, description="Declared output schema.")
    max_redirects: int | None = Field(
        default=None,
        ge=0,
        le=20,
        description="Redirects followed (at most the "
        "http resource's, default 5); 0: none. Credentials never follow a "
        "redirect to another origin; https to http is refused.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_header_env(cls, data: Any) -> Any:
        return refuse_header_env(data)


def as_written_params(params: Any) -> Any:
    """``params`` with secret references shown as the author wrote them: these nodes resolve none."""
    return type(params).model_validate(as_written(params.model_dump()))


def secret_headers(params: Any, scope: SecretScope) -> dict[str, str]:
    """The request's headers, the author's ``${env:}`` references resolved by ``scope``.

    Called before ``as_written_params``: only the sealed references of the author's own text resolve.
    """
    return scope.resolve(dict(params.headers), "params.headers")


def _next_link(headers: dict[str, str]) -> str | None:
    """The ``rel="next"`` URL of an RFC 8288 ``Link`` header."""
    link = headers.get("link")
    if not link:
        return None
    for part in link.split(","):
        url, _, rest = part.partition(";")
        if 'rel="next"' in rest.replace("'", '"') or "rel=next" in rest:
            return url.strip().strip("<>")
    return None


def api_endpoint(ctx: NodeContext, params: ApiEndpointParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Fetch JSON records from an HTTP API (``pd.json_normalize`` of ``record_path``), paginated."""
    from dp_assets.catalog.nodes.tools import guarded

    scope = scope_for(ctx.resources)
    with guarded(ctx, "ApiEndpoint", scope):
        headers = secret_headers(params, scope)
        return scope.redact_value(_fetch(ctx, as_written_params(params), headers, scope))


def _fetch(ctx: NodeContext, params: ApiEndpointParams, headers: dict[str, str], scope: SecretScope) -> pd.DataFrame:
    from dp_resources.http import origin, send_with_retries

    http = ctx.resource("http")
    secret_names = scope.sensitive_headers(headers)
    pager = params.pagination
    query: dict[str, Any] = {k: v for k, v in params.query.items() if v is not None}
    url = params.url
    records: list[Any] = []
    pages = 0
    if pager and pager.type in ("page", "offset"):
        query[pager.param or pager.type] = pager.start if pager.type == "page" else 0
    if pager and pager.page_size:
        query[pager.size_param] = pager.page_size
    while True:
        response = send_with_retries(
            http,
            params.method,
            url,
            params=query or None,
            json=params.body,
            headers=headers,
            retries=params.retries,
            backoff_seconds=params.backoff_seconds,
            max_retry_after=params.max_retry_after,
            max_redirects=params.max_redirects,
            sensitive_headers=secret_names,
        )
        try:
            payload = response.json()
        except ValueError as exc:
            raise ValueError(f"{response.url} did not answer JSON: {exc}") from None
        page = records_at(payload, params.record_path, f"response of {response.url}")
        records.extend(page)
        pages += 1
        if not pager or not page or pages >= pager.max_pages:
            break
        if pager.type == "page":
            query[pager.param or "page"] += 1
        elif pager.type == "offset":
            query[pager.param or "offset"] += len(page)
        elif pager.type == "cursor":
            cursor = (
                walk_path(payload, pager.cursor_path or "next_cursor", "cursor_path")
                if isinstance(payload, dict)
                else None
            )
            if cursor in (None, ""):
                break
            query[pager.param or "cursor"] = cursor
        else:
            nxt = (
                walk_path(payload, pager.next_path, "next_path")
                if pager.next_path
                else _next_link(dict(response.headers))
            )
            if not nxt:
                break
            url, query = str(_join(response.url, nxt)), {}
            if origin(url) != origin(params.url):  # a next-page link elsewhere gets no credentials
                headers = without_credentials(headers, secret_names)
    ctx.add_metadata(pages=pages, records=len(records))
    df = pd.json_normalize(records, sep=params.sep, max_level=params.max_level) if records else pd.DataFrame()
    if params.columns:
        missing = [c for c in params.columns if c not in df.columns]
        if missing and len(df):
            raise ValueError(f"the API's records lack declared column(s): {', '.join(missing)}")
    return df


def _join(base: str, link: str) -> Any:
    import httpx

    return httpx.URL(base).join(link)


# --- WebhookListener -------------------------------------------------------------------------


class WebhookListenerParams(Params):
    param: str = Field(default="event", description="The flow param that holds the event's data.")
    record_path: str | list[str] | None = Field(
        default=None, description="Path to a list of records inside the event; default: one row."
    )
    sep: str = Field(default=".", description="Separator of nested keys in column names (json_normalize).")
    max_level: int | None = Field(
        default=None, description="Levels of nesting flattened (json_normalize); default all."
    )
    required: bool = Field(default=True, description="Fail when the run was not started by an event (else no rows).")
    columns: dict[str, LogicalType] | None = Field(
        default=None,
        description="Declared output schema, converted as FileInput converts it (integer is nullable Int64, "
        "boolean nullable boolean...); a value that does not convert, or a declared column no record has, "
        "fails the run naming it.",
    )


def webhook_listener(ctx: NodeContext, params: WebhookListenerParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """The payload of the event that started the run, as rows (``pd.json_normalize``)."""
    event = ctx.flow_params.get(params.param)
    if event is None:
        if params.required:
            raise ValueError(
                f"flow param '{params.param}' is empty: this run was not started by an event. "
                f"Declare `{params.param}: {{type: object}}` and trigger the flow with an event, "
                "or set required: false"
            )
        return _typed(ctx, params, pd.DataFrame(columns=list(params.columns or [])))
    if not isinstance(event, (dict, list)):
        raise ValueError(f"flow param '{params.param}' holds {type(event).__name__}, not an event object")
    records = records_at(event, params.record_path, f"event param '{params.param}'")
    ctx.add_metadata(records=len(records))
    if not records:
        return _typed(ctx, params, pd.DataFrame(columns=list(params.columns or [])))
    df = pd.json_normalize(records, sep=params.sep, max_level=params.max_level)
    missing = [c for c in params.columns or {} if c not in df.columns]
    if missing:
        raise ValueError(
            f"event param '{params.param}': no record has the declared column(s) {', '.join(missing)} "
            f"(the records have: {', '.join(map(str, df.columns))})"
        )
    return _typed(ctx, params, df)


def _typed(ctx: NodeContext, params: WebhookListenerParams, df: pd.DataFrame) -> pd.DataFrame:
    """The declared columns converted as ``FileInput`` converts them: an event is outside data,
    and ``dp validate`` already told the nodes downstream these types."""
    from dp_assets.catalog.conversions import convert_declared

    if not params.columns:
        return df
    return convert_declared(
        df, params.columns, f"flow '{ctx.flow_id}', node '{ctx.node_id}', event param '{params.param}'"
    )


def _declared(params: Any, inputs: dict) -> ColumnSchema | None:
    return dict(params.columns) if params.columns else None


NODE_TYPES = [
    NodeType(
        "ApiEndpoint",
        ApiEndpointParams,
        api_endpoint,
        "source",
        inputs=NO_INPUTS,
        resources=frozenset({"http", "secrets"}),
        kinds=frozenset({"pandas", "api"}),
        infer_schema=_declared,
    ),
    NodeType(
        "WebhookListener",
        WebhookListenerParams,
        webhook_listener,
        "source",
        inputs=NO_INPUTS,
        kinds=frozenset({"pandas", "webhook"}),
        infer_schema=_declared,
    ),
]
