"""`dp roles`, `dp audit`, and `dp` acting as a service token against the store."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from dp_assets.cli import main as dp


@pytest.fixture
def env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("DP_STORE_URL", url)
    monkeypatch.delenv("DP_AUTH_TOKEN", raising=False)
    return {"DP_STORE_URL": url, "DP_FLOWS_DIR": ""}


def _spec(tmp_path, flow_id: str, description: str = "") -> str:
    path = tmp_path / f"{flow_id}_{len(description)}.yaml"
    spec = {
        "id": flow_id,
        "description": description or flow_id,
        "nodes": [{"id": "a", "type": "StaticData", "params": {"rows": [{"x": 1}]}}],
    }
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _dp(args, env, token=None):
    full = {**env, **({"DP_AUTH_TOKEN": token} if token else {})}
    return CliRunner().invoke(dp, args, env=full)


def test_tokens_publish_only_where_their_roles_say_and_everything_is_audited(tmp_path, env):
    # the local admin (whoever holds the store's login) sets up two workspaces
    assert _dp(["publish", "--workspace", "sales", _spec(tmp_path, "daily")], env).exit_code == 0
    assert _dp(["publish", "--workspace", "hr", _spec(tmp_path, "payroll")], env).exit_code == 0

    made = _dp(["roles", "token-create", "loader"], env)
    assert made.exit_code == 0, made.output
    runner_token = made.stdout.strip().splitlines()[-1]
    runner_id = runner_token.split("_")[1]
    editor_token = _dp(["roles", "token-create", "hr editor"], env).stdout.strip().splitlines()[-1]
    editor_id = editor_token.split("_")[1]
    assert (
        _dp(["roles", "grant", "token", runner_id, "runner", "--workspace", "sales", "--flow", "daily"], env).exit_code
        == 0
    )
    assert _dp(["roles", "grant", "token", editor_id, "editor", "--workspace", "hr"], env).exit_code == 0

    # a runner's token used to publish: refused, nothing stored
    refused = _dp(["publish", _spec(tmp_path, "daily", "changed by a runner")], env, runner_token)
    assert refused.exit_code == 1
    assert f"token:{runner_id} may not edit flow 'daily' of workspace 'sales' (needs role editor)" in refused.output
    # a token of one workspace used on another's flow, even when it names its own workspace
    across = _dp(["publish", "--workspace", "hr", _spec(tmp_path, "daily", "moved to hr")], env, editor_token)
    assert across.exit_code == 1 and "may not edit flow 'daily' of workspace 'sales'" in across.output
    assert "may not" in _dp(["delete", "daily"], env, editor_token).output
    assert len(json.loads(_dp(["show", "daily", "--format", "json"], env).stdout)) > 0
    assert "1 version(s)" in _dp(["list"], env).stdout.splitlines()[0]

    # the hr editor publishes in hr; the runner token sees only its flow
    ok = _dp(["publish", _spec(tmp_path, "payroll", "new payroll")], env, editor_token)
    assert ok.exit_code == 0, ok.output
    from dp_resources.store import FlowStore

    assert FlowStore(env["DP_STORE_URL"]).history("payroll")[-1].author == f"token:{editor_id}"
    listed = _dp(["list"], env, runner_token)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["daily"]
    assert "may not view flow 'payroll'" in _dp(["history", "payroll"], env, runner_token).output

    # a token may not grant itself more
    climb = _dp(["roles", "grant", "token", runner_id, "admin", "--workspace", "sales"], env, runner_token)
    assert climb.exit_code == 1 and "needs role admin" in climb.output

    # revoked: refused outright, never treated as the local admin
    assert "revoked" in _dp(["roles", "token-revoke", editor_id], env).stdout
    gone = _dp(["publish", _spec(tmp_path, "payroll", "after revoke")], env, editor_token)
    assert gone.exit_code == 1 and "not a live service token" in gone.output
    assert "not a live service token" in _dp(["list"], env, "dpt_0123456789abcdef_" + "x" * 43).output

    lines = [json.loads(line) for line in _dp(["audit", "--json"], env).stdout.splitlines()]
    assert [(e["actor"], e["action"], e["flow"]) for e in lines] == [
        ("local-admin", "publish", "daily"),
        ("local-admin", "publish", "payroll"),
        ("local-admin", "token_create", ""),
        ("local-admin", "token_create", ""),
        ("local-admin", "grant", "daily"),
        ("local-admin", "grant", ""),
        (f"token:{editor_id}", "publish", "payroll"),
        ("local-admin", "token_revoke", ""),
    ]
    assert runner_token not in _dp(["audit"], env).stdout
    payroll = _dp(["audit", "--flow", "payroll"], env).stdout.splitlines()
    assert len(payroll) == 2 and f"token:{editor_id}" in payroll[1]
    tokens = _dp(["roles", "tokens"], env).stdout
    assert runner_id in tokens and "live" in tokens and "revoked" in tokens and runner_token not in tokens
    grants = _dp(["roles", "list"], env).stdout.splitlines()
    assert grants == [f"sales            daily                    token:{runner_id:24} runner"]


def test_bad_arguments_are_one_line_errors(tmp_path, env):
    bad_role = _dp(["roles", "grant", "user", "ann", "owner"], env)
    assert bad_role.exit_code == 2 and "'owner' is not one of" in bad_role.output
    bad_place = _dp(["roles", "grant", "user", "ann", "viewer", "--workspace", "Sales!"], env)
    assert bad_place.exit_code == 1 and "workspace 'Sales!'" in bad_place.output
    no_token = _dp(["roles", "grant", "token", "feedfeedfeedfeed", "viewer"], env)
    assert no_token.exit_code == 1 and "no service token 'feedfeedfeedfeed'" in no_token.output
    assert "Traceback" not in bad_role.output + bad_place.output + no_token.output
