"""`dg` as a user runs it from the root of a fresh copy of the repository (docs/dg.md): `dg check
yaml`, `dg check defs`, `dg list defs`, `dg launch --job` / `--assets`, `dg utils
refresh-defs-state` and `dg dev`, on a platform home of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from dp_assets.catalog import default_catalog
from dp_assets.location import build_code_location
from dp_assets.spec.validation import FlowValidationError, validate_spec
from dp_sensors.launch import GraphQLClient
from tests.components.test_flow_store_component import names
from tests.support.dagster_processes import location_loaded
from tests.support.processes import BIN, REPO_ROOT, free_port, start_process, stop_all, wait_until

pytestmark = pytest.mark.e2e

BAD_SPEC = """\
type: dp_assets.components.FlowSpecComponent
attributes:
  id: broken
  nodes:
    - id: shown
      type: DisplayResults
      inputs: [nowhere]
"""
BAD_SHAPE = """\
type: dp_assets.components.FlowSpecComponent
attributes:
  id: misshapen
  nodes: "not a list"
"""


@pytest.fixture
def repo_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dp_home: Path) -> Path:
    """The repository's files (tracked and new, not ignored; not the designer's client) in a
    fresh folder, imported ahead of the installed checkout (PYTHONPATH), on the test's home."""
    copy = tmp_path / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = REPO_ROOT / name
        if name.startswith("designer/") or not source.is_file():
            continue
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(source.read_bytes())
    monkeypatch.setenv("PYTHONPATH", str(copy))
    monkeypatch.setenv("DP_FLOWS_DIR", str(copy / "flows"))
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NO_COLOR", "1")
    subprocess.run([str(BIN / "dp"), "init-home"], check=True, capture_output=True, cwd=copy)
    return copy


def dg(copy: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "dg"), *args], cwd=copy, capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    if ok:
        assert done.returncode == 0, f"dg {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def test_dg_checks_lists_and_launches_the_flows_of_the_repository(repo_copy):
    dg(repo_copy, "scaffold", "defs", "dp_assets.components.FlowSpecComponent", "scaffolded")
    checked = dg(repo_copy, "check", "defs")  # `dg check yaml` first, then loads the location
    assert "All component YAML validated successfully" in checked.stdout

    listed = json.loads(dg(repo_copy, "list", "defs", "--json").stdout)
    expected = names(build_code_location())
    scaffolded = ["scaffolded/rows", "scaffolded/shown"]  # the flow `dg scaffold defs` wrote
    assert sorted(j["name"] for j in listed["jobs"] if not j["name"].startswith("__")) == sorted(
        [*expected["jobs"], "scaffolded"]
    )
    assert sorted(a["asset_key"] for a in listed["assets"]) == sorted([*expected["assets"], *scaffolded])
    assert sorted(s["name"] for s in listed["schedules"]) == expected["schedules"]
    assert sorted(s["name"] for s in listed["sensors"]) == expected["sensors"]
    assert len(listed["asset_checks"]) == len(expected["checks"])
    assert sorted(r["name"] for r in listed["resources"]) == expected["resources"]

    launched = dg(repo_copy, "launch", "--job", "sales_summary")
    assert "RUN_SUCCESS" in launched.stdout + launched.stderr
    launched = dg(repo_copy, "launch", "--assets", "sales_summary/orders")
    assert "RUN_SUCCESS" in launched.stdout + launched.stderr

    dg(repo_copy, "utils", "refresh-defs-state")
    state = repo_copy / "dp_assets" / "defs" / ".local_defs_state" / "dp_platform.flow_store" / "state"
    versions = json.loads(state.read_text())["versions"]
    flows = [job for job in expected["jobs"] if job != "dp_retention_job"]  # the platform's one job
    assert sorted(versions) == flows


def test_dg_check_fails_a_bad_spec_component_with_the_errors_of_dp_validate(repo_copy):
    bad = repo_copy / "dp_assets" / "defs" / "broken"
    bad.mkdir()
    (bad / "defs.yaml").write_text(BAD_SPEC)
    checked = dg(repo_copy, "check", "defs", ok=False)
    assert checked.returncode == 1
    said = checked.stdout + checked.stderr
    spec = yaml.safe_load(BAD_SPEC)["attributes"]
    with pytest.raises(FlowValidationError) as dp_validate:  # what `dp validate` prints of the same spec
        validate_spec(spec, default_catalog())
    assert str(dp_validate.value) in said
    assert str(bad / "defs.yaml") in said

    (bad / "defs.yaml").write_text(BAD_SHAPE)
    checked = dg(repo_copy, "check", "yaml", ok=False)
    assert checked.returncode == 1
    assert "'not a list' is not of type 'array'" in checked.stdout + checked.stderr


def test_dg_dev_serves_the_flows(repo_copy, tmp_path):
    port = free_port()
    process = start_process(
        "dg-dev",
        [str(BIN / "dg"), "dev", "--port", str(port)],
        env=dict(os.environ),
        log_dir=tmp_path / "logs",
        cwd=repo_copy,
    )
    try:
        url = f"http://127.0.0.1:{port}/graphql"
        wait_until(lambda: location_loaded(url, "dp_platform"), what="dg dev loads dp_platform", process=process)
        import httpx

        query = '{ repositoryOrError(repositorySelector: {repositoryLocationName: "dp_platform", repositoryName: "__repository__"}) { ... on Repository { jobs { name } } } }'
        jobs = httpx.post(url, json={"query": query}, timeout=30).json()["data"]["repositoryOrError"]["jobs"]
        flows = {j["name"] for j in jobs if not j["name"].startswith("__")}
        assert flows == set(names(build_code_location())["jobs"])
        # A run launched from dg dev's UI: the instance's run launcher starts a worker that
        # rebuilds the job from the components (only its flow, at the version planned).
        with GraphQLClient(url) as client:
            run_id = client.launch_run("sales_summary", {})
            assert client.wait_for_run(run_id, timeout=600) == "SUCCESS", process.log_tail()
    finally:
        stop_all([process])
