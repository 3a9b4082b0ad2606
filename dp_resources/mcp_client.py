"""``McpResource``: call tools on Model Context Protocol servers with the official ``mcp`` SDK.

Servers are named in the deployment's config, never in specs: a spec says ``server: search`` and
``tool: lookup``, and only the deployment decides which command runs (stdio) or which URL is
reached (streamable HTTP), with which environment and headers (``${env:NAME}`` references,
resolved when connecting and redacted afterwards). ``allowed_tools`` narrows what a server may be
asked to do; a call to anything else is refused before it is sent. Over HTTP, the SDK follows a
redirect only within the endpoint's origin (or its https upgrade), so the configured headers never
reach another host, and at most ``max_redirects`` of them.

The SDK is async; a ``McpConnection`` runs one client on an anyio blocking portal (its own event
loop thread), so a node or an agent can make several calls over one session with plain calls.
A stdio server's stderr goes to a temporary file, not to the step's compute log (it may print
what it was given), and its tail is shown, redacted, only when something fails.

The server list may be kept in a YAML/JSON file named by ``DP_MCP_CONFIG``
(``McpResource.from_config_file(settings.mcp_config)``); ``dp mcp-tools`` lists the tools of each
server like ``dp nodes``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from dp_resources.secrets import SecretScope

CONFIG_ENV = "DP_MCP_CONFIG"


class McpError(RuntimeError):
    """The server failed, timed out, or answered too much."""


class McpRefused(PermissionError):
    """The server or tool is not configured/allowed by the deployment."""


class McpServer(dg.Config):
    """One MCP server the deployment offers to flows."""

    transport: Literal["stdio", "http"] = Field(
        default="stdio", description="stdio (a local command) or streamable HTTP."
    )
    command: str | None = Field(default=None, description="stdio: the program to start.")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    env: dict[str, str] = Field(
        default_factory=dict, description="stdio: extra environment; values may be ${env:NAME}."
    )
    cwd: str | None = Field(default=None, description="stdio: working folder.")
    url: str | None = Field(default=None, description="http: the endpoint, e.g. https://tools.internal/mcp.")
    headers: dict[str, str] = Field(default_factory=dict, description="http: headers; values may be ${env:NAME}.")
    allowed_tools: list[str] | None = Field(default=None, description="Tools flows may call; unset: every listed tool.")
    max_redirects: int = Field(
        default=3,
        ge=0,
        description="http: redirects followed, each within the "
        "endpoint's origin (0: none); a redirect elsewhere is an error.",
    )
    timeout_seconds: float = Field(default=60.0, gt=0, description="Longest connect or call.")
    max_result_bytes: int = Field(default=1_000_000, gt=0, description="Largest tool result accepted.")


@dataclass(frozen=True)
class McpToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]


class McpResource(dg.ConfigurableResource):
    """The MCP servers flows may use, by name."""

    servers: dict[str, McpServer] = Field(default_factory=dict, description="Server name -> how to reach it.")

    @classmethod
    def from_config_file(cls, path: str | None) -> McpResource:
        """Servers from a YAML/JSON file, the deployment's ``DP_MCP_CONFIG`` (none when unset)."""
        if not path:
            return cls()
        import yaml

        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        return cls(servers={name: McpServer(**spec) for name, spec in (data.get("servers") or data).items()})

    def server(self, name: str) -> McpServer:
        try:
            return self.servers[name]
        except KeyError:
            raise McpRefused(
                f"MCP server '{name}' is not configured; the `mcp` resource offers: "
                f"{', '.join(sorted(self.servers)) or 'none'}"
            ) from None

    @contextmanager
    def connect(self, name: str, secrets: SecretScope | None = None) -> Iterator[McpConnection]:
        """A session with server ``name`` for as many calls as needed."""
        from anyio.from_thread import start_blocking_portal

        config = self.server(name)
        scope = secrets or SecretScope()
        with (
            tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog,
            start_blocking_portal() as portal,
        ):
            opened = portal.wrap_async_context_manager(_open_client(config, scope, errlog))
            try:
                client = opened.__enter__()
            except BaseException as exc:  # noqa: BLE001 - report the server's side too
                raise McpError(_failure(name, "could not connect", exc, errlog, scope)) from None
            failed: BaseException | None = None
            try:
                yield McpConnection(name, config, portal, client, scope, errlog)
            except BaseException as exc:
                failed = exc
                raise
            finally:
                try:
                    opened.__exit__(None, None, None)
                except BaseException:
                    if failed is None:
                        raise

    def list_tools(self, name: str, secrets: SecretScope | None = None) -> list[McpToolInfo]:
        with self.connect(name, secrets) as connection:
            return connection.list_tools()


class McpConnection:
    """One open client session; every method is a plain blocking call."""

    def __init__(self, name: str, config: McpServer, portal: Any, client: Any, scope: SecretScope, errlog: Any):
        self.name = name
        self.config = config
        self._portal = portal
        self._client = client
        self._scope = scope
        self._errlog = errlog

    def allowed(self, tool: str) -> bool:
        return self.config.allowed_tools is None or tool in self.config.allowed_tools

    def list_tools(self) -> list[McpToolInfo]:
        tools = self._portal.call(self._list_all)
        return [t for t in tools if self.allowed(t.name)]

    async def _list_all(self) -> list[McpToolInfo]:
        import anyio

        found: list[McpToolInfo] = []
        cursor = None
        with anyio.fail_after(self.config.timeout_seconds):
            for _ in range(50):
                page = await self._client.list_tools(cursor=cursor)
                found += [McpToolInfo(t.name, t.description or "", dict(t.input_schema or {})) for t in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    break
        return found

    def call_tool(
        self, tool: str, arguments: Mapping[str, Any] | None = None, timeout_seconds: float | None = None
    ) -> dict[str, Any]:
        """Call ``tool``; the result as plain JSON (``content``, ``text``, ``structured``, ``is_error``)."""
        if not self.allowed(tool):
            raise McpRefused(
                f"tool '{tool}' of MCP server '{self.name}' is not allowed; allowed_tools: "
                f"{', '.join(self.config.allowed_tools or []) or 'none'}"
            )
        timeout = min(timeout_seconds or self.config.timeout_seconds, self.config.timeout_seconds)
        started = time.monotonic()
        try:
            result = self._portal.call(self._call, tool, dict(arguments or {}), timeout)
        except TimeoutError:
            raise McpError(f"MCP server '{self.name}', tool '{tool}': no answer within {timeout:g}s") from None
        except Exception as exc:  # noqa: BLE001 - SDK and transport errors alike
            raise McpError(_failure(self.name, f"tool '{tool}' failed", exc, self._errlog, self._scope)) from None
        content = [block.model_dump(mode="json", exclude_none=True, by_alias=True) for block in result.content]
        out = {
            "server": self.name,
            "tool": tool,
            "is_error": bool(result.is_error),
            "text": "\n".join(b.get("text", "") for b in content if b.get("type") == "text"),
            "content": content,
            "structured": result.structured_content,
            "duration_s": round(time.monotonic() - started, 4),
        }
        size = len(json.dumps(out, default=str))
        if size > self.config.max_result_bytes:
            raise McpError(
                f"MCP server '{self.name}', tool '{tool}': result of {size} bytes is over max_result_bytes="
                f"{self.config.max_result_bytes}"
            )
        return out

    async def _call(self, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        import anyio

        with anyio.fail_after(timeout):
            return await self._client.call_tool(tool, arguments, read_timeout_seconds=timeout)


@asynccontextmanager
async def _open_client(config: McpServer, scope: SecretScope, errlog: Any):
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    if config.transport == "stdio":
        if not config.command:
            raise McpRefused("stdio MCP server has no `command`")
        params = StdioServerParameters(
            command=config.command,
            args=list(config.args),
            cwd=config.cwd,
            env={k: scope.resolve_written(v, f"env.{k}") for k, v in config.env.items()} or None,
        )
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=config.timeout_seconds) as client:
            yield client
        return
    if not config.url:
        raise McpRefused("http MCP server has no `url`")
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {k: scope.resolve_written(v, f"headers.{k}") for k, v in config.headers.items()}
    timeout = httpx2.Timeout(config.timeout_seconds)
    async with create_mcp_http_client(headers=headers or None, timeout=timeout) as http:
        http.max_redirects = config.max_redirects  # the SDK follows only same-origin redirects, this many
        transport = streamable_http_client(config.url, http_client=http)
        async with Client(transport, read_timeout_seconds=config.timeout_seconds) as client:
            yield client


def _failure(name: str, what: str, exc: BaseException, errlog: Any, scope: SecretScope) -> str:
    """A redacted message with the innermost cause and the server's last stderr lines."""
    inner = exc
    while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
        inner = inner.exceptions[0]
    message = f"MCP server '{name}': {what}: {type(inner).__name__}: {inner}"
    try:
        errlog.flush()
        errlog.seek(0)
        tail = errlog.read()[-1500:].strip()
    except (OSError, ValueError):
        tail = ""
    if tail:
        message += f"\nserver stderr (last lines):\n{tail}"
    return scope.redact(message)


def format_tools(server: str, tools: list[McpToolInfo]) -> str:
    """``dp nodes``-style help for one server's tools: name, description, arguments."""
    lines = [f"MCP server '{server}': {len(tools)} tool(s)", ""]
    for tool in tools:
        lines.append(f"  {tool.name}: {tool.description.strip().splitlines()[0] if tool.description else ''}")
        props = tool.input_schema.get("properties") or {}
        required = set(tool.input_schema.get("required") or [])
        for arg, schema in props.items():
            kind = schema.get("type", "any") if isinstance(schema, dict) else "any"
            flag = "required" if arg in required else "optional"
            described = isinstance(schema, dict) and schema.get("description")
            lines.append(f"      {arg} ({kind}, {flag}){': ' + schema['description'] if described else ''}")
    return "\n".join(lines)


def _click_command() -> Any:
    import click

    @click.command("mcp-tools")
    @click.argument("server", required=False)
    def mcp_tools(server: str | None) -> None:
        """The tools of the MCP servers in DP_MCP_CONFIG (or of SERVER)."""
        from dp_settings import load

        resource = McpResource.from_config_file(load().mcp_config)
        names = [server] if server else sorted(resource.servers)
        if not names:
            raise click.ClickException(f"no MCP servers configured; set {CONFIG_ENV} to a YAML file of servers")
        for name in names:
            try:
                click.echo(format_tools(name, resource.list_tools(name)))
            except (McpError, McpRefused) as exc:
                raise click.ClickException(str(exc)) from None
            click.echo("")

    return mcp_tools


def __getattr__(name: str) -> Any:
    if name == "mcp_tools_command":  # built lazily so importing this module does not import click
        return _click_command()
    raise AttributeError(name)
