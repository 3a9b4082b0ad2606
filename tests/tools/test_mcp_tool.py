"""McpTool and McpResource against an MCP server started with the SDK (stdio and streamable HTTP)."""

from __future__ import annotations

import pytest
from tool_servers import SECRET, mcp_servers

from dp_assets.catalog.nodes.tools import McpToolParams, mcp_tool
from dp_resources.mcp_client import McpError, McpRefused, McpResource, format_tools
from dp_resources.secrets import SecretScope


def call(ctx, **params):
    return mcp_tool(ctx, McpToolParams(**params), {})


def test_stdio_call_returns_the_tool_result(make_ctx):
    ctx = make_ctx()
    value = mcp_tool(
        ctx,
        McpToolParams(server="demo", tool="add", arguments={"a": 2, "b": "{{ input.0.n }}"}),
        {"numbers": __import__("pandas").DataFrame({"n": [40]})},
    )
    assert value["structured"] == {"result": 42} and value["text"] == "42" and value["is_error"] is False
    assert ctx.metadata["calls"][0]["tool"] == "add"


def test_one_session_many_calls_and_the_server_env_secret_is_redacted(resources):
    """Several calls over one stdio session; a secret passed in the server's env never comes back."""
    scope = SecretScope()
    with resources["mcp"].connect("demo", scope) as connection:
        names = [t.name for t in connection.list_tools()]
        assert "env_dump" not in names and {"add", "echo", "lookup"} <= set(names)
        assert connection.call_tool("echo", {"text": "hello"})["text"] == "hello"
        shown = connection.call_tool("show_token")
        with pytest.raises(McpRefused, match="'env_dump' of MCP server 'demo' is not allowed"):
            connection.call_tool("env_dump")
        with pytest.raises(McpError, match="over max_result_bytes"):
            connection.call_tool("big", {"size": 300_000})
        with pytest.raises(McpError, match="no answer within 1s"):
            connection.call_tool("sleep", {"seconds": 5}, timeout_seconds=1)
    assert SECRET in shown["text"]  # the server really got it ...
    assert scope.redact_value(shown)["text"] == "token is ***"  # ... and the node only keeps ***


def test_tool_errors_fail_the_node_unless_told_otherwise(make_ctx):
    with pytest.raises(RuntimeError, match=r"reported an error: .*boom"):
        call(make_ctx(), server="demo", tool="fail", arguments={"message": "boom"})
    value = call(make_ctx(), server="demo", tool="fail", arguments={"message": "boom"}, fail_on_error=False)
    assert value["is_error"] is True


def test_unknown_server_is_refused(make_ctx):
    with pytest.raises(McpRefused, match="'nope' is not configured; the `mcp` resource offers: demo"):
        call(make_ctx(), server="nope", tool="add")


def test_streamable_http_with_secret_header(mcp_http, make_ctx, monkeypatch):
    monkeypatch.setenv("DP_SECRET_TOKEN", SECRET)
    resource = McpResource(servers=mcp_servers(mcp_http.url))
    tools = resource.list_tools("demo_http")
    assert [t.name for t in tools] == ["add", "echo"]
    help_text = format_tools("demo_http", tools)
    assert "add: Add two integers." in help_text and "a (integer, required)" in help_text
    value = call(make_ctx(mcp=resource), server="demo_http", tool="echo", arguments={"text": "over http"})
    assert value["text"] == "over http"


def test_a_server_that_cannot_start_fails_cleanly(make_ctx):
    from dp_resources.mcp_client import McpServer

    broken = McpResource(servers={"bad": McpServer(command="/bin/false", timeout_seconds=5)})
    with pytest.raises(McpError, match="MCP server 'bad': could not connect"):
        call(make_ctx(mcp=broken), server="bad", tool="add")


def test_mcp_tools_command_lists_each_servers_tools(mcp_http, tmp_path, monkeypatch):
    """`dp mcp-tools`-style help from a DP_MCP_CONFIG file (the lead mounts the command on `dp`)."""
    from click.testing import CliRunner

    from dp_resources import mcp_client

    config = tmp_path / "mcp.yaml"
    config.write_text(f"servers:\n  web:\n    transport: http\n    url: {mcp_http.url}\n    allowed_tools: [add]\n")
    monkeypatch.setenv("DP_MCP_CONFIG", str(config))
    result = CliRunner().invoke(mcp_client.mcp_tools_command, [])
    assert result.exit_code == 0, result.output
    assert "MCP server 'web': 1 tool(s)" in result.output and "b (integer, required)" in result.output


def test_S6_http_server_headers_never_follow_a_redirect_elsewhere(target, monkeypatch):
    """S6: an MCP endpoint that redirects to another origin is not followed (the configured secret
    header stays with the endpoint); max_redirects bounds same-origin redirects (0: none)."""
    from tool_servers import TargetServer

    from dp_resources.mcp_client import McpServer

    monkeypatch.setenv("DP_SECRET_TOKEN", SECRET)
    elsewhere = TargetServer()
    try:

        def server(to: str, **extra) -> McpResource:
            return McpResource(
                servers={
                    "moved": McpServer(
                        transport="http",
                        url=f"{target.url}/redirect?code=307&to={to}",
                        timeout_seconds=5,
                        headers={"X-Api-Key": "${env:DP_SECRET_TOKEN}"},
                        **extra,
                    )
                }
            )

        before = len(target.requests)
        with pytest.raises(McpError):
            server(f"{elsewhere.url}/mcp").list_tools("moved", SecretScope())
        assert target.requests[before]["headers"]["X-Api-Key"] == SECRET  # the endpoint itself got it
        assert elsewhere.requests == []
        for limit in (0, 1):  # a same-origin redirect: followed only when max_redirects allows one
            before = len(target.requests)
            with pytest.raises(McpError):
                server("/status/404", max_redirects=limit).list_tools("moved", SecretScope())
            paths = [r["path"] for r in target.requests[before:]]
            assert paths[0] == "/redirect" and ("/status/404" in paths) == (limit == 1), paths
    finally:
        elsewhere.close()
