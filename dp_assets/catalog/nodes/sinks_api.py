"""Sinks that talk to people and services: HTTP requests, notifications, and a results display.

``APIRequest`` sends rows (one request per row, or batches) through ``HttpResource``. Each request
carries an idempotency key derived from its content (flow, node, method, URL and body), so every
retry, and a re-run of a step after a worker died, sends the same key and a server that honours
it applies the effect once (E6).

``SendNotification`` fills its message with ``safe_format`` (plain ``{name}`` fields only) from
the flow params, a summary of the data, and the first row's values, and sends it through the
platform's one notification resource (as ``notify:`` does); the webhook (``${env:NAME}`` or a name
the deployment configured) and ``${env:NAME}`` recipients are the author's references only.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Literal

from pydantic import Field, model_validator

from dp_assets.catalog.base import NodeContext, NodeType, Params
from dp_assets.catalog.nodes.sources_api import as_written_params, secret_headers
from dp_assets.deferred import pd
from dp_assets.spec.secret_forms import refuse_header_env
from dp_resources.secrets import SecretScope, scope_for

# --- APIRequest ------------------------------------------------------------------------------


class APIRequestParams(Params):
    url: str = Field(description="http(s) URL the rows are sent to.")
    method: Literal["POST", "PUT", "PATCH", "DELETE", "GET"] = Field(default="POST", description="HTTP method.")
    mode: Literal["row", "batch"] = Field(default="row", description="One request per row, or per batch of rows.")
    batch_size: int = Field(default=100, gt=0, description="Batch mode: rows per request.")
    body_key: str | None = Field(
        default=None, description="Batch mode: send {body_key: [rows]} instead of a bare list."
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers; values may hold ${env:NAME} secrets (only names the "
        "deployment allows, default DP_SECRET_*), kept on the URL's origin.",
    )
    rate_limit: float | None = Field(default=None, gt=0, description="Most requests per second.")
    idempotency_header: str | None = Field(
        default="Idempotency-Key", description="Header carrying a key derived from the request's content."
    )
    retries: int = Field(default=3, ge=0, le=20, description="Retries on 429/5xx/timeouts.")
    backoff_seconds: float = Field(default=0.5, ge=0, description="First wait between retries; doubles each time.")
    max_retry_after: float = Field(default=60.0, ge=0, description="Longest Retry-After honoured.")
    errors: Literal["raise", "collect"] = Field(
        default="raise", description="'collect': record a failed request in the output and go on."
    )
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


def idempotency_key(ctx: NodeContext, method: str, url: str, body: Any) -> str:
    """The same key for the same request content, on every attempt and every re-run."""
    canonical = json.dumps(
        [ctx.flow_id, ctx.node_id, method, url, body], sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:40]


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records: nulls as null, timestamps as ISO text (``df.to_json``)."""
    if df.empty:
        return [{} for _ in range(len(df))]
    return json.loads(df.to_json(orient="records", date_format="iso", date_unit="us"))


def api_request(ctx: NodeContext, params: APIRequestParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Send the input's rows to an HTTP API, per row or in batches, rate limited; returns a request log."""
    from dp_assets.catalog.nodes.tools import guarded

    scope = scope_for(ctx.resources)
    with guarded(ctx, "APIRequest", scope):
        headers = secret_headers(params, scope)
        return scope.redact_value(_send(ctx, as_written_params(params), inputs, headers, scope))


def _send(
    ctx: NodeContext, params: APIRequestParams, inputs: dict[str, Any], headers: dict[str, str], scope: SecretScope
) -> pd.DataFrame:
    from dp_resources.http import HttpStatusError, send_with_retries

    http = ctx.resource("http")
    df: pd.DataFrame = inputs["input"]
    records = json_records(df)
    size = 1 if params.mode == "row" else params.batch_size
    secret_names = scope.sensitive_headers(headers)
    log = []
    interval = 1 / params.rate_limit if params.rate_limit else 0.0
    last_sent = 0.0
    for number, start in enumerate(range(0, len(records), size)):
        chunk = records[start : start + size]
        body: Any = chunk[0] if params.mode == "row" else ({params.body_key: chunk} if params.body_key else chunk)
        key = idempotency_key(ctx, params.method, params.url, body)
        send_headers = {**headers, **({params.idempotency_header: key} if params.idempotency_header else {})}
        wait = last_sent + interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        last_sent = time.monotonic()
        entry: dict[str, Any] = {"request": number, "first_row": start, "rows": len(chunk), "idempotency_key": key}
        try:
            response = send_with_retries(
                http,
                params.method,
                params.url,
                json=None if params.method == "GET" else body,
                headers=send_headers,
                retries=params.retries,
                backoff_seconds=params.backoff_seconds,
                max_retry_after=params.max_retry_after,
                max_redirects=params.max_redirects,
                sensitive_headers=secret_names,
            )
            entry.update(status_code=response.status_code, response=response.text[:1000], error=None)
        except HttpStatusError as exc:
            if params.errors == "raise":
                raise
            entry.update(status_code=exc.response.status_code, response=exc.response.text[:1000], error=str(exc))
        except Exception as exc:
            if params.errors == "raise":
                raise
            entry.update(status_code=None, response=None, error=f"{type(exc).__name__}: {exc}")
        log.append(entry)
    ctx.add_metadata(requests=len(log), failed=sum(1 for e in log if e["error"]))
    columns = ["request", "first_row", "rows", "idempotency_key", "status_code", "response", "error"]
    return pd.DataFrame(log, columns=columns)


def api_request_schema(params: APIRequestParams, inputs: dict) -> dict[str, str]:
    return {
        "request": "integer",
        "first_row": "integer",
        "rows": "integer",
        "idempotency_key": "string",
        "status_code": "any",
        "response": "any",
        "error": "any",
    }


# --- DisplayResults --------------------------------------------------------------------------


class DisplayResultsParams(Params):
    n: int = Field(default=20, ge=0, le=1000, description="Rows in the preview.")
    describe: bool = Field(default=True, description="Add describe() statistics.")
    include: Literal["all", "number"] | None = Field(
        default="all", description="Columns described (DataFrame.describe include); null: numbers only."
    )
    percentiles: list[float] | None = Field(
        default=None, description="Percentiles in the statistics (describe's percentiles); default 25/50/75."
    )


def _markdown(df: pd.DataFrame, index: bool = False) -> str:
    frame = df.reset_index() if index else df

    def cell(value: Any) -> str:
        text = "" if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:80]

    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def statistics(df: pd.DataFrame, params: DisplayResultsParams) -> pd.DataFrame | None:
    if not len(df.columns):
        return None
    include = params.include if params.include != "number" else None
    return df.describe(include=include, percentiles=params.percentiles)


def display_results(ctx: NodeContext, params: DisplayResultsParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Show a preview and ``describe()`` statistics in the Dagster UI; the input passes through.

    Metadata: ``dp/preview`` (the first ``n`` rows as a markdown table), ``statistics`` (describe()
    as a markdown table) and ``dp/statistics`` (the same as JSON, statistic -> column -> value).
    The tables are markdown metadata, so the Dagster UI renders them as tables.
    """
    from dagster import MetadataValue

    df: pd.DataFrame = inputs["input"]
    ctx.add_metadata(**{"dp/preview": MetadataValue.md(_markdown(df.head(params.n)) + f"\n\n{len(df)} rows")})
    stats = statistics(df, params) if params.describe else None
    if stats is not None:
        ctx.add_metadata(
            statistics=MetadataValue.md(_markdown(stats, index=True)),
            **{"dp/statistics": json.loads(stats.to_json(orient="index", date_format="iso"))},
        )
    ctx.log.info(f"{ctx.node_id}: {len(df)} rows, columns {', '.join(map(str, df.columns))}")
    return df


# --- SendNotification ------------------------------------------------------------------------


class SendNotificationParams(Params):
    channel: Literal["webhook", "email"] = Field(description="Send to a webhook (chat) or by e-mail.")
    webhook: str | None = Field(
        default=None,
        description="'${env:NAME}' (the variable holds the URL), or the "
        "name of a webhook the deployment configured (DP_WEBHOOK_<NAME>_URL).",
    )
    to: list[str] | None = Field(default=None, description="E-mail recipients: addresses or '${env:NAME}'.")
    subject: str = Field(
        default="Flow {flow_id}: {row_count} rows", description="E-mail subject; a template as `message`."
    )
    message: str = Field(
        description="Template: {name} fields from flow params, row_count, column_count, columns, "
        "preview, flow_id, node_id, run_id, and the first row's columns. No attribute access."
    )
    payload_key: str = Field(default="text", description="Webhook JSON key of the message (Slack: text).")
    when: Literal["always", "non_empty", "empty"] = Field(
        default="always", description="Send always, or only when the input has rows / has none."
    )
    preview_rows: int = Field(default=5, ge=0, le=100, description="Rows shown by the {preview} field.")

    @model_validator(mode="after")
    def _target(self) -> SendNotificationParams:
        if self.channel == "webhook" and not self.webhook:
            raise ValueError("channel 'webhook' needs `webhook` ('${env:NAME}' or a configured webhook name)")
        if self.channel == "email" and not self.to:
            raise ValueError("channel 'email' needs `to`")
        return self


def template_values(ctx: NodeContext, df: pd.DataFrame, preview_rows: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if len(df):
        values.update({str(c): v for c, v in json_records(df.head(1))[0].items()})
    values.update({k: v for k, v in ctx.flow_params.items()})
    values.update(
        row_count=len(df),
        column_count=len(df.columns),
        columns=", ".join(map(str, df.columns)),
        preview=_markdown(df.head(preview_rows)),
        flow_id=ctx.flow_id,
        node_id=ctx.node_id,
        run_id=ctx.run_id,
    )
    return values


def send_notification(ctx: NodeContext, params: SendNotificationParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Send a message templated from the data and params to a Slack-style webhook or by e-mail."""
    from dp_assets.catalog.nodes.tools import guarded
    from dp_resources.notifications import as_shown, safe_format

    df: pd.DataFrame = inputs["input"]
    if (params.when == "non_empty" and not len(df)) or (params.when == "empty" and len(df)):
        ctx.log.info(f"{ctx.node_id}: nothing sent (when: {params.when}, {len(df)} rows)")
        return df
    scope = scope_for(ctx.resources)
    written = as_written_params(params)  # the texts sent; only the targets resolve secrets
    values = template_values(ctx, df, params.preview_rows)
    notifications = ctx.resource("notifications")
    with guarded(ctx, "SendNotification", scope):
        message = safe_format(written.message, values)
        if params.channel == "webhook":
            status = notifications.post_webhook(
                params.webhook or "",
                {params.payload_key: message},
                http=ctx.resource("http"),
                scope=scope,
                where="params.webhook",
            )
            ctx.log.info(f"{ctx.node_id}: webhook {as_shown(params.webhook or '')} answered {status}")
        else:
            notifications.send_email(
                list(params.to or []), safe_format(written.subject, values), message, scope=scope, where="params.to"
            )
            ctx.log.info(f"{ctx.node_id}: e-mail sent to {len(params.to or [])} recipient(s)")
    return df


NODE_TYPES = [
    NodeType(
        "APIRequest",
        APIRequestParams,
        api_request,
        "sink",
        resources=frozenset({"http", "secrets"}),
        kinds=frozenset({"pandas", "api"}),
        side_effects=True,
        infer_schema=api_request_schema,
    ),
    NodeType(
        "DisplayResults",
        DisplayResultsParams,
        display_results,
        "sink",
        infer_schema=lambda params, inputs: inputs["input"],
    ),
    NodeType(
        "SendNotification",
        SendNotificationParams,
        send_notification,
        "sink",
        resources=frozenset({"notifications", "http", "secrets"}),
        side_effects=True,
        produces_asset=False,
        infer_schema=lambda params, inputs: inputs["input"],
    ),
]
