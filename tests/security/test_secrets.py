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
    resolved = scope.resolve({"h": ["Bearer ${env:DP_SECRET_X}"]})
    assert resolved == {"h": ["Bearer a+b/c d&e=f"]}
    text = f"raw a+b/c d&e=f url {quote('a+b/c d&e=f', safe='')} json {json.dumps('a+b/c d&e=f')}"
    assert "a+b" not in scope.redact(text) and scope.redact(text).count("***") == 3
    frame = scope.redact_value(pd.DataFrame({"v": ["x a+b/c d&e=f"], "n": [1]}))
    assert frame["v"].tolist() == ["x ***"] and frame["n"].tolist() == [1]
    assert scope.redact_value({"k": (b"a+b/c d&e=f",)}) == {"k": (b"***",)}


@pytest.mark.parametrize(
    ("reference", "message"),
    [("${env:HOME}", "not an allowed secret name"), ("${env:DP_SECRET_UNSET}", "is not set"),
     ("${env:DP_SECRET_SHORT}", "too short to be redacted")],
    ids=["S6-name-not-allowed", "S6-unset", "S6-too-short"],
)
def test_S6_refused_references_never_show_a_value(monkeypatch, reference, message):
    monkeypatch.setenv("DP_SECRET_SHORT", "ab")
    with pytest.raises(SecretError, match=message) as info:
        SecretScope().resolve({"x": reference}, "params")
    assert "ab" not in str(info.value).replace("Tab", "").split("(")[0] or message != "too short"
    assert references({"a": [reference, "${env:OTHER}"]}) == [reference[6:-1], "OTHER"]


def test_S6_safe_error_keeps_the_type_and_drops_the_chain():
    scope = SecretScope(environ={"DP_SECRET_K": SECRET})
    scope.resolve("${env:DP_SECRET_K}")
    error = scope.safe_error(ValueError(f"no {SECRET}"), "node 'n'")
    assert type(error) is ValueError and SECRET not in str(error) and "node 'n'" in str(error)
    odd = scope.safe_error(UnicodeDecodeError("utf-8", SECRET.encode(), 0, 1, SECRET), "node 'n'")
    assert SECRET not in str(odd)


# --- a real run ----------------------------------------------------------------------------


def _flow(target: str) -> dict:
    token = "${env:DP_SECRET_TOKEN}"
    return {"id": "secret_flow", "nodes": [
        {"id": "echo_auth", "type": "HttpTool",
         "params": {"url": f"{target}/echo", "headers": {"X-Token": token}, "query": {"k": token},
                    "auth": {"type": "bearer", "token": token}}},
        {"id": "shell_env", "type": "ShellTool",
         "params": {"argv": ["printenv", "TOKEN"], "env": {"TOKEN": token}}},
        {"id": "agent", "type": "LlmAgent", "inputs": ["echo_auth"],
         "params": {"prompt": "Summarise {{ input }}",
                    "tools": [{"name": "peek", "type": "HttpTool",
                               "params": {"url": f"{target}/echo", "headers": {"Authorization": f"Bearer {token}"}}}]}},
        {"id": "fails_soft", "type": "HttpTool", "on_error": "continue",
         "params": {"url": f"{target}/status/500?t={token}", "retries": 0}},
        {"id": "fails_hard", "type": "HttpTool", "inputs": ["agent"], "retry": {"max_retries": 1},
         "params": {"url": f"{target}/status/403", "query": {"t": token}, "retries": 0}},
    ]}


def _resources(tmp_path: Path) -> dict:
    from dp_io import RunScopedIOManager
    from dp_resources.http import HttpResource
    from dp_resources.llm import LlmResource
    from dp_resources.mcp_client import McpResource
    from dp_resources.sandbox import SandboxResource
    from dp_resources.secrets import SecretsResource
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
    llm = StubLlm(lambda body: ({"content": None, "tool_calls": [tool_call("peek", {})]}
                                if body["messages"][-1]["role"] == "user"
                                else {"content": "summary: " + body["messages"][-1]["content"][:3000]}))
    monkeypatch.setenv("DP_LLM_BASE_URL", llm.base_url)
    try:
        catalog = default_catalog()
        validated = validate_spec(_flow(target.url), catalog)
        defs = dg.Definitions.merge(build_flow_definitions(validated, catalog),
                                    dg.Definitions(resources=_resources(tmp_path)))
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
