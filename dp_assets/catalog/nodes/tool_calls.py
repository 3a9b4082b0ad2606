"""What every tool node (``dp_assets.catalog.nodes.tools``, and the agent's tools) shares: filling
data templates (``{{ input.path }}``, ``{{ row.col }}``, ``{{ args.name }}``) into the params,
then the author's secret references; errors that leave redacted; the calls recorded with the run
(materialisation metadata and log lines); the result of one call."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dp_assets.catalog.base import InputSpec, NodeContext, Params
from dp_assets.deferred import pd
from dp_assets.spec import inert
from dp_resources.secrets import SecretScope, as_written

OPTIONAL_INPUTS = InputSpec(names=(), variadic=True, min_count=0)
#: A path never runs through the private-use marker of dp_assets.spec.inert: a param's text
#: cannot extend the author's template (``{{ input.c`` + ``ol }}``).
DATA_TEMPLATE = re.compile(r"\{\{\s*(input|row|args)((?:\.[^\s{}.\ue000]+)*)\s*\}\}")
MAX_RECORDED_CALLS = 50
JsonScalar = str | int | float | bool | None


class TemplateError(ValueError):
    pass


def lookup(data: dict[str, Any], root: str, path: str, where: str) -> Any:
    if root not in data:
        raise TemplateError(f"{where}: '{{{{ {root}{path} }}}}' has no value here (no {root} is available)")
    value = json_records(data[root])
    for key in [k for k in path.split(".") if k]:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.lstrip("-").isdigit() and -len(value) <= int(key) < len(value):
            value = value[int(key)]
        else:
            raise TemplateError(f"{where}: '{{{{ {root}{path} }}}}': no '{key}'")
    return as_written(value)  # data never carries a sealed (resolvable) reference into params


def json_records(value: Any) -> Any:
    """Frames and series as JSON-native records (numbers, strings, ISO dates)."""
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return json.loads(value.to_json(orient="records", date_format="iso"))
    return value


def fill(value: Any, data: dict[str, Any], where: str = "params", url: bool = False) -> Any:
    """``value`` with ``{{ input.x }}`` / ``{{ row.x }}`` / ``{{ args.x }}`` filled from ``data``."""
    if isinstance(value, str):
        whole = DATA_TEMPLATE.fullmatch(value.strip())
        if whole:  # a whole-value template keeps the type (a whole URL is taken as written)
            return lookup(data, whole.group(1), whole.group(2), where)

        def text(match: re.Match) -> str:
            found = lookup(data, match.group(1), match.group(2), where)
            found = found if isinstance(found, str) else json.dumps(found, default=str)
            return inert.literal(quote(found, safe="") if url else found)

        # One pass over the author's text: flow params in it are inert (dp_assets.spec.inert), so
        # a launch param cannot form a template; the text is restored once the templates are filled.
        return inert.restore(DATA_TEMPLATE.sub(text, value))
    if isinstance(value, dict):
        return {k: fill(v, data, f"{where}.{k}", url) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, data, f"{where}[{i}]", url) for i, v in enumerate(value)]
    return value


def template_data(inputs: dict[str, Any]) -> dict[str, Any]:
    if not inputs:
        return {}
    return {"input": next(iter(inputs.values())) if len(inputs) == 1 else dict(inputs)}


def prepared(
    ctx: NodeContext, params: Params, data: dict[str, Any], scope: SecretScope, url_fields: tuple[str, ...] = ("url",)
) -> dict[str, Any]:
    """The node's params as a dict: data templates filled, then the author's secret references resolved."""
    raw = params.model_dump()
    filled = {k: fill(v, data, f"params.{k}", url=k in url_fields) for k, v in raw.items()}
    return scope.resolve(filled, "params")


@contextmanager
def guarded(ctx: NodeContext, node_type: str, scope: SecretScope):
    """Errors leave with their message redacted and without their (unredacted) chain."""
    try:
        with scope.logs_redacted():
            yield
    except Exception as exc:  # noqa: BLE001 - every error is re-raised, redacted
        raise scope.safe_error(exc, f"node '{ctx.node_id}' ({node_type}) of flow '{ctx.flow_id}'") from None


def record_calls(ctx: NodeContext, scope: SecretScope, calls: list[dict[str, Any]]) -> None:
    """Summaries of the node's calls as materialisation metadata (and one log line each)."""
    for call in calls[:MAX_RECORDED_CALLS]:
        ctx.log.info(scope.redact(f"{ctx.node_id}: {json.dumps(call, default=str)[:500]}"))
    ctx.add_metadata(
        **scope.redact_value(
            {
                "calls": calls[:MAX_RECORDED_CALLS],
                "call_count": len(calls),
                "call_seconds": round(sum(float(c.get("duration_s") or 0) for c in calls), 4),
            }
        )
    )


@dataclass(frozen=True)
class ToolRun:
    """What one tool invocation gave: the value, and a one-line summary for the call log."""

    value: Any
    record: dict[str, Any]
