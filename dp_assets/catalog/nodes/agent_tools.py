"""The tools an ``LlmAgent`` may call (``dp_assets.catalog.nodes.agents``): their declaration in
the node's params, the arguments the model may fill (``{{ args.NAME }}``) as a JSON schema and
the check of what the model sends against it, and :class:`ToolBox`, which runs a declared tool
as the catalog's tool node of its type would (MCP sessions opened once a run)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal, cast

from pydantic import Field

from dp_assets.catalog.base import NodeContext, Params
from dp_assets.catalog.nodes import tools as t
from dp_resources.secrets import SecretScope

ARG_TEMPLATE = re.compile(r"\{\{\s*args\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


class ToolArgument(Params):
    type: Literal["string", "integer", "number", "boolean", "object", "array"] = Field(
        default="string", description="JSON type of the argument the model gives."
    )
    description: str = Field(default="", description="What the argument means, for the model.")
    required: bool = Field(default=True, description="The model must give it.")
    enum: list[t.JsonScalar] | None = Field(default=None, description="The only values allowed.")


class AgentTool(Params):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Name the model calls it by.")
    type: Literal["HttpTool", "ShellTool", "PythonTool", "McpTool"] = Field(
        description="The tool node type it runs, with `params` as that node's params."
    )
    description: str = Field(default="", description="What it does, for the model.")
    params: dict[str, Any] = Field(description="The tool type's params; may use {{ args.NAME }}.")
    arguments: dict[str, ToolArgument] | None = Field(
        default=None,
        description="Arguments the model may give; default: one string per {{ args.NAME }} "
        "(McpTool: the server's input schema).",
    )
    max_calls: int | None = Field(default=None, ge=0, description="Calls of this tool per run.")


# --- arguments -------------------------------------------------------------------------------


def offered_arguments(tool: AgentTool) -> dict[str, ToolArgument]:
    if tool.arguments is not None:
        return dict(tool.arguments)
    names = dict.fromkeys(ARG_TEMPLATE.findall(json.dumps(tool.params)))
    return {name: ToolArgument() for name in names}


def arguments_schema(arguments: dict[str, ToolArgument]) -> dict[str, Any]:
    props = {}
    for name, arg in arguments.items():
        props[name] = {
            "type": arg.type,
            **({"description": arg.description} if arg.description else {}),
            **({"enum": arg.enum} if arg.enum is not None else {}),
        }
    return {
        "type": "object",
        "properties": props,
        "required": [n for n, a in arguments.items() if a.required],
        "additionalProperties": False,
    }


def check_arguments(schema: dict[str, Any], args: Any) -> str | None:
    """Why ``args`` do not fit ``schema`` (properties, required, JSON types), or ``None``."""
    if not isinstance(args, dict):
        return "arguments must be a JSON object"
    props = schema.get("properties") or {}
    extra = sorted(set(args) - set(props))
    if extra:
        return f"unknown argument(s) {', '.join(extra)}; offered: {', '.join(props) or 'none'}"
    missing = [n for n in schema.get("required") or [] if n not in args]
    if missing:
        return f"missing argument(s) {', '.join(missing)}"
    for name, value in args.items():
        spec = props[name] if isinstance(props[name], dict) else {}
        kind = JSON_TYPES.get(spec.get("type", ""))
        bool_for_number = spec.get("type") in ("integer", "number") and isinstance(value, bool)
        if kind and (not isinstance(value, kind) or bool_for_number):
            return f"argument '{name}' must be {spec['type']}"
        if "enum" in spec and value not in spec["enum"]:
            return f"argument '{name}' must be one of {spec['enum']}"
    return None


# --- running tools ---------------------------------------------------------------------------


class ToolBox:
    """The declared tools, run on demand; MCP sessions are opened once and closed at the end."""

    def __init__(self, ctx: NodeContext, tools: Iterable[AgentTool], scope: SecretScope, data: dict[str, Any]):
        self.ctx, self.scope, self.data = ctx, scope, data
        self.tools = {tool.name: tool for tool in tools}
        self.calls: dict[str, int] = {}
        self._mcp: dict[str, Any] = {}
        self._mcp_exits: list[Any] = []
        self._schemas: dict[str, dict[str, Any]] = {}

    def schema(self, tool: AgentTool) -> dict[str, Any]:
        if tool.name not in self._schemas:
            if tool.type == "McpTool" and tool.arguments is None:
                listed = {i.name: i for i in self._connection(tool.params["server"]).list_tools()}
                wanted = tool.params.get("tool")
                if wanted not in listed:
                    raise ValueError(f"MCP tool '{wanted}' is not offered by server '{tool.params['server']}'")
                schema = dict(listed[wanted].input_schema or {"type": "object", "properties": {}})
                fixed = set(tool.params.get("arguments") or {})  # the spec's own arguments win
                schema["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in fixed}
                schema["required"] = [r for r in schema.get("required") or [] if r not in fixed]
                self._schemas[tool.name] = schema
            else:
                self._schemas[tool.name] = arguments_schema(offered_arguments(tool))
        return self._schemas[tool.name]

    def specs(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description or tool.type,
                    "parameters": self.schema(tool),
                },
            }
            for tool in self.tools.values()
        ]

    def _connection(self, server: str) -> Any:
        if server not in self._mcp:
            manager = self.ctx.resource("mcp").connect(server, self.scope)
            self._mcp[server] = manager.__enter__()
            self._mcp_exits.append(manager)
        return self._mcp[server]

    def close(self) -> None:
        for manager in reversed(self._mcp_exits):
            try:
                manager.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - closing must not hide the agent's result
                self.ctx.log.warning("closing an MCP session failed")
        self._mcp_exits.clear()

    def refusal(self, name: str, args: Any) -> str | None:
        tool = self.tools.get(name)
        if tool is None:
            return f"tool '{name}' is not available; available tools: {', '.join(self.tools) or 'none'}"
        if tool.max_calls is not None and self.calls.get(name, 0) >= tool.max_calls:
            return f"tool '{name}' may be called at most {tool.max_calls} time(s)"
        problem = check_arguments(self.schema(tool), args)
        return f"tool '{name}': {problem}" if problem else None

    def run(self, name: str, args: dict[str, Any]) -> t.ToolRun:
        tool = self.tools[name]
        self.calls[name] = self.calls.get(name, 0) + 1
        from dp_assets.catalog import default_catalog

        catalog = self.ctx.catalog or default_catalog()
        model = catalog[tool.type].params_model
        data = {**self.data, "args": args}
        filled = {k: t.fill(v, data, f"tools.{name}.params.{k}", url=k == "url") for k, v in tool.params.items()}
        params = model.model_validate(filled)
        if tool.type == "PythonTool":
            # The catalog's PythonTool node takes PythonToolParams.
            return t.python_call(self.ctx, cast(t.PythonToolParams, params), {}, args, self.scope)
        resolved = self.scope.resolve(params.model_dump(), f"tools.{name}.params")
        if tool.type == "HttpTool":
            return t.http_call(self.ctx.resource("http"), resolved, self.scope)
        if tool.type == "ShellTool":
            return t.shell_call(self.ctx.resource("shell"), resolved, self.scope)
        arguments = {**args, **(resolved.get("arguments") or {})}
        return t.mcp_call(
            self._connection(resolved["server"]),
            resolved["tool"],
            arguments,
            resolved.get("timeout_seconds"),
            self.scope,
        )
