"""``LlmResource``: an OpenAI-compatible chat-completions endpoint, reached through ``HttpResource``.

The endpoint, model and key are deployment values: the code location gives them as
``dg.EnvVar("DP_LLM_BASE_URL")``, ``dg.EnvVar("DP_LLM_MODEL")`` and ``dg.EnvVar("DP_LLM_API_KEY")``
when those are set, so Dagster resolves them in the run and no key ever sits in resource config, the
run's snapshot or its tags; a field left unset follows the platform settings when used. Requests go
through ``HttpResource``, so the SSRF guard, the byte cap and the total timeout apply; the
deployment's LLM endpoint is usually private or local, so ``allowed_networks``/``allow_private``
here open it for this resource only, not for HTTP nodes. The API key goes only to the endpoint's
origin: a redirect elsewhere drops it (``HttpResource``), one from https to http is refused, and
``max_redirects`` bounds them. The deployment also sets the ceilings an agent node may not exceed:
steps, tool calls, tokens and seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import Field

from dp_resources.http import HttpResource, send_with_retries
from dp_settings import current


class LlmError(RuntimeError):
    """The endpoint failed or answered something that is not a chat completion."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True)
class ChatReply:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    usage: dict[str, int]
    model: str
    duration_s: float
    raw_message: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return int(self.usage.get("total_tokens") or 0)


class LlmResource(dg.ConfigurableResource):
    """Chat completions for ``LlmAgent`` nodes; endpoint, model and key from the deployment."""

    base_url: str | None = Field(default=None, description="API base URL (…/v1); unset: DP_LLM_BASE_URL.")
    model: str | None = Field(default=None, description="Default model name; unset: DP_LLM_MODEL.")
    api_key: str | None = Field(
        default=None, description="API key (optional); give it as dg.EnvVar(...), never as text; unset: DP_LLM_API_KEY."
    )
    allow_private: bool = Field(
        default=False, description="Allow a private or loopback endpoint (a local model server)."
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDR networks the endpoint may be in (the code location: DP_LLM_ALLOWED_NETWORKS).",
    )
    request_timeout_seconds: float = Field(default=120.0, gt=0, description="Longest single completion request.")
    max_response_bytes: int = Field(default=5_000_000, gt=0)
    max_redirects: int = Field(
        default=2,
        ge=0,
        description="Redirects a completion request follows (0: none); "
        "the API key never follows one to another origin.",
    )
    retries: int = Field(default=2, ge=0, description="Retries of a completion on 429/5xx/timeouts.")
    max_steps: int = Field(default=20, ge=1, description="Ceiling of an agent's model calls per run.")
    max_tool_calls: int = Field(default=50, ge=0, description="Ceiling of an agent's tool calls per run.")
    max_total_tokens: int = Field(default=200_000, ge=1, description="Ceiling of an agent's token budget per run.")
    max_timeout_seconds: float = Field(default=900.0, gt=0, description="Ceiling of an agent's total time.")

    def endpoint(self) -> tuple[str, str, str | None]:
        """``(base_url, model, api_key)``: this resource's, else the settings' (read when used).

        A resource: Dagster calls it in the run, so the settings are :func:`dp_settings.current`.
        """
        settings = current().llm
        base = (self.base_url or settings.base_url or "").strip()
        if not base:
            raise LlmError(
                "environment variable DP_LLM_BASE_URL is not set; set it to the chat-completions "
                "base URL (e.g. https://api.example.com/v1)"
            )
        model = (self.model or settings.model or "").strip()
        key = self.api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
        return base.rstrip("/"), model, key or None

    def _http(self, timeout: float) -> HttpResource:
        return HttpResource(
            allow_private=self.allow_private,
            allowed_networks=list(self.allowed_networks),
            max_bytes=self.max_response_bytes,
            timeout_seconds=timeout,
            max_redirects=self.max_redirects,
            opened_by="DP_LLM_ALLOWED_NETWORKS",
        )

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout_seconds: float | None = None,
    ) -> ChatReply:
        """One ``POST {base}/chat/completions``; returns the first choice."""
        base, default_model, key = self.endpoint()
        chosen = model or default_model
        if not chosen:
            raise LlmError("no model: set the node's `model` or environment variable DP_LLM_MODEL")
        body: dict[str, Any] = {"model": chosen, "messages": messages}
        if tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        if max_tokens:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = min(timeout_seconds or self.request_timeout_seconds, self.request_timeout_seconds)
        started = time.monotonic()
        response = send_with_retries(
            self._http(timeout),
            "POST",
            f"{base}/chat/completions",
            json=body,
            headers=headers,
            retries=self.retries,
            backoff_seconds=1.0,
        )
        return parse_reply(response.content, chosen, time.monotonic() - started)


def _not_a_completion(why: str) -> LlmError:
    return LlmError(f"the endpoint did not answer a chat completion ({why})")


def _text_content(content: Any) -> str | None:
    """The message's text: a string, null, or a list of ``{"type": "text", "text": ...}`` parts
    (joined); any other shape is not a chat completion."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and isinstance(part.get("text"), str) for part in content
    ):
        return "".join(part["text"] for part in content)
    raise _not_a_completion(f"the message's content is {type(content).__name__}, not text")


def parse_reply(content: bytes, model: str, duration_s: float) -> ChatReply:
    """The first choice of a chat-completion body. A body of another shape (a proxy's error page,
    a server's own format) is an ``LlmError`` saying what was wrong, never another exception."""
    try:
        payload = json.loads(content)
        choice = payload["choices"][0]
        message = choice["message"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise _not_a_completion(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(message, dict) or not isinstance(choice, dict):
        raise _not_a_completion(f"the choice's message is {type(message).__name__}, not an object")
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list) or not all(
        isinstance(call, dict) and isinstance(call.get("function") or {}, dict) for call in raw_calls
    ):
        raise _not_a_completion("tool_calls is not a list of objects with a 'function' object")
    text = _text_content(message.get("content"))
    calls: list[ToolCall] = []
    for call in raw_calls:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        calls.append(
            ToolCall(
                id=str(call.get("id") or f"call_{len(calls)}"),
                name=str(function.get("name") or ""),
                arguments=arguments,
            )
        )
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    usage = {
        k: int(v)
        for k, v in usage.items()
        if k in ("prompt_tokens", "completion_tokens", "total_tokens") and isinstance(v, (int, float))
    }
    if "total_tokens" not in usage and usage:
        usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    return ChatReply(
        content=text,
        tool_calls=tuple(calls),
        finish_reason=choice.get("finish_reason"),
        usage=usage,
        model=str(payload.get("model") or model),
        duration_s=duration_s,
        raw_message=message,
    )
