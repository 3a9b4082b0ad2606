"""Tool nodes: ``HttpTool``, ``ShellTool``, ``PythonTool`` and ``McpTool``.

Each reaches outside the flow through a deployment resource that holds the safety policy
(``http``: SSRF guard and caps; ``shell``: off unless enabled, allow-listed programs; ``sandbox``;
``mcp``: servers by name). Secrets are ``${env:NAME}`` references resolved here, at run time,
by a ``SecretScope``; every value, metadata entry and error leaving the node is redacted by it.

Templates: besides the flow's ``{{ params.x }}`` (rendered by the runtime), string params may
use ``{{ input.path }}`` (the upstream value; ``input.0.col`` for a frame's first row),
``{{ row.col }}`` (HttpTool with ``for_each_row``) and ``{{ args.name }}`` (arguments an agent
gave). A whole-string template keeps the value's type; inside a URL the value is URL-quoted.
Data never resolves secrets: only the references the spec's author wrote are sealed (when the
spec's text is rendered) and resolved; a substituted value holding or composing ``${env:...}``
is sent as the literal text it is.

Every call is summarised in the materialisation metadata (``calls``) and the node's value holds
the full result, so the run-scoped IO manager keeps it per run.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import Field

from dp_assets.catalog.base import NodeContext, NodeType, Params
from dp_assets.catalog.nodes.tool_calls import (
    DATA_TEMPLATE,
    MAX_RECORDED_CALLS,
    OPTIONAL_INPUTS,
    JsonScalar,
    TemplateError,
    ToolRun,
    fill,
    guarded,
    json_records,
    lookup,
    prepared,
    record_calls,
    template_data,
)
from dp_assets.deferred import pd
from dp_resources.sandbox.api import SandboxLimits
from dp_resources.secrets import SecretScope, as_written, scope_for

#: What every tool shares moved to tool_calls; re-exported for the agent and the API nodes.
__all__ = [
    "DATA_TEMPLATE",
    "MAX_RECORDED_CALLS",
    "NODE_TYPES",
    "OPTIONAL_INPUTS",
    "HttpToolParams",
    "JsonScalar",
    "McpToolParams",
    "PythonToolParams",
    "ShellToolParams",
    "TemplateError",
    "ToolRun",
    "fill",
    "guarded",
    "http_call",
    "http_tool",
    "json_records",
    "lookup",
    "mcp_call",
    "mcp_tool",
    "prepared",
    "python_call",
    "python_tool",
    "record_calls",
    "shell_call",
    "shell_tool",
    "template_data",
]

# --- HttpTool --------------------------------------------------------------------------------


class BearerAuth(Params):
    type: Literal["bearer"] = Field(default="bearer", description="Authorization: Bearer <token>.")
    token: str = Field(description="The token, normally a secret reference such as ${env:DP_SECRET_API_TOKEN}.")


class BasicAuth(Params):
    type: Literal["basic"] = Field(default="basic", description="HTTP basic authentication.")
    username: str = Field(description="User name; may be a secret reference such as ${env:DP_SECRET_API_USER}.")
    password: str = Field(description="Normally a secret reference such as ${env:DP_SECRET_API_PASSWORD}.")


class HttpToolParams(Params):
    url: str = Field(description="http(s) URL; may use {{ params.x }}, {{ input.x }}, {{ row.x }} (URL-quoted).")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = Field(
        default="GET", description="HTTP method."
    )
    query: dict[str, Any] = Field(default_factory=dict, description="Query string params.")
    headers: dict[str, str] = Field(default_factory=dict, description="Headers; values may hold ${env:NAME} secrets.")
    body: Any = Field(default=None, description="JSON body (any JSON value; templates allowed).")
    content: str | None = Field(default=None, description="Raw text body instead of `body`.")
    auth: BearerAuth | BasicAuth | None = Field(default=None, description="Authorization from secrets.")
    parse: Literal["auto", "json", "text"] = Field(default="auto", description="How to read the response body.")
    timeout_seconds: float | None = Field(
        default=None, gt=0, description="Total time per request (at most the resource's)."
    )
    retries: int | None = Field(
        default=None,
        ge=0,
        le=10,
        description="Retries on 429/5xx/timeouts; default 2 for "
        "GET/HEAD/OPTIONS and 0 otherwise (a retried POST could act twice).",
    )
    backoff_seconds: float = Field(default=0.5, ge=0, description="First wait between retries; doubles each time.")
    max_bytes: int | None = Field(default=None, gt=0, description="Largest response body (at most the resource's).")
    max_redirects: int | None = Field(
        default=None,
        ge=0,
        le=20,
        description="Redirects followed (at most the "
        "resource's, default 5); 0: the 30x response is the value. A redirect to "
        "another origin drops the credentials; https to http is refused.",
    )
    fail_on_status: bool = Field(default=True, description="Fail the node on a final 4xx/5xx answer.")
    for_each_row: bool = Field(default=False, description="One request per input row ({{ row.col }}); output a frame.")
    max_requests: int = Field(default=100, ge=1, description="Most requests for_each_row may send.")


def _http_with(http: Any, p: dict[str, Any]) -> Any:
    timeout = p.get("timeout_seconds")
    if not timeout or timeout >= http.timeout_seconds:
        return http
    fields = {name: getattr(http, name) for name in type(http).model_fields}
    return type(http)(**{**fields, "timeout_seconds": timeout})


def http_call(http: Any, p: dict[str, Any], scope: SecretScope) -> ToolRun:
    """One request from prepared params ``p`` (templates filled, secrets resolved)."""
    from dp_resources.http import HttpStatusError, send_with_retries

    headers = dict(p.get("headers") or {})
    auth = p.get("auth")
    if auth and auth["type"] == "bearer":
        headers["Authorization"] = f"Bearer {auth['token']}"
        scope.add(auth["token"])
    elif auth:
        import base64

        scope.add_basic_auth(auth["username"], auth["password"])
        credentials = f"{auth['username']}:{auth['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
    method = p["method"]
    retries = p["retries"] if p.get("retries") is not None else (2 if method in ("GET", "HEAD", "OPTIONS") else 0)
    content = p["content"].encode() if p.get("content") is not None else None
    started = time.monotonic()
    try:
        response = send_with_retries(
            _http_with(http, p),
            method,
            p["url"],
            params={k: v for k, v in (p.get("query") or {}).items() if v is not None} or None,
            json=p.get("body") if content is None else None,
            content=content,
            headers=headers,
            retries=retries,
            backoff_seconds=p.get("backoff_seconds", 0.5),
            max_bytes=p.get("max_bytes"),
            max_redirects=p.get("max_redirects"),
            sensitive_headers=scope.sensitive_headers(headers),
            sensitive_body=scope.holds_secret(
                p["content"] if content is not None else json.dumps(p.get("body"), default=str)
            ),
        )
    except HttpStatusError as exc:
        if p.get("fail_on_status", True):
            raise
        response = exc.response
    parse = p.get("parse", "auto")
    is_json = parse == "json" or (parse == "auto" and "json" in response.headers.get("content-type", ""))
    parsed = response.json() if is_json and response.content else None
    value = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "json": parsed,
        "text": None if is_json else response.text,
        "url": response.url,
        "duration_s": round(time.monotonic() - started, 4),
    }
    record = {
        "method": method,
        "url": response.url,
        "status": response.status_code,
        "bytes": len(response.content),
        "duration_s": value["duration_s"],
    }
    return ToolRun(scope.redact_value(value), scope.redact_value(record))


def http_tool(ctx: NodeContext, params: HttpToolParams, inputs: dict[str, Any]) -> Any:
    """Send an HTTP request (any method, templated URL/headers/body, secrets from env); the response is the value."""
    scope = scope_for(ctx.resources)
    http = ctx.resource("http")
    with guarded(ctx, "HttpTool", scope):
        data = template_data(inputs)
        if not params.for_each_row:
            run = http_call(http, prepared(ctx, params, data, scope), scope)
            record_calls(ctx, scope, [run.record])
            return run.value
        frame = data.get("input")
        if not isinstance(frame, pd.DataFrame):
            raise TemplateError("for_each_row needs one DataFrame input")
        if len(frame) > params.max_requests:
            raise TemplateError(
                f"for_each_row would send {len(frame)} requests, over max_requests={params.max_requests}"
            )
        runs = [
            http_call(http, prepared(ctx, params, {**data, "row": row}, scope), scope) for row in json_records(frame)
        ]
        record_calls(ctx, scope, [r.record for r in runs])
        out = frame.copy()
        out["response_status"] = [r.value["status"] for r in runs]
        out["response"] = [r.value["json"] if r.value["json"] is not None else r.value["text"] for r in runs]
        return out


# --- ShellTool -------------------------------------------------------------------------------


class ShellToolParams(Params):
    argv: list[str] = Field(
        min_length=1, description="Program and arguments, one list item each; never parsed by a shell."
    )
    cwd: str | None = Field(default=None, description="Working folder relative to the shell root.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="The only environment the program gets (plus PATH and LANG); values may hold ${env:NAME} secrets.",
    )
    stdin: str | None = Field(default=None, description="Text sent to the program's standard input.")
    timeout_seconds: float | None = Field(default=None, gt=0, description="At most the resource's timeout.")
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0], description="Exit codes that count as success.")


def shell_call(shell: Any, p: dict[str, Any], scope: SecretScope) -> ToolRun:
    result = shell.run(
        [str(a) for a in p["argv"]],
        cwd=p.get("cwd"),
        env=p.get("env") or {},
        stdin=p.get("stdin"),
        timeout_seconds=p.get("timeout_seconds"),
    )
    value = {
        "argv": list(result.argv),
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "duration_s": round(result.duration_s, 4),
        "truncated": result.truncated,
    }
    record = {
        "program": result.argv[0],
        "args": len(result.argv) - 1,
        "exit_code": result.exit_code,
        "duration_s": value["duration_s"],
    }
    return ToolRun(scope.redact_value(value), scope.redact_value(record))


def shell_tool(ctx: NodeContext, params: ShellToolParams, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run an allow-listed program with an argv list (no shell); stdout, stderr and exit code are the value."""
    scope = scope_for(ctx.resources)
    shell = ctx.resource("shell")
    with guarded(ctx, "ShellTool", scope):
        run = shell_call(shell, prepared(ctx, params, template_data(inputs), scope, url_fields=()), scope)
        record_calls(ctx, scope, [run.record])
        if run.value["exit_code"] not in params.ok_exit_codes:
            raise RuntimeError(
                f"'{params.argv[0]}' exited with {run.value['exit_code']} (ok_exit_codes: "
                f"{params.ok_exit_codes}); stderr: {run.value['stderr'][-500:]}"
            )
        return run.value


# --- PythonTool ------------------------------------------------------------------------------


class PythonToolParams(Params):
    code: str = Field(
        min_length=1,
        description="Python run in the sandbox; it sees `inputs` (upstream values by "
        "node id), `df` (the only one), `params`, `args`, `pd`, `np`, and sets `result`.",
    )
    variables: dict[str, JsonScalar] = Field(default_factory=dict, description="Extra values in `params`.")
    limits: SandboxLimits | None = Field(default=None, description="This node's sandbox limits.")


def python_call(
    ctx: NodeContext, params: PythonToolParams, inputs: dict[str, Any], args: dict[str, Any], scope: SecretScope
) -> ToolRun:
    sandbox = ctx.resource("sandbox")
    names = {ref.removesuffix(".result").replace(".", "_"): value for ref, value in inputs.items()}
    # PythonTool resolves no secrets: code and variables are run as the author wrote them
    outcome = sandbox.run(
        as_written(params.code),
        {
            "inputs": names,
            "df": next(iter(inputs.values())) if len(inputs) == 1 else None,
            "params": {**dict(ctx.flow_params), **as_written(params.variables)},
            "args": args,
        },
        mode="script",
        limits=params.limits,
    )
    if outcome.stdout:
        ctx.log.info(scope.redact(f"{ctx.node_id} printed:\n{outcome.stdout[-5000:]}"))
    record = {"sandbox": "script", "duration_s": round(outcome.duration_s, 4), "printed": len(outcome.stdout)}
    return ToolRun(scope.redact_value(outcome.value), record)


def python_tool(ctx: NodeContext, params: PythonToolParams, inputs: dict[str, Any]) -> Any:
    """Run a Python snippet in the sandbox (as RunPythonScript does); the value of `result` is the value."""
    scope = scope_for(ctx.resources)
    with guarded(ctx, "PythonTool", scope):
        run = python_call(ctx, params, inputs, {}, scope)
        record_calls(ctx, scope, [run.record])
        return run.value


# --- McpTool ---------------------------------------------------------------------------------


class McpToolParams(Params):
    server: str = Field(description="Name of an MCP server in the deployment's `mcp` resource.")
    tool: str = Field(description="Tool to call (see `dp mcp-tools SERVER`).")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Tool arguments; templates allowed.")
    timeout_seconds: float | None = Field(default=None, gt=0, description="At most the server's timeout.")
    fail_on_error: bool = Field(default=True, description="Fail the node when the tool reports an error.")


def mcp_call(
    connection: Any, tool: str, arguments: dict[str, Any], timeout: float | None, scope: SecretScope
) -> ToolRun:
    result = connection.call_tool(tool, arguments, timeout)
    record = {
        "server": connection.name,
        "tool": tool,
        "is_error": result["is_error"],
        "duration_s": result["duration_s"],
    }
    return ToolRun(scope.redact_value(result), scope.redact_value(record))


def mcp_tool(ctx: NodeContext, params: McpToolParams, inputs: dict[str, Any]) -> dict[str, Any]:
    """Call a tool on a Model Context Protocol server (stdio or streamable HTTP); its result is the value."""
    scope = scope_for(ctx.resources)
    with guarded(ctx, "McpTool", scope):
        p = prepared(ctx, params, template_data(inputs), scope, url_fields=())
        with ctx.resource("mcp").connect(params.server, scope) as connection:
            run = mcp_call(connection, params.tool, p["arguments"], params.timeout_seconds, scope)
        record_calls(ctx, scope, [run.record])
        if run.value["is_error"] and params.fail_on_error:
            raise RuntimeError(f"MCP tool '{params.tool}' reported an error: {run.value['text'][:500]}")
        return run.value


NODE_TYPES = [
    NodeType(
        "HttpTool",
        HttpToolParams,
        http_tool,
        "tool",
        inputs=OPTIONAL_INPUTS,
        kinds=frozenset({"http"}),
        resources=frozenset({"http", "secrets"}),
        side_effects=True,
        data_templates=True,
    ),
    NodeType(
        "ShellTool",
        ShellToolParams,
        shell_tool,
        "tool",
        inputs=OPTIONAL_INPUTS,
        kinds=frozenset({"shell"}),
        resources=frozenset({"shell", "secrets"}),
        side_effects=True,
        data_templates=True,
    ),
    NodeType(
        "PythonTool",
        PythonToolParams,
        python_tool,
        "tool",
        inputs=OPTIONAL_INPUTS,
        kinds=frozenset({"python"}),
        resources=frozenset({"sandbox", "secrets"}),
        data_templates=True,
    ),
    NodeType(
        "McpTool",
        McpToolParams,
        mcp_tool,
        "tool",
        inputs=OPTIONAL_INPUTS,
        kinds=frozenset({"mcp"}),
        resources=frozenset({"mcp", "secrets"}),
        side_effects=True,
        data_templates=True,
    ),
]
