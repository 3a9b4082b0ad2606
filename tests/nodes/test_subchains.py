"""One path for a flow's nodes and a sub-chain's body (``TryCatch``, ``ForEach``).

A body is planned and run as a flow's nodes are, so what holds for a node of the flow holds for
the same node in a body, with no code of the body's own: the validator refuses it with the same
words, its params are rendered by the same rules (secret references sealed only for a node that
resolves secrets, flow params inert only for a node that fills data templates), and it is
retried and fails with an error naming flow, node and field, the node being ``ForEach[item].id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from node_helpers import run_node
from pydantic import Field

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import SKIPPED, Catalog, NodeContext, NodeOutputs, NodeType, Params
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import FlowValidationError, validate_spec

SOURCE = {"id": "src", "type": "StaticData", "params": {"rows": [{"k": "a", "qty": 1}]}}


def errors_of(spec: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(spec, default_catalog())
    return [(e.node, e.field, e.message) for e in caught.value.errors]


REFUSED = [
    pytest.param({"type": "SelectColumns"}, id="missing-params"),
    pytest.param({"type": "SampleRows", "params": {"n": -1}}, id="SampleRows-bad-value"),
    pytest.param({"type": "SampleRows", "params": {"n": 1, "frac": 0.5}}, id="SampleRows-model-rule"),
    pytest.param({"type": "SampleRows", "params": {"nn": 1}}, id="unknown-param"),
    pytest.param({"type": "SampleRows", "retry": {"max_retries": -1}}, id="bad-retry"),
    pytest.param({"type": "SampelRows"}, id="unknown-type"),
    pytest.param({"type": "SelectColumns", "params": {"columns": ["k"]}, "inputs": 2}, id="two-inputs-for-one"),
    pytest.param({"type": "JoinMerge", "params": {"on": "k"}, "inputs": 1}, id="JoinMerge-one-input-for-two"),
]


@pytest.mark.parametrize("node", REFUSED)
@pytest.mark.parametrize("type_name", ["ForEach", "TryCatch"])
def test_a_body_node_is_refused_as_a_flow_node_is(type_name: str, node: dict[str, Any]) -> None:
    """The validator's rules for a node hold in a body: same field, same words, the field under
    ``params.body[i]`` of the sub-chain node."""

    def spec(written: dict[str, Any], source: str) -> dict[str, Any]:
        inputs = {"inputs": [source] * written["inputs"]} if "inputs" in written else {}
        return {**{k: v for k, v in written.items() if k != "inputs"}, "id": "n", **inputs}

    at_top = errors_of({"id": "f", "nodes": [SOURCE, spec({"inputs": 1, **node}, "src")]})
    in_body = errors_of(
        {
            "id": "f",
            "nodes": [
                SOURCE,
                {"id": "wrap", "type": type_name, "inputs": ["src"], "params": {"body": [spec(node, "input")]}},
            ],
        }
    )
    assert at_top and all(where == "n" for where, _, _ in at_top), at_top
    assert {(field, message) for _, field, message in at_top} == {
        (field.removeprefix("params.body[0]."), message) for where, field, message in in_body if where == "wrap"
    }, in_body


# --- running -----------------------------------------------------------------------------------


class EchoParams(Params):
    text: str = Field(description="Recorded as the node received it.")


def _echo_catalog(seen: dict[str, str]) -> Catalog:
    def echo(ctx: NodeContext, params: EchoParams, inputs: dict[str, Any]) -> pd.DataFrame:
        """Record the text as received."""
        seen[ctx.node_id] = params.text
        return pd.DataFrame({"text": [params.text]})

    return default_catalog().extended(
        [
            NodeType("Echo", EchoParams, echo, "test"),
            # resolves secrets and fills data templates (as HttpTool does): sealed, params inert
            NodeType("EchoTool", EchoParams, echo, "test", resources=frozenset({"secrets"}), data_templates=True),
        ]
    )


def _run(
    spec: dict[str, Any],
    catalog: Catalog,
    tmp_path: Path,
    params: dict[str, Any],
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(spec, catalog), catalog),
        dg.Definitions(
            resources={
                "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io")),
                "secrets": dg.ResourceDefinition.none_resource(),
            }
        ),
    )
    return defs.resolve_job_def(spec["id"]).execute_in_process(
        run_config=params, instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


def test_a_body_node_gets_its_params_as_a_flow_node_does(tmp_path: Path) -> None:
    """Each node's params are rendered by its own type's rules, in a body as in the flow: a
    node that resolves no secrets keeps the author's `${env:NAME}` as text, a launch param
    reaches a node that fills data templates inert, though both share one body."""
    seen: dict[str, str] = {}
    text = "${env:DP_SECRET_X} / {{ params.p }}"
    pair = [
        {"id": "plain", "type": "Echo", "params": {"text": text}},
        {"id": "tool", "type": "EchoTool", "inputs": ["input"], "params": {"text": text}},
    ]
    spec = {
        "id": "rendered",
        "params": {"p": {"type": "string", "default": ""}},
        "nodes": [
            SOURCE,
            *[{**node, "inputs": ["src"]} for node in pair],
            {"id": "each", "type": "ForEach", "inputs": ["src"], "params": {"group_by": "k", "body": pair}},
            {"id": "guard", "type": "TryCatch", "inputs": ["src"], "params": {"body": pair}},
        ],
    }
    result = _run(spec, _echo_catalog(seen), tmp_path, {"p": "{{ row.k }}"})
    assert result.success
    assert seen["plain"] != seen["tool"]  # the two types' rules differ
    assert seen["each[a].plain"] == seen["guard.plain"] == seen["plain"]
    assert seen["each[a].tool"] == seen["guard.tool"] == seen["tool"]


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    cause = failure.step_failure_data.error
    while cause.cause is not None and "NodeFailed" not in cause.cls_name:
        cause = cause.cause
    return cause.message.split(f"{cause.cls_name}: ", 1)[-1].strip()


@pytest.mark.parametrize("type_name", ["ForEach", "TryCatch"])
def test_a_body_node_is_retried_and_fails_as_a_flow_node_does(tmp_path: Path, type_name: str) -> None:
    """A body node whose param (from a launch param) is invalid is retried as planned and fails
    with the flow node's error, naming flow, sub-chain node and item, body node and field."""
    node = {"id": "pick", "type": "SampleRows", "params": {"n": "{{ params.n }}"}, "retry": {"max_retries": 1}}
    params = {"n": {"type": "integer", "default": 1}}
    alone = _run(
        {"id": "f", "params": params, "nodes": [SOURCE, {**node, "inputs": ["src"]}]},
        default_catalog(),
        tmp_path / "alone",
        {"n": -1},
    )
    assert not alone.success
    at_top = _failure_message(alone)
    assert at_top.startswith("flow 'f', node 'pick' (SampleRows) failed after 2 attempts: ValidationError:")
    assert "\nn\n" in at_top  # the field

    wrapped = {"id": "wrap", "type": type_name, "inputs": ["src"], "params": {"body": [node]}}
    if type_name == "ForEach":
        wrapped["params"].update(group_by="k", max_failed=0)
    instance = dg.DagsterInstance.ephemeral()
    body = _run(
        {"id": "f", "params": params, "nodes": [SOURCE, wrapped]},
        default_catalog(),
        tmp_path / "body",
        {"n": -1},
        instance,
    )
    item = "[a]" if type_name == "ForEach" else ""
    expected = at_top.replace("node 'pick'", f"node 'wrap{item}.pick'")
    logged = [entry.user_message for entry in instance.all_logs(body.run_id)]
    assert any(expected in message for message in logged), logged


@pytest.mark.parametrize("on_error", ["fail", "continue"])
def test_a_failing_body_node_with_on_error_continue_skips_its_dependants(on_error: str) -> None:
    """`on_error: continue` lets the body go on without the node, as in a flow: its dependants
    skip, so the TryCatch has neither a result nor an error to catch; `fail` is caught."""
    body = [
        {"id": "cast", "type": "ChangeDataType", "on_error": on_error, "params": {"dtype": {"k": "int64"}}},
        {"id": "pick", "type": "SelectColumns", "params": {"columns": ["k"]}},
    ]
    result = run_node("TryCatch", {"body": body}, {"input": pd.DataFrame({"k": ["a"]})})
    assert isinstance(result, NodeOutputs) and result.values["result"] is SKIPPED
    caught = result.values["catch"]
    if on_error == "continue":
        assert caught is SKIPPED
    else:
        assert caught[["node", "error_type"]].values.tolist() == [["cast", "ValueError"]]
