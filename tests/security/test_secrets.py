"""S6: a planted secret appears nowhere — run config, tags, event log, compute logs, run storage,
stored outputs, error messages — after a real run of tool and agent nodes that use it.

The flow sends the secret for real (the loopback server receives it, echoes it back in bodies and
error texts), so the test is not vacuous; then every file of the DagsterInstance (SQLite run,
event-log and schedule storage, with compressed blobs inflated), the compute logs, the run-scoped
outputs, the events and the captured process output are searched for it in plain, URL-, JSON-
and base64-encoded forms.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import sys
import zlib
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from tool_servers import StubLlm, TargetServer, tool_call

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec
from dp_resources.secrets import SecretError, SecretScope, references

SECRET = "pl4nted-Secret-Value-20261122"
FORMS = [SECRET, quote(SECRET, safe=""), base64.b64encode(SECRET.encode()).decode().rstrip("=")]


# --- the redaction helper ------------------------------------------------------------------


def test_S6_scope_redacts_every_form_of_a_resolved_secret(monkeypatch):
    import pandas as pd

    monkeypatch.setenv("DP_SECRET_X", "a+b/c d&e=f")
    scope = SecretScope()
    resolved = scope.resolve_written({"h": ["Bearer ${env:DP_SECRET_X}"]})
    assert resolved == {"h": ["Bearer a+b/c d&e=f"]}
    text = f"raw a+b/c d&e=f url {quote('a+b/c d&e=f', safe='')} json {json.dumps('a+b/c d&e=f')}"
    assert "a+b" not in scope.redact(text) and scope.redact(text).count("***") == 3
    frame = scope.redact_value(pd.DataFrame({"v": ["x a+b/c d&e=f"], "n": [1]}))
    assert frame["v"].tolist() == ["x ***"] and frame["n"].tolist() == [1]
    assert scope.redact_value({"k": (b"a+b/c d&e=f",)}) == {"k": (b"***",)}


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("${env:HOME}", "not an allowed secret name"),
        ("${env:DP_SECRET_UNSET}", "is not set"),
        ("${env:DP_SECRET_SHORT}", "too short to be redacted"),
    ],
    ids=["S6-name-not-allowed", "S6-unset", "S6-too-short"],
)
def test_S6_refused_references_never_show_a_value(monkeypatch, reference, message):
    monkeypatch.setenv("DP_SECRET_SHORT", "ab")
    with pytest.raises(SecretError, match=message) as info:
        SecretScope().resolve_written({"x": reference}, "params")
    assert "ab" not in str(info.value).replace("Tab", "").split("(")[0] or message != "too short"
    assert references({"a": [reference, "${env:OTHER}"]}) == [reference[6:-1], "OTHER"]


def test_S6_safe_error_keeps_the_type_and_drops_the_chain():
    scope = SecretScope(environ={"DP_SECRET_K": SECRET})
    scope.resolve_written("${env:DP_SECRET_K}")
    error = scope.safe_error(ValueError(f"no {SECRET}"), "node 'n'")
    assert type(error) is ValueError and SECRET not in str(error) and "node 'n'" in str(error)
    odd = scope.safe_error(UnicodeDecodeError("utf-8", SECRET.encode(), 0, 1, SECRET), "node 'n'")
    assert SECRET not in str(odd)


# --- a real run ----------------------------------------------------------------------------


def _flow(target: str) -> dict:
    token = "${env:DP_SECRET_TOKEN}"
    return {
        "id": "secret_flow",
        "nodes": [
            {
                "id": "echo_auth",
                "type": "HttpTool",
                "params": {
                    "url": f"{target}/echo",
                    "headers": {"X-Token": token},
                    "query": {"k": token},
                    "auth": {"type": "bearer", "token": token},
                },
            },
            {
                "id": "shell_env",
                "type": "ShellTool",
                "params": {"argv": ["printenv", "TOKEN"], "env": {"TOKEN": token}},
            },
            {
                "id": "agent",
                "type": "LlmAgent",
                "inputs": ["echo_auth"],
                "params": {
                    "prompt": "Summarise {{ input }}",
                    "tools": [
                        {
                            "name": "peek",
                            "type": "HttpTool",
                            "params": {"url": f"{target}/echo", "headers": {"Authorization": f"Bearer {token}"}},
                        }
                    ],
                },
            },
            {
                "id": "fails_soft",
                "type": "HttpTool",
                "on_error": "continue",
                "params": {"url": f"{target}/status/500?t={token}", "retries": 0},
            },
            {
                "id": "fails_hard",
                "type": "HttpTool",
                "inputs": ["agent"],
                "retry": {"max_retries": 1},
                "params": {"url": f"{target}/status/403", "query": {"t": token}, "retries": 0},
            },
        ],
    }


def _resources(tmp_path: Path) -> dict:
    from dp_io import RunScopedIOManager
    from dp_resources.http import HttpResource
    from dp_resources.llm import LlmResource
    from dp_resources.mcp_client import McpResource
    from dp_resources.sandbox import SandboxResource
    from dp_resources.secrets_resource import SecretsResource
    from dp_resources.shell import ShellResource

    return {
        "io_manager": RunScopedIOManager(base_url=str(tmp_path / "outputs")),
        "http": HttpResource(allow_private=True, timeout_seconds=10),
        "shell": ShellResource(enabled=True, allowed_programs=["printenv"], root=str(tmp_path / "shell")),
        "sandbox": SandboxResource(),
        "mcp": McpResource(),
        "llm": LlmResource(allow_private=True, request_timeout_seconds=10),
        "secrets": SecretsResource(),
    }


def _run_flow(spec: dict, tmp_path: Path, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    """One in-process run of ``spec`` with the platform's resources, on a throwaway instance."""
    catalog = default_catalog()
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(spec, catalog), catalog), dg.Definitions(resources=_resources(tmp_path))
    )
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        return defs.resolve_job_def(spec["id"]).execute_in_process(run_config=run_config, instance=instance)


def _hits_in_sqlite(path: Path) -> list[str]:
    hits = []
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in db.execute(f'select * from "{table}"'):
                for cell in row:
                    texts = []
                    if isinstance(cell, str):
                        texts.append(cell)
                    elif isinstance(cell, bytes):
                        texts.append(cell.decode("utf-8", "replace"))
                        try:
                            texts.append(zlib.decompress(cell).decode("utf-8", "replace"))
                        except zlib.error:
                            pass
                    hits += [f"{path.name}:{table}" for text in texts for form in FORMS if form in text]
    return hits


def _hits_in_files(root: Path) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data[:16].startswith(b"SQLite format 3"):
            hits += _hits_in_sqlite(path)
        for blob in (data, _inflate(data)):
            hits += [str(path) for form in FORMS if form.encode() in blob]
    return hits


def _inflate(data: bytes) -> bytes:
    for wbits in (zlib.MAX_WBITS, 16 + zlib.MAX_WBITS):
        try:
            return zlib.decompress(data, wbits)
        except zlib.error:
            continue
    return b""


def test_S6_planted_secret_appears_nowhere_after_a_real_run(tmp_path, monkeypatch, capfd, caplog):
    """S6: run config, tags, event log, compute logs, run storage, outputs and errors hold no secret."""
    monkeypatch.setenv("DP_SECRET_TOKEN", SECRET)
    monkeypatch.setenv("DP_LLM_API_KEY", SECRET)
    monkeypatch.setenv("DP_LLM_MODEL", "stub")
    caplog.set_level(logging.DEBUG)
    target = TargetServer()
    llm = StubLlm(
        lambda body: (
            {"content": None, "tool_calls": [tool_call("peek", {})]}
            if body["messages"][-1]["role"] == "user"
            else {"content": "summary: " + body["messages"][-1]["content"][:3000]}
        )
    )
    monkeypatch.setenv("DP_LLM_BASE_URL", llm.base_url)
    try:
        catalog = default_catalog()
        validated = validate_spec(_flow(target.url), catalog)
        defs = dg.Definitions.merge(
            build_flow_definitions(validated, catalog), dg.Definitions(resources=_resources(tmp_path))
        )
        job = defs.resolve_job_def("secret_flow")
        (tmp_path / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            run = instance.get_run_by_id(result.run_id)
            records = instance.get_records_for_run(result.run_id).records
            events_text = "\n".join(dg.serialize_value(r.event_log_entry) for r in records)
            from dp_io import load_latest_output

            io_manager = _resources(tmp_path)["io_manager"]
            shell_value = load_latest_output(instance, dg.AssetKey(["secret_flow", "shell_env"]), io_manager)
            agent_value = load_latest_output(instance, dg.AssetKey(["secret_flow", "agent"]), io_manager)
    finally:
        target.close()
        llm.close()

    # the secret was really used ...
    assert any(r["headers"].get("X-Token") == SECRET for r in target.requests)
    assert any(r["headers"].get("Authorization") == f"Bearer {SECRET}" for r in llm.requests)
    assert not result.success  # fails_hard failed the run, after the others materialised
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "node 'fails_hard' (HttpTool)" in failure.to_string() and "answered 403" in failure.to_string()
    # ... and is stored nowhere
    assert shell_value["stdout"].strip() == "***"
    assert "Bearer ***" in json.dumps(agent_value["transcript"])
    assert "Bearer ***" in agent_value["answer"] and "'t': '***'" not in agent_value["answer"]
    assert not [form for form in FORMS if form in events_text], "event log entries hold the secret"
    assert not [form for form in FORMS if form in json.dumps(run.run_config) + json.dumps(run.tags)]
    hits = _hits_in_files(tmp_path)
    assert not hits, f"secret found in {sorted(set(hits))}"
    assert (tmp_path / "dagster" / "storage").exists() and list((tmp_path / "outputs").rglob("*"))
    out, err = capfd.readouterr()
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert not [form for form in FORMS if form in out + err + logs], "process output or logs hold the secret"


# --- composed references (issue 16): only the author's own text resolves --------------------

PLANTED = "DP_SECRET_PLANTED"
PLANTED_VALUE = "pl4nted-By-The-Operator-7781"
CONTROL_VALUE = "c0ntrol-Written-By-Author-2203"
# Pieces a caller might use to compose a reference, including a seal with a wrong MAC and (built
# in the test, with this process's key) a genuine seal that leaked and is fed back as data.
FRAGMENTS = [
    "$",
    "{",
    "}",
    "env:",
    "{env:",
    "${env:",
    PLANTED,
    "{env:" + PLANTED + "}",
    "${env:" + PLANTED + "}",
    "$$",
    "{{",
    "}}",
    "params.a",
    "x y",
    "$[dp-secret:",
    f"$[dp-secret:{PLANTED}:{'0' * 32}]",
]
AUTHOR_REFS = [
    "{{ params.a }}",
    "{{ params.b }}",
    "{{ params.event }}",
    "{{ input.0.a }}",
    "{{ input.0.b }}",
    "{{ input.1.a }}",
]
AUTHOR_LITERALS = ["prefix$", "$", "${env:", "{env:", "env:", PLANTED, "}", "/", "${", "{"]


def _fragment_text():
    from hypothesis import strategies as st

    from dp_resources.secrets import seal_written

    leaked = seal_written("${env:" + PLANTED + "}")
    return st.lists(st.sampled_from([*FRAGMENTS, leaked]), min_size=0, max_size=4).map("".join)


def _author_text():
    """A spec author's string: literal pieces and template references side by side."""
    from hypothesis import strategies as st

    from dp_assets.spec.templates import TEMPLATE
    from dp_resources.secrets import ENV_REFERENCE

    def honest(text: str) -> bool:  # the author never wrote the planted reference themselves
        return not any(ENV_REFERENCE.search(part) for part in TEMPLATE.split(text)[::2])

    parts = st.lists(st.sampled_from(AUTHOR_LITERALS + AUTHOR_REFS), min_size=1, max_size=5).map("".join)
    return parts.filter(honest)


def _caller_inputs():
    """Launch params, an event payload and upstream rows, all built from reference fragments."""
    import pandas as pd
    from hypothesis import strategies as st

    text = _fragment_text()
    params = st.fixed_dictionaries({"a": text, "b": text, "event": st.fixed_dictionaries({"a": text, "b": text})})
    rows = st.lists(st.fixed_dictionaries({"a": text, "b": text}), min_size=2, max_size=2).map(pd.DataFrame)
    return st.tuples(params, rows)


def _http_params(author: str, url: str) -> dict:
    return {
        "url": f"{url}/echo?q={author}",
        "method": "POST",
        "headers": {"X-Composed": f"v:{author}", "X-Control": "${env:DP_SECRET_CONTROL}"},
        "query": {"k": author},
        "body": {"t": author, "whole": author},
    }


def _secret_env(monkeypatch) -> None:
    monkeypatch.setenv(PLANTED, PLANTED_VALUE)
    monkeypatch.setenv("DP_SECRET_CONTROL", CONTROL_VALUE)


def test_S6_templates_seal_only_references_in_the_authors_literal_text():
    """S6: rendering seals `${env:}` in literal text only; what a param puts in is never a reference."""
    from dp_assets.spec.templates import render
    from dp_resources.secrets import sealed_names

    params = {"a": "$", "b": "{env:" + PLANTED + "}", "n": 3}
    rendered = render(
        {
            "h": "prefix${{ params.b }}",
            "two": "{{ params.a }}{{ params.b }}",
            "wrap": "${env:{{ params.n }}}",
            "n": "{{ params.n }}",
            "mine": "Bearer ${env:DP_SECRET_X}",
        },
        params,
    )
    assert [list(sealed_names(rendered[k])) for k in ("h", "two", "wrap", "mine")] == [[], [], [], ["DP_SECRET_X"]]
    assert rendered["two"] == "${env:" + PLANTED + "}" and rendered["n"] == 3


def test_S6_composed_references_never_resolve_in_prepared_params(monkeypatch):
    """S6 (property): whatever launch params, event payloads and upstream values hold or compose,
    the params a tool node sends hold the planted secret nowhere; the author's own reference resolves."""
    from hypothesis import given

    from dp_assets.catalog.base import NodeContext
    from dp_assets.catalog.nodes.tools import HttpToolParams, prepared, template_data
    from dp_assets.spec.templates import render
    from tests.fuzzing import fuzz_settings

    _secret_env(monkeypatch)

    @fuzz_settings(150)
    @given(author=_author_text(), caller=_caller_inputs())
    def check(author, caller):
        flow_params, rows = caller
        ctx = NodeContext("composed", "send", "run-1", flow_params, {})
        scope = SecretScope()
        params = HttpToolParams.model_validate(render(_http_params(author, "http://example.test"), flow_params))
        sent = prepared(ctx, params, template_data({"up.result": rows}), scope)
        text = json.dumps(sent)
        assert PLANTED_VALUE not in text, (author, flow_params, rows.to_dict("records"))
        assert sent["headers"]["X-Control"] == CONTROL_VALUE

    check()


def test_S6_composed_references_never_reach_a_server(monkeypatch):
    """S6 (property, end to end): HttpTool and an agent's HttpTool send requests to a real loopback
    server built from hostile launch params, event payloads, upstream rows and model arguments; the
    planted secret is in none of them, while the author's own reference arrives resolved."""
    from hypothesis import given
    from hypothesis import strategies as st

    from dp_assets.catalog.base import NodeContext
    from dp_assets.catalog.nodes.agents import LlmAgentParams, ToolBox
    from dp_assets.catalog.nodes.tools import HttpToolParams, http_tool, template_data
    from dp_assets.spec.templates import render
    from dp_resources.http import HttpResource
    from tests.fuzzing import fuzz_settings

    _secret_env(monkeypatch)
    target = TargetServer()
    http = HttpResource(allow_private=True, timeout_seconds=5)
    try:

        @fuzz_settings(40)
        @given(author=_author_text(), caller=_caller_inputs(), args=st.tuples(_fragment_text(), _fragment_text()))
        def check(author, caller, args):
            flow_params, rows = caller
            ctx = NodeContext("composed", "send", "run-1", flow_params, {"http": http})
            before = len(target.requests)
            raw = _http_params(author, target.url)
            http_tool(ctx, HttpToolParams.model_validate(render(raw, flow_params)), {"up.result": rows})
            tool = {**raw, "headers": {**raw["headers"], "X-Args": "${{ args.x }}{{ args.y }}"}}
            agent = LlmAgentParams.model_validate(
                render({"prompt": "p", "tools": [{"name": "send", "type": "HttpTool", "params": tool}]}, flow_params)
            )
            box = ToolBox(ctx, agent.tools, SecretScope(), template_data({"up.result": rows}))
            box.run("send", {"x": args[0], "y": args[1]})
            seen = target.requests[before:]
            assert len(seen) == 2 and all(r["headers"]["X-Control"] == CONTROL_VALUE for r in seen)
            assert PLANTED_VALUE not in json.dumps(seen), (author, flow_params, rows.to_dict("records"), args)

        check()
    finally:
        target.close()


@pytest.mark.parametrize(
    ("header", "flow_params", "row", "args"),
    [
        ("prefix{{ params.a }}{{ params.b }}", {"a": "x$", "b": "{env:" + PLANTED + "}"}, {}, {}),
        ("prefix${{ params.b }}", {"b": "{env:" + PLANTED + "}"}, {}, {}),
        ("{{ input.0.a }}{{ input.0.b }}", {}, {"a": "$", "b": "{env:" + PLANTED + "}"}, {}),
        ("{{ params.a }}{{ input.0.b }}", {"a": "$"}, {"b": "{env:" + PLANTED + "}"}, {}),
        ("${{ args.x }}", {}, {}, {"x": "{env:" + PLANTED + "}"}),
        ("{{ args.x }}{{ args.y }}", {}, {}, {"x": "$", "y": "{env:" + PLANTED + "}"}),
    ],
    ids=[
        "S6-two-params",
        "S6-literal-dollar-then-param",
        "S6-two-columns",
        "S6-param-then-column",
        "S6-literal-dollar-then-argument",
        "S6-two-arguments",
    ],
)
def test_S6_pieces_of_a_reference_stay_literal_text(monkeypatch, header, flow_params, row, args):
    """S6 regression (issue 16): a reference composed from a launch param, upstream data or a model's
    arguments and the spec's text beside it is sent as literal text, never resolved."""
    import pandas as pd

    from dp_assets.catalog.base import NodeContext
    from dp_assets.catalog.nodes.agents import LlmAgentParams, ToolBox
    from dp_assets.catalog.nodes.tools import template_data
    from dp_assets.spec.templates import render
    from dp_resources.http import HttpResource

    _secret_env(monkeypatch)
    target = TargetServer()
    try:
        ctx = NodeContext("composed", "send", "run-1", flow_params, {"http": HttpResource(allow_private=True)})
        tool = {"url": f"{target.url}/echo", "headers": {"X-Composed": header}}
        agent = LlmAgentParams.model_validate(
            render({"prompt": "p", "tools": [{"name": "send", "type": "HttpTool", "params": tool}]}, flow_params)
        )
        ToolBox(ctx, agent.tools, SecretScope(), template_data({"up.result": pd.DataFrame([row or {"a": 1}])})).run(
            "send", args
        )
        sent = target.requests[-1]["headers"]["X-Composed"]
    finally:
        target.close()
    assert sent.endswith("${env:" + PLANTED + "}") and PLANTED_VALUE not in sent


def test_S6_launch_params_and_event_payloads_cannot_compose_a_reference_in_a_real_run(tmp_path, monkeypatch):
    """S6 (issue 16, end to end): a run launched with params and an event payload made of reference
    pieces, through the runtime's own rendering: the loopback server receives the literal text, the
    author's reference resolved, and the planted secret nowhere."""
    _secret_env(monkeypatch)
    target = TargetServer()
    composed = "{env:" + PLANTED + "}"
    spec = {
        "id": "composed_flow",
        "params": {
            "a": {"type": "string", "default": "x"},
            "b": {"type": "string", "default": "y"},
            "event": {"type": "object"},
        },
        "nodes": [
            {"id": "events", "type": "WebhookListener", "params": {"record_path": "rows"}},
            {
                "id": "send",
                "type": "HttpTool",
                "inputs": ["events"],
                "params": {
                    "url": f"{target.url}/echo",
                    "for_each_row": True,
                    "headers": {
                        "X-Params": "prefix{{ params.a }}{{ params.b }}",
                        "X-Dollar": "p${{ params.b }}",
                        "X-Rows": "{{ row.x }}{{ row.y }}",
                        "X-Control": "${env:DP_SECRET_CONTROL}",
                    },
                },
            },
        ],
    }
    launch = {
        "a": "$",
        "b": composed,
        "event": {"rows": [{"x": "$", "y": composed}, {"x": "${env:", "y": PLANTED + "}"}]},
    }
    try:
        result = _run_flow(spec, tmp_path, launch)
        seen = list(target.requests)
    finally:
        target.close()
    assert result.success and len(seen) == 2
    assert [r["headers"]["X-Rows"] for r in seen] == ["${env:" + PLANTED + "}"] * 2
    assert {r["headers"]["X-Params"] for r in seen} == {"prefix${env:" + PLANTED + "}"}
    assert {r["headers"]["X-Dollar"] for r in seen} == {"p${env:" + PLANTED + "}"}
    assert {r["headers"]["X-Control"] for r in seen} == {CONTROL_VALUE}
    assert PLANTED_VALUE not in json.dumps(seen)


def test_S6_api_nodes_read_secrets_only_through_the_secrets_policy(monkeypatch):
    """S6: ApiEndpoint/APIRequest headers may name only allowed variables (not the platform's own,
    e.g. a database URL); the author's `${env:}` in `headers` resolves, one composed from a launch
    param stays literal; the old `header_env` is read as `${env:}` under the same policy; a value
    the server echoes back is redacted from the output."""
    import pandas as pd

    from dp_assets.catalog.base import NodeContext
    from dp_assets.catalog.nodes.sinks_api import APIRequestParams, api_request
    from dp_assets.catalog.nodes.sources_api import ApiEndpointParams, api_endpoint
    from dp_assets.spec.secret_forms import SecretFormDeprecated, upgrade_nodes
    from dp_assets.spec.templates import render
    from dp_resources.http import HttpResource

    def old_form(node_type: str, params: dict) -> dict:  # as normalise_spec reads a stored spec
        with pytest.warns(SecretFormDeprecated, match="params.header_env: deprecated; write headers"):
            return upgrade_nodes([{"id": "api", "type": node_type, "params": params}], "api_flow")[0]["params"]

    _secret_env(monkeypatch)
    monkeypatch.setenv("DP_PLATFORM_DATABASE_URL", "postgresql://admin:pw-4321@db/dp")
    target = TargetServer()
    try:
        flow_params = {"a": "$", "b": "{env:" + PLANTED + "}"}
        ctx = NodeContext("api_flow", "api", "run-1", flow_params, {"http": HttpResource(allow_private=True)})
        before = len(target.requests)
        refused = r"headers.X-Db: \$\{env:DP_PLATFORM_DATABASE_URL\} is not an allowed secret name"
        with pytest.raises(SecretError, match=refused):
            api_endpoint(
                ctx,
                ApiEndpointParams.model_validate(
                    render(
                        old_form(
                            "ApiEndpoint",
                            {"url": f"{target.url}/page", "header_env": {"X-Db": "DP_PLATFORM_DATABASE_URL"}},
                        ),
                        {},
                    )
                ),
                {},
            )
        assert len(target.requests) == before
        raw = {
            "url": f"{target.url}/echo",
            "headers": {"X-Mine": "${env:DP_SECRET_CONTROL}", "X-Composed": "{{ params.a }}{{ params.b }}"},
            "header_env": {"X-Env": PLANTED},
            "idempotency_header": None,
        }
        log = api_request(
            ctx,
            APIRequestParams.model_validate(render(old_form("APIRequest", raw), flow_params)),
            {"input": pd.DataFrame({"n": [1]})},
        )
        sent = target.requests[-1]["headers"]
        assert sent["X-Mine"] == CONTROL_VALUE and sent["X-Env"] == PLANTED_VALUE
        assert sent["X-Composed"] == "${env:" + PLANTED + "}"
        echoed = log["response"].iloc[0]
        assert CONTROL_VALUE not in echoed and PLANTED_VALUE not in echoed and '"X-Env": "***"' in echoed
        frame = api_endpoint(
            ctx,
            ApiEndpointParams.model_validate(
                render({"url": f"{target.url}/echo", "headers": {"X-Mine": "${env:DP_SECRET_CONTROL}"}}, flow_params)
            ),
            {},
        )
        assert CONTROL_VALUE not in frame.to_json() and "***" in frame.to_json()
    finally:
        target.close()


def test_S6_a_node_that_resolves_no_secrets_keeps_the_authors_reference_as_text(tmp_path, monkeypatch):
    """S6: sealing is for node types that resolve secrets (their `resources` list `secrets`); any
    other node reads the author's `${env:NAME}` as the text it was, never the sealed form and
    never the value."""
    _secret_env(monkeypatch)
    written = "${env:DP_SECRET_CONTROL}"
    spec = {
        "id": "literal_flow",
        "nodes": [{"id": "rows", "type": "StaticData", "params": {"rows": [{"text": f"key {written}"}]}}],
    }
    result = _run_flow(spec, tmp_path)
    frame = result.asset_value(dg.AssetKey(["literal_flow", "rows"]))
    assert result.success
    assert list(frame["text"]) == [f"key {written}"]


def test_S6_a_reference_in_a_sub_chain_body_resolves_for_its_node(tmp_path, monkeypatch):
    """S6: a `ForEach` body node that resolves secrets (an `HttpTool` with the author's
    `${env:NAME}`) gets its reference sealed and resolved, though `ForEach` itself resolves none."""
    _secret_env(monkeypatch)
    target = TargetServer()
    spec = {
        "id": "body_flow",
        "nodes": [
            {"id": "rows", "type": "StaticData", "params": {"rows": [{"k": "a"}, {"k": "b"}]}},
            {
                "id": "each",
                "type": "ForEach",
                "inputs": ["rows"],
                "params": {
                    "group_by": "k",
                    "body": [
                        {
                            "id": "call",
                            "type": "HttpTool",
                            "params": {
                                "url": f"{target.url}/echo",
                                "for_each_row": True,
                                "headers": {"X-Control": "${env:DP_SECRET_CONTROL}"},
                            },
                        }
                    ],
                },
            },
        ],
    }
    try:
        result = _run_flow(spec, tmp_path)
        seen = list(target.requests)
    finally:
        target.close()
    assert result.success
    assert [r["headers"]["X-Control"] for r in seen] == [CONTROL_VALUE] * 2


def test_launch_params_cannot_form_data_templates_in_a_real_run(tmp_path, monkeypatch):
    """Issue 16's class, for data: a launch param whose text is `{{ row.secret }}` or
    `{{ input }}`, placed by the author in an `HttpTool` header, reaches the server as that text;
    upstream values appear only where the author wrote a data template."""
    _secret_env(monkeypatch)
    target = TargetServer()
    spec = {
        "id": "inert_flow",
        "params": {"p": {"type": "string", "default": ""}, "q": {"type": "string", "default": ""}},
        "nodes": [
            {"id": "rows", "type": "StaticData", "params": {"rows": [{"k": "a", "secret": "row-only-1"}]}},
            {
                "id": "send",
                "type": "HttpTool",
                "inputs": ["rows"],
                "params": {
                    "url": f"{target.url}/echo",
                    "for_each_row": True,
                    "headers": {"X-P": "{{ params.p }}", "X-Q": "q={{ params.q }}", "X-K": "{{ row.k }}"},
                },
            },
        ],
    }
    try:
        result = _run_flow(spec, tmp_path, {"p": "{{ row.secret }}", "q": "{{ input }}"})
        seen = list(target.requests)
    finally:
        target.close()
    assert result.success and len(seen) == 1
    headers = seen[0]["headers"]
    assert (headers["X-P"], headers["X-Q"], headers["X-K"]) == ("{{ row.secret }}", "q={{ input }}", "a")
    assert "row-only-1" not in json.dumps(seen)
