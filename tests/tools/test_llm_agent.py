"""LlmAgent against a local OpenAI-compatible stub server (real HTTP on loopback, no paid service)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tool_servers import SECRET, scripted, tool_call

from dp_assets.catalog import default_catalog
from dp_assets.catalog.nodes.agents import LlmAgentParams, _check, llm_agent, replay
from dp_resources.llm import LlmError, LlmResource


def agent(ctx, inputs=None, **params):
    return llm_agent(ctx, LlmAgentParams(**params), inputs or {})


FETCH = {
    "name": "fetch",
    "type": "HttpTool",
    "description": "Fetch an item by id.",
    "params": {"url": "{{ params.base }}/echo?item={{ args.item }}"},
}
DOUBLE = {
    "name": "double",
    "type": "PythonTool",
    "description": "Double a number.",
    "params": {"code": "result = args['n'] * 2"},
    "arguments": {"n": {"type": "integer"}},
}


def test_plain_answer_with_prompt_from_input(make_ctx, stub_llm):
    stub_llm.brain = scripted({"content": "three rows"})
    ctx = make_ctx()
    frame = pd.DataFrame({"x": [1, 2, 3]})
    value = agent(ctx, {"rows": frame}, system_prompt="Be brief.", prompt="How many rows? {{ input }}")
    assert value["answer"] == "three rows" and value["stop_reason"] == "answer"
    sent = stub_llm.requests[-1]
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert sent["json"]["model"] == "stub-model"
    assert sent["json"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": 'How many rows? [{"x": 1}, {"x": 2}, {"x": 3}]'},
    ]
    assert "tools" not in sent["json"]
    assert ctx.metadata["llm_calls"] == 1 and ctx.metadata["total_tokens"] == value["usage"]["total_tokens"] > 0
    json.dumps(value)  # plain JSON: stored as JSON by the run-scoped IO manager


def test_tool_calls_are_run_recorded_and_fed_back(make_ctx, stub_llm, target):
    stub_llm.brain = scripted(
        {
            "content": None,
            "tool_calls": [tool_call("fetch", {"item": "a/b"}, "c1"), tool_call("double", {"n": 21}, "c2")],
        },
        {"content": "the answer is 42"},
    )
    ctx = make_ctx(flow_params={"base": target.url})
    params = {
        "prompt": "go",
        "tools": [{**FETCH, "params": {"url": f"{target.url}/echo?item={{{{ args.item }}}}"}}, DOUBLE],
    }
    value = agent(ctx, **params)
    assert value["answer"] == "the answer is 42"
    assert target.requests[-1]["query"] == {"item": "a/b"}  # the argument was URL-quoted into one value
    tools = [e for e in value["transcript"] if e["kind"] == "tool"]
    assert [(e["tool"], e["status"]) for e in tools] == [("fetch", "ok"), ("double", "ok")]
    assert tools[1]["result"] == 42
    offered = stub_llm.requests[0]["json"]["tools"]
    assert [t["function"]["name"] for t in offered] == ["fetch", "double"]
    assert offered[1]["function"]["parameters"]["properties"] == {"n": {"type": "integer"}}
    second = stub_llm.requests[1]["json"]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool", "tool"]
    assert second[3] == {"role": "tool", "tool_call_id": "c2", "content": "42"}
    assert ctx.metadata["tool_calls"] == 2 and len(ctx.metadata["calls"]) == 4


def test_stored_value_replays_without_model_or_tools(make_ctx, stub_llm, target):
    stub_llm.brain = scripted(
        {"content": None, "tool_calls": [tool_call("double", {"n": 5}, "c1"), tool_call("nope", {}, "c2")]},
        {"content": "ten"},
    )
    params = LlmAgentParams(prompt="double 5", tools=[DOUBLE])
    value = json.loads(json.dumps(llm_agent(make_ctx(), params, {})))  # as read back from storage
    calls_before = len(stub_llm.requests)
    again = replay(value, params)
    assert len(stub_llm.requests) == calls_before
    assert again["answer"] == "ten"
    assert again["messages"] == value["messages"]

    def without_durations(entries: list[dict]) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "duration_s"} for e in entries]

    assert without_durations(again["transcript"]) == without_durations(value["transcript"])


def test_json_answers_are_parsed(make_ctx, stub_llm):
    stub_llm.brain = scripted({"content": '{"label": "spam", "score": 0.9}'})
    value = agent(make_ctx(), prompt="classify", response_format="json")
    assert value["answer_json"] == {"label": "spam", "score": 0.9}


def test_missing_endpoint_is_a_clear_error(make_ctx, monkeypatch):
    monkeypatch.delenv("DP_LLM_BASE_URL", raising=False)
    with pytest.raises(LlmError, match="DP_LLM_BASE_URL is not set"):
        agent(make_ctx(llm=LlmResource()), prompt="hi")


def test_a_public_only_llm_resource_refuses_a_loopback_endpoint(make_ctx, stub_llm):
    """The LLM endpoint goes through the SSRF guard too (V4): loopback only when the deployment allows it."""
    with pytest.raises(ValueError, match="loopback"):
        agent(make_ctx(llm=LlmResource()), prompt="hi")
    assert stub_llm.requests == []


def test_check_hook_reports_bad_inline_tools():
    params = LlmAgentParams(
        prompt="x",
        tools=[
            {"name": "t", "type": "HttpTool", "params": {"urll": "http://x"}},
            {"name": "t", "type": "ShellTool", "params": {"argv": ["echo"]}},
        ],
    )
    errors = _check(params, default_catalog())
    fields = [field for field, _ in errors]
    assert "tools[0].params.urll" in fields and "tools[0].params.url" in fields
    assert ("tools", "tool name 't' is used twice") in errors


def test_S6_the_api_key_does_not_follow_a_redirect_to_another_origin(monkeypatch, target):
    """S6: a completion endpoint that redirects to another origin gets the key, the other origin
    only the request without it; with max_redirects 0 nothing is followed."""
    from tool_servers import TargetServer

    elsewhere = TargetServer()
    try:
        monkeypatch.setenv("DP_LLM_BASE_URL", f"{target.url}/redirect?code=307&to={elsewhere.url}/echo&then=")
        monkeypatch.setenv("DP_LLM_MODEL", "m")
        monkeypatch.setenv("DP_LLM_API_KEY", SECRET)
        with pytest.raises(LlmError, match="did not answer a chat completion"):
            LlmResource(allow_private=True, request_timeout_seconds=5, retries=0).chat(
                [{"role": "user", "content": "hi"}]
            )
        assert target.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
        assert [r["method"] for r in elsewhere.requests] == ["POST"]
        assert "Authorization" not in elsewhere.requests[0]["headers"]
        with pytest.raises(LlmError):
            LlmResource(allow_private=True, request_timeout_seconds=5, retries=0, max_redirects=0).chat(
                [{"role": "user", "content": "hi"}]
            )
        assert len(elsewhere.requests) == 1
    finally:
        elsewhere.close()


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param({"content": None, "tool_calls": "fetch"}, id="tool_calls-text"),
        pytest.param({"content": None, "tool_calls": ["fetch"]}, id="tool_calls-list-of-text"),
        pytest.param({"content": None, "tool_calls": [{"function": "fetch"}]}, id="function-text"),
        pytest.param({"content": {"answer": 1}}, id="content-object"),
        pytest.param({"content": 42}, id="content-number"),
        pytest.param({"content": [{"type": "image_url"}]}, id="content-parts-without-text"),
    ],
)
def test_a_malformed_model_reply_is_an_llm_error_saying_what_was_wrong(make_ctx, stub_llm, reply):
    """A reply of another shape fails the node with LlmError (never AttributeError, never a dict as
    the text answer)."""
    stub_llm.brain = scripted(reply)
    with pytest.raises(LlmError, match=r"did not answer a chat completion \((tool_calls|the message's content)"):
        agent(make_ctx(), prompt="hi")


def test_content_given_as_text_parts_is_the_answer_joined(make_ctx, stub_llm):
    stub_llm.brain = scripted({"content": [{"type": "text", "text": "thirty "}, {"type": "text", "text": "two"}]})
    assert agent(make_ctx(), prompt="hi")["answer"] == "thirty two"
