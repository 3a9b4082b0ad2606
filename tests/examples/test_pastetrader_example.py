"""PasteTrader's workflow (``flows/pastetrader/market_brief.yaml``), end to end in process.

HTTP, Python and Shell tools and an LLM agent run against real loopback servers: a market-data
API stub and the OpenAI-compatible stub of the tool tests (``tests/tools/tool_servers.py``),
scripted like a model that looks up headlines before it answers. Every call must be visible on
the run: each tool node's materialisation lists its calls, the agent's its model and tool calls,
and the stubs saw exactly those requests.
"""

from __future__ import annotations

import json
import sys

import dagster as dg
import pytest
from examples_support import ROOT, StubService, copy_example, materializations

sys.path.insert(0, str(ROOT / "tests" / "tools"))
from tool_servers import StubLlm, tool_call  # the tool tests' OpenAI-compatible stub

from dp_assets.default_resources import default_resources
from dp_assets.location import build_code_location
from dp_resources.http import HttpResource
from dp_resources.llm import LlmResource
from dp_resources.mcp_client import McpResource
from dp_resources.secrets_resource import SecretsResource
from dp_resources.shell import ShellResource

pytestmark = pytest.mark.timeout(300)

FLOW = "pastetrader_market_brief"
CLOSES = [90.0, 98.0, 100.0, 100.0, 103.0]
PRICE = 105.0
HEADLINE = "ACME wins a large supply contract"


def market_route(request):
    symbol = request.path.rsplit("/", 1)[-1]
    if request.path.startswith("/quotes/"):
        return 200, {"symbol": symbol, "price": PRICE, "currency": "USD"}
    if request.path.startswith("/history/"):
        return 200, {"symbol": symbol, "days": [{"close": c} for c in CLOSES[-int(request.query["days"]) :]]}
    if request.path.startswith("/news/"):
        return 200, {"symbol": symbol, "headlines": [HEADLINE]}
    return 404, {"error": "no route"}


def analyst_brain(body):
    """Asks for headlines once, then answers with what the tool returned."""
    tool_results = [m for m in body["messages"] if m["role"] == "tool"]
    if not tool_results:
        return {"role": "assistant", "content": None, "tool_calls": [tool_call("news", {"symbol": "ACME"})]}
    headlines = json.loads(tool_results[-1]["content"])["json"]["headlines"]
    return {"role": "assistant", "content": f"ACME is a buy on momentum; news: {headlines[0]}."}


@pytest.fixture
def market():
    service = StubService(market_route)
    yield service
    service.close()


@pytest.fixture
def llm(monkeypatch):
    server = StubLlm(brain=analyst_brain)
    monkeypatch.setenv("DP_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("DP_LLM_MODEL", "stub-analyst")
    yield server
    server.close()


@pytest.fixture
def location(tmp_path, dp_home, sandbox):
    (tmp_path / "shell").mkdir()
    resources = {
        **default_resources(),
        "http": HttpResource(allow_private=True, timeout_seconds=10),  # the stubs are on loopback
        "llm": LlmResource(allow_private=True, request_timeout_seconds=30),
        "shell": ShellResource(enabled=True, allowed_programs=["printf"], root=str(tmp_path / "shell")),
        "secrets": SecretsResource(),
        "mcp": McpResource(),
        "sandbox": sandbox,
    }
    (dp_home / "dagster" / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    return build_code_location(flows_folder=copy_example(tmp_path / "flows", "pastetrader"), resources=resources)


def test_pastetrader_tools_and_agent_every_call_on_the_run(location, market, llm):
    """HTTP, Python, Shell tools and an LLM agent against local stubs; every call is on the run."""
    with dg.DagsterInstance.get() as instance:
        result = location.resolve_job_def(FLOW).execute_in_process(
            run_config={"symbol": "ACME", "api_base": market.url, "window": 3}, instance=instance
        )
        assert result.success
        stored = materializations(instance, result.run_id)

    # the market API saw the two tool calls and the agent's one tool call, nothing else
    assert sorted(r.path for r in market.requests) == ["/history/ACME", "/news/ACME", "/quotes/ACME"]
    assert market.seen("/history/")[0].query == {"days": "5"}
    # the model was asked twice: once to choose the tool, once with its result
    assert len(llm.requests) == 2
    second = json.loads(llm.requests[1]["body"])["messages"]
    assert any(m["role"] == "tool" and HEADLINE in m["content"] for m in second)

    # every call is visible on the run, node by node
    quote_call = stored["quote"]["calls"][0]
    assert (quote_call["method"], quote_call["url"], quote_call["status"]) == ("GET", f"{market.url}/quotes/ACME", 200)
    assert stored["history"]["calls"][0]["url"] == f"{market.url}/history/ACME?days=5"
    assert stored["signal"]["calls"][0]["sandbox"] == "script"
    assert stored["journal"]["calls"][0] == {**stored["journal"]["calls"][0], "program": "printf", "exit_code": 0}
    analyst = stored["analyst"]
    assert (analyst["llm_calls"], analyst["tool_calls"], analyst["refused_calls"]) == (2, 1, 0)
    tool_entries = [c for c in analyst["calls"] if c.get("kind") == "tool"]
    assert len(tool_entries) == 1 and tool_entries[0]["tool"] == "news"

    # the values, against the same arithmetic written out by hand
    average = sum(CLOSES[-3:]) / 3
    change = round((PRICE - average) / average * 100, 2)
    signal = result.output_for_node(f"{FLOW}__step", "signal")
    assert signal == {
        "symbol": "ACME",
        "price": PRICE,
        "moving_average": round(average, 4),
        "change_pct": change,
        "signal": "buy",
    }
    journal = result.output_for_node(f"{FLOW}__step", "journal")
    assert journal["stdout"] == f"ACME buy at {PRICE} ({change}%)"
    brief = result.output_for_node(f"{FLOW}__step", "brief")
    assert brief["brief"] == f"ACME is a buy on momentum; news: {HEADLINE}."
    assert brief["tool_calls"] == 1 and brief["journal"] == journal["stdout"]
    transcript = result.output_for_node(f"{FLOW}__step", "analyst")["transcript"]
    assert [e["kind"] for e in transcript] == ["llm", "tool", "llm"]


@pytest.fixture(scope="module")
def sandbox():
    from dp_resources.sandbox import SandboxResource

    resource = SandboxResource(wall_seconds=30)
    yield resource
    resource.close()
