"""Fixtures of the tool tests: loopback servers, resources that allow loopback, node contexts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tool_servers import SECRET, McpHttpProcess, StubLlm, TargetServer, mcp_servers

from dp_assets.catalog.base import NodeContext
from dp_resources.http import HttpResource
from dp_resources.llm import LlmResource
from dp_resources.mcp_client import McpResource
from dp_resources.secrets_resource import SecretsResource
from dp_resources.shell import ShellResource


@pytest.fixture(scope="session")
def target() -> Iterator[TargetServer]:
    server = TargetServer()
    yield server
    server.close()


@pytest.fixture
def stub_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubLlm]:
    server = StubLlm()
    monkeypatch.setenv("DP_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("DP_LLM_MODEL", "stub-model")
    monkeypatch.setenv("DP_LLM_API_KEY", SECRET)
    yield server
    server.close()


@pytest.fixture(scope="session")
def mcp_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpHttpProcess]:
    server = McpHttpProcess(log_dir=tmp_path_factory.mktemp("mcp_http"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def sandbox_resource() -> Iterator[Any]:
    from dp_resources.sandbox import SandboxResource

    resource = SandboxResource(wall_seconds=20)
    yield resource
    resource.close()


@pytest.fixture
def resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_resource: Any) -> dict[str, Any]:
    """Every resource a tool node needs, allowing loopback (as tests must) and a planted secret."""
    monkeypatch.setenv("DP_SECRET_TOKEN", SECRET)
    return {
        "http": HttpResource(allow_private=True, timeout_seconds=10, max_bytes=2_000_000),
        "secrets": SecretsResource(),
        "shell": ShellResource(
            enabled=True,
            allowed_programs=["echo", "printf", "printenv", "cat", "sleep", "ls"],
            root=str(tmp_path / "shell"),
            timeout_seconds=10,
        ),
        "sandbox": sandbox_resource,
        "mcp": McpResource(servers=mcp_servers()),
        "llm": LlmResource(allow_private=True, request_timeout_seconds=10),
    }


@pytest.fixture
def make_ctx(resources: dict[str, Any]):
    def make(node_id: str = "tool", flow_params: dict[str, Any] | None = None, **overrides: Any) -> NodeContext:
        return NodeContext(
            flow_id="tools_flow",
            node_id=node_id,
            run_id="run-1",
            flow_params=flow_params or {},
            resources={**resources, **overrides},
        )

    return make
