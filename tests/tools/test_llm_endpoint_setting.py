"""A local model server (loopback, as Ollama or vLLM on the same machine) is opened for LlmAgent
nodes by DP_LLM_ALLOWED_NETWORKS, the one setting a deployment running `dp run` or `make run`
has for it, and a refusal names that variable: DP_HTTP_ALLOWED_NETWORKS opens HTTP nodes, never
the LLM endpoint. Checked with a real `dp run` against the OpenAI-compatible stub on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tool_servers import SECRET, StubLlm

ROOT = Path(__file__).resolve().parents[2]
ROWS = [{"region": "EU", "amount": 10.5}, {"region": "US", "amount": 3.0}, {"region": "EU", "amount": 7.25}]
FLOW = {
    "id": "local_model",
    "nodes": [
        {"id": "orders", "type": "StaticData", "params": {"rows": ROWS}},
        {
            "id": "by_region",
            "type": "GroupAggregate",
            "inputs": ["orders"],
            "params": {"by": "region", "agg": {"revenue": ["amount", "sum"]}},
        },
        {"id": "analyst", "type": "LlmAgent", "inputs": ["by_region"], "params": {"prompt": "Totals: {{ input }}"}},
    ],
}


@pytest.fixture
def stub() -> StubLlm:
    def echo(body: dict) -> dict:
        return {"content": "seen " + body["messages"][-1]["content"]}

    server = StubLlm(echo)
    yield server
    server.close()


@pytest.fixture
def env(tmp_path: Path, stub: StubLlm) -> dict[str, str]:
    spec = tmp_path / "local_model.yaml"
    spec.write_text(yaml.safe_dump(FLOW, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
    env.update(
        DP_HOME=str(tmp_path / "home"),
        DP_FLOWS_DIR="",
        DP_LLM_BASE_URL=stub.base_url,
        DP_LLM_MODEL="stub-model",
        DP_LLM_API_KEY=SECRET,
        DP_HTTP_ALLOWED_NETWORKS="127.0.0.1/32",  # opens HTTP nodes only
    )
    assert _dp(env, "publish", str(spec)).returncode == 0
    return env


def _dp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_a_loopback_model_is_refused_naming_the_llm_setting_then_opened_by_it(env, stub):
    refused = _dp(env, "run", "local_model")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "DP_LLM_ALLOWED_NETWORKS=127.0.0.1/32 allows it; or LlmResource allowed_networks" in refused.stderr
    assert "DP_HTTP_ALLOWED_NETWORKS" not in refused.stderr  # it is set, and would not help
    assert stub.requests == []

    done = _dp({**env, "DP_LLM_ALLOWED_NETWORKS": "127.0.0.1/32"}, "run", "local_model")
    assert done.returncode == 0, done.stderr
    assert len(stub.requests) == 1 and stub.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    expected = pd.DataFrame(ROWS).groupby("region").agg(revenue=("amount", "sum")).reset_index()
    sent = stub.requests[0]["json"]["messages"][-1]["content"]
    assert sent == "Totals: " + json.dumps(expected.to_dict(orient="records"))
