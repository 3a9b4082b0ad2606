"""``LlmAgent``: a chat-completions agent whose every prompt, tool call and answer is kept with the run.

The agent asks the deployment's ``llm`` resource (OpenAI-compatible, through the SSRF-guarded
``HttpResource``) and may call only the tools its params declare — inline tool definitions of the
catalog's tool types (``HttpTool``, ``ShellTool``, ``PythonTool``, ``McpTool``), each with the
arguments the model may fill (``{{ args.NAME }}`` in the tool's params). A tool name the model
invents, an argument it was not offered, or a call beyond ``max_tool_calls`` is refused and the
refusal is logged like any call (V10). Steps, tokens and time are capped by the node and, above
it, by the ``llm`` resource.

The node's value is a plain-JSON dict: ``answer``, ``stop_reason``, ``usage``, the full
``messages`` exchanged and a ``transcript`` of every call; the run-scoped IO manager stores it per
run, and ``replay(value, params)`` re-runs the loop from it without a model or any tool.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, ValidationError

from dp_assets.catalog.base import Catalog, NodeContext, NodeType, Params
from dp_assets.catalog.nodes import tools as t
from dp_assets.catalog.nodes.agent_tools import AgentTool, ToolArgument, ToolBox, check_arguments, offered_arguments
from dp_assets.deferred import pd
from dp_assets.spec import inert
from dp_resources.secrets import SecretScope, as_written, scope_for

#: Re-exported: the tools' declaration and runner moved to agent_tools.
__all__ = [
    "NODE_TYPES",
    "AgentLimitReached",
    "AgentTool",
    "LlmAgentParams",
    "ToolArgument",
    "ToolBox",
    "check_arguments",
    "llm_agent",
    "offered_arguments",
    "replay",
]

LIMIT_REFUSAL = "tool call limit reached (max_tool_calls)"


class AgentLimitReached(RuntimeError):
    pass


class LlmAgentParams(Params):
    prompt: str = Field(
        description="User prompt; {{ params.x }}, and {{ input }} / {{ input.path }} for upstream data."
    )
    system_prompt: str = Field(default="", description="System prompt.")
    model: str | None = Field(default=None, description="Model name; default from the `llm` resource's environment.")
    tools: list[AgentTool] = Field(default_factory=list, description="The only tools the model may call.")
    max_steps: int = Field(default=8, ge=1, description="Model calls per run (at most the resource's max_steps).")
    max_tool_calls: int = Field(default=16, ge=0, description="Tool calls per run (at most the resource's).")
    max_tokens: int = Field(default=20_000, ge=1, description="Token budget of the run (at most the resource's).")
    max_tokens_per_call: int | None = Field(default=None, ge=1, description="max_tokens sent with each request.")
    timeout_seconds: float = Field(default=300.0, gt=0, description="Total time (at most the resource's).")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; default the model's."
    )
    max_input_chars: int = Field(default=20_000, ge=1, description="Upstream data beyond this is cut from the prompt.")
    max_tool_result_chars: int = Field(default=20_000, ge=1, description="Tool result text the model sees per call.")
    response_format: Literal["text", "json"] = Field(default="text", description="json: parse the answer as JSON.")
    on_limit: Literal["fail", "return"] = Field(
        default="fail",
        description="At a step/call/token/time limit: fail, or return what there is with stop_reason set.",
    )


# --- the loop --------------------------------------------------------------------------------


def _restored_outside_templates(params: LlmAgentParams) -> LlmAgentParams:
    """The params with flow-param text restored (``dp_assets.spec.inert``) everywhere but where
    data templates are still to be filled: the prompt and the tools' params."""
    dumped = params.model_dump()
    prompt = dumped.pop("prompt")
    tool_params = [tool.pop("params") for tool in dumped["tools"]]
    dumped = inert.restore(dumped)
    for tool, own in zip(dumped["tools"], tool_params, strict=True):
        tool["params"] = own
    return LlmAgentParams.model_validate({**dumped, "prompt": prompt})


def _render_prompt(prompt: str, data: dict[str, Any], limit: int) -> tuple[str, bool]:
    cut = False

    def text(match: re.Match) -> str:
        nonlocal cut
        if match.group(1) == "input":
            value = t.lookup(data, match.group(1), match.group(2), "prompt")
        else:
            value = match.group(0)
        if isinstance(value, pd.DataFrame):
            value = value.to_dict("records")
        rendered = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
        if len(rendered) > limit:
            cut, rendered = True, rendered[:limit] + " …(cut)"
        return inert.literal(rendered)

    return inert.restore(t.DATA_TEMPLATE.sub(text, prompt)), cut


def _estimate_tokens(messages: list[dict[str, Any]], reply: Any) -> int:
    return (len(json.dumps(messages, default=str)) + len(json.dumps(reply.raw_message, default=str))) // 4 + 1


def run_agent(
    params: LlmAgentParams,
    chat: Callable[..., Any],
    call_tool: Callable[[str, dict], t.ToolRun],
    refusal: Callable[[str, Any], str | None],
    tool_specs: list[dict[str, Any]],
    scope: SecretScope,
    log: Callable[[str], None],
    messages: list[dict[str, Any]],
    caps: dict[str, float],
) -> dict[str, Any]:
    """The agent loop: model, tools, model ... until an answer or a cap; returns the node's value."""
    deadline = time.monotonic() + caps["timeout_seconds"]
    transcript: list[dict[str, Any]] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    answer, stop, tool_calls, steps, model = None, "max_steps", 0, 0, params.model
    while steps < caps["max_steps"]:
        remaining_tokens = int(caps["max_tokens"] - usage["total_tokens"])
        if remaining_tokens <= 0:
            stop = "max_tokens"
            break
        if time.monotonic() >= deadline:
            stop = "timeout"
            break
        prompt_estimate = len(json.dumps(messages, default=str)) // 4 + 1
        if prompt_estimate >= remaining_tokens:  # the prompt alone would overrun the budget
            stop = "max_tokens"
            break
        steps += 1
        room = remaining_tokens - prompt_estimate
        per_call = min(params.max_tokens_per_call or room, room)
        reply = chat(
            messages,
            tools=tool_specs or None,
            model=params.model,
            max_tokens=per_call,
            temperature=params.temperature,
            timeout_seconds=max(1.0, deadline - time.monotonic()),
        )
        model = reply.model
        tokens = reply.total_tokens or _estimate_tokens(messages, reply)
        for key in ("prompt_tokens", "completion_tokens"):
            usage[key] += int(reply.usage.get(key) or 0)
        usage["total_tokens"] += tokens
        message = scope.redact_value({k: v for k, v in reply.raw_message.items() if v is not None})
        message.setdefault("role", "assistant")
        messages.append(message)
        transcript.append(
            {
                "step": steps,
                "kind": "llm",
                "status": "ok",
                "model": model,
                "message": message,
                "finish_reason": reply.finish_reason,
                "tokens": tokens,
                "usage": dict(reply.usage),
                "duration_s": round(reply.duration_s, 4),
            }
        )
        log(f"llm step {steps}: {len(reply.tool_calls)} tool call(s), {tokens} tokens, {reply.duration_s:.2f}s")
        if not reply.tool_calls:
            answer, stop = scope.redact(reply.content or ""), "answer"
            break
        limited = False
        for call in reply.tool_calls:
            entry: dict[str, Any] = {"step": steps, "kind": "tool", "tool": call.name, "call_id": call.id}
            started = time.monotonic()
            try:
                args = json.loads(call.arguments or "{}")
            except ValueError:
                args = call.arguments
            entry["arguments"] = scope.redact_value(args)
            limited = limited or tool_calls >= caps["max_tool_calls"]
            problem = LIMIT_REFUSAL if limited else refusal(call.name, args)
            if problem:
                entry.update(status="refused", error=problem)
                content = f"refused: {problem}"
            else:
                tool_calls += 1
                try:
                    run = call_tool(call.name, args)
                    entry.update(status="ok", result=run.value, record=run.record)
                    content = json.dumps(run.value, default=str, ensure_ascii=False)
                except Exception as exc:  # noqa: BLE001 - the model is told; the error is logged
                    text = scope.redact(f"{type(exc).__name__}: {exc}")
                    entry.update(status="error", error=text)
                    content = f"error: {text}"
            entry["duration_s"] = round(time.monotonic() - started, 4)
            transcript.append(entry)
            log(
                f"tool {call.name!r} step {steps}: {entry['status']}"
                f"{' - ' + entry['error'][:200] if 'error' in entry else ''} ({entry['duration_s']}s)"
            )
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": scope.redact(content[: params.max_tool_result_chars]),
                }
            )
        if limited:
            stop = "max_tool_calls"
            break
    if stop != "answer" and params.on_limit == "fail":
        raise AgentLimitReached(
            f"the agent stopped without an answer: {stop} reached after {steps} model call(s), {tool_calls} tool "
            f"call(s) and {usage['total_tokens']} tokens; raise the node's limit or set on_limit: return"
        )
    parsed = None
    if answer is not None and params.response_format == "json":
        try:
            parsed = json.loads(answer)
        except ValueError as exc:
            raise ValueError(f"response_format is json but the answer is not JSON: {exc}") from None
    return {
        "answer": answer,
        "answer_json": parsed,
        "stop_reason": stop,
        "model": model,
        "steps": steps,
        "tool_calls": tool_calls,
        "usage": usage,
        "limits": dict(caps),
        "messages": messages,
        "transcript": transcript,
    }


def _caps(params: LlmAgentParams, llm: Any) -> dict[str, float]:
    return {
        "max_steps": min(params.max_steps, getattr(llm, "max_steps", params.max_steps)),
        "max_tool_calls": min(params.max_tool_calls, getattr(llm, "max_tool_calls", params.max_tool_calls)),
        "max_tokens": min(params.max_tokens, getattr(llm, "max_total_tokens", params.max_tokens)),
        "timeout_seconds": min(params.timeout_seconds, getattr(llm, "max_timeout_seconds", params.timeout_seconds)),
    }


def llm_agent(ctx: NodeContext, params: LlmAgentParams, inputs: dict[str, Any]) -> dict[str, Any]:
    """Ask an OpenAI-compatible model, letting it call only the declared tools; answer and transcript are the value."""
    scope = scope_for(ctx.resources)
    llm = ctx.resource("llm")
    with t.guarded(ctx, "LlmAgent", scope):
        key = llm.endpoint()[2] if hasattr(llm, "endpoint") else None
        if key:
            scope.add(key)
        params = _restored_outside_templates(params)
        data = t.template_data(inputs)
        # prompts are sent as written: a secret reference in them is text for the model, never resolved
        prompt, cut = _render_prompt(as_written(params.prompt), data, params.max_input_chars)
        messages = [{"role": "system", "content": as_written(params.system_prompt)}] if params.system_prompt else []
        messages.append({"role": "user", "content": prompt})
        box = ToolBox(ctx, params.tools, scope, data)
        try:
            value = run_agent(
                params,
                llm.chat,
                box.run,
                box.refusal,
                box.specs(),
                scope,
                lambda line: ctx.log.info(scope.redact(f"{ctx.node_id}: {line}")),
                messages,
                _caps(params, llm),
            )
        finally:
            box.close()
        value = scope.redact_value(value)
        calls = [
            {k: e.get(k) for k in ("step", "kind", "tool", "status", "tokens", "duration_s") if k in e}
            for e in value["transcript"]
        ]
        ctx.add_metadata(
            stop_reason=value["stop_reason"],
            llm_calls=value["steps"],
            tool_calls=value["tool_calls"],
            total_tokens=value["usage"]["total_tokens"],
            refused_calls=sum(e.get("status") == "refused" for e in value["transcript"]),
            input_cut=cut,
            calls=calls[: t.MAX_RECORDED_CALLS],
        )
        return value


# --- replay ----------------------------------------------------------------------------------


def replay(value: dict[str, Any], params: LlmAgentParams) -> dict[str, Any]:
    """Re-run the agent loop from a stored value: recorded model replies and tool results, no I/O."""
    from dp_resources.llm import ChatReply, ToolCall

    llm_entries = iter([e for e in value["transcript"] if e["kind"] == "llm"])
    tool_entries = iter([e for e in value["transcript"] if e["kind"] == "tool"])

    def chat(messages: list[dict[str, Any]], **_: Any) -> ChatReply:
        entry = next(llm_entries)
        message = entry["message"]
        calls = tuple(
            ToolCall(c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
            for c in message.get("tool_calls") or []
        )
        return ChatReply(
            message.get("content"),
            calls,
            entry.get("finish_reason"),
            dict(entry.get("usage") or {}),
            entry.get("model") or "",
            0.0,
            dict(message),
        )

    def next_tool() -> dict[str, Any]:
        entry = next(tool_entries)
        while entry.get("error") == LIMIT_REFUSAL:  # decided again by the recorded limits
            entry = next(tool_entries)
        return entry

    peeked: dict[str, Any] = {}  # the tool entry refusal() read ahead, for call_tool

    def refusal(name: str, args: Any) -> str | None:
        nonlocal peeked
        peeked = next_tool()
        return peeked["error"] if peeked["status"] == "refused" else None

    def call_tool(name: str, args: dict[str, Any]) -> t.ToolRun:
        if peeked["status"] == "error":
            raise RuntimeError(peeked["error"])
        return t.ToolRun(peeked["result"], peeked.get("record") or {})

    first = [m for m in value["messages"] if m.get("role") in ("system", "user")][:2]
    return run_agent(
        params.model_copy(update={"on_limit": "return"}),
        chat,
        call_tool,
        refusal,
        [],
        SecretScope(),
        lambda line: None,
        [dict(m) for m in first],
        dict(value["limits"]),
    )


def _check(params: LlmAgentParams, catalog: Catalog) -> list[tuple[str, str]]:
    """Inline tools: their type must be in the catalog and their params keys must fit it."""
    errors = []
    for i, tool in enumerate(params.tools):
        if tool.type not in catalog:
            errors.append((f"tools[{i}].type", f"node type '{tool.type}' is not in the catalog"))
            continue
        try:
            catalog[tool.type].params_model.model_validate(tool.params)
        except ValidationError as exc:
            for err in exc.errors():
                if err["type"] in ("extra_forbidden", "missing"):
                    where = ".".join(str(p) for p in err["loc"])
                    errors.append((f"tools[{i}].params.{where}", err["msg"]))
    names = [tool.name for tool in params.tools]
    errors += [("tools", f"tool name '{n}' is used twice") for n in sorted({n for n in names if names.count(n) > 1})]
    return errors


NODE_TYPES = [
    NodeType(
        "LlmAgent",
        LlmAgentParams,
        llm_agent,
        "tool",
        inputs=t.OPTIONAL_INPUTS,
        kinds=frozenset({"llm"}),
        resources=frozenset({"llm", "secrets", "http", "shell", "sandbox", "mcp"}),
        check=_check,
        side_effects=True,
        data_templates=True,
    ),
]
