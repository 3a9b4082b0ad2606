"""A new user's first hour, as the README tells it: the platform running (`make run`: `dp
init-home` then `dagster dev`), an example flow edited and published with `dp publish`, the UI's
Reload, the new version launched and run, the flow deleted and gone from the UI after a reload,
and restored. Every step goes through the commands and the GraphQL API a user has, on the
embedded default; the spec files stay in DP_FLOWS_DIR the whole time (a reload must not undo the
publish nor bring the deleted flow back)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support.dagster_processes import DagsterPlatform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
FLOW = "sales_summary"
JOBS = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"


@pytest.fixture(scope="module")
def platform(make_run_platform: DagsterPlatform) -> DagsterPlatform:
    """The shared `make run` platform (tests/conftest.py), serving the example flow too."""
    shutil.copy(ROOT / "flows" / f"{FLOW}.yaml", make_run_platform.flows)
    shutil.copytree(ROOT / "flows" / "data", make_run_platform.flows / "data", dirs_exist_ok=True)
    make_run_platform.reload_location()
    return make_run_platform


def _dp(platform: DagsterPlatform, *args: str) -> subprocess.CompletedProcess:
    env = {**platform.env, "DP_DAGSTER_GRAPHQL_URL": platform.graphql_url}
    return subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=700
    )


def _jobs(platform: DagsterPlatform) -> set[str]:
    repositories = platform.graphql(JOBS)["repositoriesOrError"]["nodes"]
    return {job["name"] for repository in repositories for job in repository["jobs"]}


def test_edit_publish_run_delete_restore(platform, tmp_path):
    assert FLOW in _jobs(platform)

    # Edit a copy of the example (raise the minimum amount) and publish it.
    edited = tmp_path / f"{FLOW}.yaml"
    text = (platform.flows / f"{FLOW}.yaml").read_text()
    assert "default: 20.0" in text
    edited.write_text(text.replace("default: 20.0", "default: 100.0"))
    published = _dp(platform, "publish", str(edited), "-m", "only large orders")
    assert published.returncode == 0, published.stderr
    version = published.stdout.split()[3].rstrip(",")

    # The UI's Reload: the published version stays (the unchanged file does not undo it).
    platform.reload_location()
    done = _dp(platform, "launch", FLOW, "--wait", "--timeout", "600")
    assert done.returncode == 0, done.stderr + platform.logs()
    run_id = json.loads(done.stdout.splitlines()[-1])["run_id"]
    with platform.instance() as instance:
        run = instance.get_run_by_id(run_id)
        assert run.tags["dp/flow_version"] == version
    # The new version's output, read by the short run id the UI shows.
    exported = tmp_path / "valid_orders.csv"
    read = _dp(platform, "runs", "read", run_id[:8], "valid_orders", "--out", str(exported))
    assert read.returncode == 0, read.stderr
    orders = pd.read_csv(platform.flows / "data" / "orders.csv")
    expected = orders[(orders["amount"] >= 100.0) & orders["region"].notna()]
    assert sorted(pd.read_csv(exported)["order_id"]) == sorted(expected["order_id"])

    # Delete: gone from the UI after a reload, although its spec file is still in DP_FLOWS_DIR.
    assert _dp(platform, "delete", FLOW).returncode == 0
    platform.reload_location()
    assert FLOW not in _jobs(platform)
    listed = _dp(platform, "list", "--all")
    assert "deleted" in listed.stdout and version[:12] in listed.stdout

    assert _dp(platform, "restore", FLOW).returncode == 0
    platform.reload_location()
    assert FLOW in _jobs(platform)
