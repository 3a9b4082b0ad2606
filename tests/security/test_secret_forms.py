"""Secrets in specs have one form, ``${env:NAME}``; the old ``header_env`` of ApiEndpoint and
APIRequest keeps deployed flows working, read as that form where every spec enters, with a
deprecation that ``dp validate`` prints (flow, node, field and the new form). Nothing the old form
does escapes the policy of the new one: the allow-list, sealing, redaction."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from tool_servers import TargetServer

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.loading import normalise_spec, spec_version
from dp_assets.spec.secret_forms import SecretFormDeprecated
from dp_assets.spec.validation import FlowValidationError, validate_spec

TOKEN = "tick3ts-Token-5150"


def api_flow(url: str, params: dict | None = None, header_env: dict | None = None, flow_id: str = "tickets") -> dict:
    request = {"url": url, "idempotency_header": None}
    if header_env is not None:
        request["header_env"] = header_env
    return {
        "id": flow_id,
        "params": params or {},
        "nodes": [
            {"id": "rows", "type": "StaticData", "params": {"rows": [{"n": 1}]}},
            {"id": "send", "type": "APIRequest", "inputs": ["rows"], "params": request},
        ],
    }


def run(spec: dict, tmp_path: Path, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    from dp_io import RunScopedIOManager
    from dp_resources.http import HttpResource
    from dp_resources.secrets_resource import SecretsResource

    catalog = default_catalog()
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(spec, catalog), catalog),
        dg.Definitions(
            resources={
                "io_manager": RunScopedIOManager(base_url=str(tmp_path / "outputs")),
                "http": HttpResource(allow_private=True, timeout_seconds=10),
                "secrets": SecretsResource(),
            }
        ),
    )
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        return defs.resolve_job_def(spec["id"]).execute_in_process(run_config=run_config, instance=instance)


def test_S6_a_deployed_header_env_still_sends_its_header(tmp_path, monkeypatch):
    """A stored spec in the old form runs as before: the header arrives with the variable's value,
    and the server's echo of it is redacted from the output."""
    monkeypatch.setenv("DP_SECRET_TICKETS_TOKEN", TOKEN)
    target = TargetServer()
    try:
        spec = api_flow(f"{target.url}/echo", header_env={"Authorization": "DP_SECRET_TICKETS_TOKEN"})
        with pytest.warns(SecretFormDeprecated) as caught:
            result = run(spec, tmp_path)
        sent = target.requests[-1]["headers"]
    finally:
        target.close()
    assert result.success and sent["Authorization"] == TOKEN
    log = result.asset_value(dg.AssetKey(["tickets", "send"]))
    assert TOKEN not in log.to_json()
    assert str(caught[0].message) == (
        "flow 'tickets', node 'send', params.header_env: deprecated; write "
        'headers: {Authorization: "${env:DP_SECRET_TICKETS_TOKEN}"} (read so meanwhile)'
    )


def test_S6_the_old_form_is_the_new_form_and_no_more(monkeypatch):
    """Read as `${env:NAME}`: the same version as the spec written so (one flow, one code version),
    a refused name refused the same way, header_env winning over a header of the same name as it did,
    sub-chain bodies upgraded too, and the caller's document never changed."""
    old = api_flow("https://api.example.test/x", header_env={"X-Token": "DP_SECRET_T", "X-Db": "DP_STORE_URL"})
    old["nodes"][1]["params"]["headers"] = {"X-Token": "written", "Accept": "json"}
    old["nodes"].append(
        {
            "id": "each",
            "type": "ForEach",
            "inputs": ["rows"],
            "params": {
                "group_by": "n",
                "body": [
                    {
                        "id": "inner",
                        "type": "ApiEndpoint",
                        "params": {"url": "https://api.example.test/y", "header_env": {"X-Token": "DP_SECRET_T"}},
                    }
                ],
            },
        }
    )
    kept = copy.deepcopy(old)
    new = copy.deepcopy(old)
    new["nodes"][1]["params"] = {
        "url": "https://api.example.test/x",
        "idempotency_header": None,
        "headers": {"X-Token": "${env:DP_SECRET_T}", "Accept": "json", "X-Db": "${env:DP_STORE_URL}"},
    }
    new["nodes"][2]["params"]["body"][0]["params"] = {
        "url": "https://api.example.test/y",
        "headers": {"X-Token": "${env:DP_SECRET_T}"},
    }
    with pytest.warns(SecretFormDeprecated) as caught:
        upgraded, old_version = normalise_spec(old), spec_version(old)
    assert old == kept
    assert upgraded == normalise_spec(new) and old_version == spec_version(new)
    assert any("node 'each', body node 'inner', params.header_env" in str(w.message) for w in caught)


def test_header_env_that_is_no_variable_name_is_a_validation_error_naming_the_place():
    """`{{ params.which }}` in header_env would let the caller choose the secret: refused, with the new form."""
    spec = api_flow(
        "https://api.example.test/x",
        params={"which": {"type": "string", "default": "DP_SECRET_T"}},
        header_env={"Authorization": "{{ params.which }}"},
    )
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(spec, default_catalog())
    text = str(caught.value)
    assert "flow 'tickets', node 'send'" in text and "header_env is no longer a param" in text
    assert "'${env:NAME}'" in text


def test_dp_validate_prints_deprecations_and_refused_names(dp_home, tmp_path, monkeypatch):
    """`dp validate` accepts the old form (exit 0) and says what to write instead; it also warns
    about references this deployment's allow-list would refuse when a run or a notification needs them."""
    from dp_assets.cli import main

    monkeypatch.delenv("DP_ALLOWED_SECRET_NAMES", raising=False)
    spec = api_flow("https://api.example.test/x", header_env={"Authorization": "DP_SECRET_TICKETS_TOKEN"})
    spec["nodes"][1]["params"]["headers"] = {"X-Db": "${env:DP_STORE_URL}"}
    spec["notify"] = [{"on": ["failure"], "webhook": "${env:SLACK_ALERT_URL}"}]
    path = tmp_path / "tickets.json"
    path.write_text(json.dumps(spec))
    result = CliRunner().invoke(main, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ok    " in result.output
    assert (
        "warning: flow 'tickets', node 'send', params.header_env: deprecated; write headers: "
        '{Authorization: "${env:DP_SECRET_TICKETS_TOKEN}"}'
    ) in result.output
    assert (
        "warning: flow 'tickets', node 'send', params.headers.X-Db: ${env:DP_STORE_URL} is not an allowed "
        "secret name here"
    ) in result.output
    assert "warning: flow 'tickets', notify[0].webhook: ${env:SLACK_ALERT_URL} is not an allowed" in result.output
    monkeypatch.setenv("DP_ALLOWED_SECRET_NAMES", "DP_SECRET_*,SLACK_ALERT_URL,DP_STORE_URL")
    quiet = CliRunner().invoke(main, ["validate", str(path)], catch_exceptions=False)
    assert "is not an allowed" not in quiet.output and "params.header_env: deprecated" in quiet.output
