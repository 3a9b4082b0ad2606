"""The dp CLI as a user runs it: validate, publish, list, history, show, diff, nodes."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from dp_assets.cli import main
from dp_assets.spec.loading import load_yaml

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_validate_good_and_bad(dp_home, tmp_path):
    good = run("validate", str(ROOT / "flows"))
    assert good.exit_code == 0, good.output
    assert "ok    " in good.output and "sales_summary" in good.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: broken\nnodes:\n  - {id: a, type: SortData, inputs: [zz], params: {by: x, bogus: 1}}\n")
    result = run("validate", str(bad), str(ROOT / "flows" / "sales_summary.yaml"))
    assert result.exit_code == 1
    assert "flow 'broken', node 'a', field 'inputs[0]': input 'zz' names no node of this flow" in result.output
    assert "flow 'broken', node 'a', field 'params.bogus': unknown field" in result.output
    assert "1 invalid spec(s)" in result.output


def test_publish_history_show_diff(dp_home, tmp_path):
    spec_path = tmp_path / "sales.yaml"
    shutil.copy(ROOT / "flows" / "sales_summary.yaml", spec_path)
    first = run("publish", str(spec_path), "-m", "first")
    assert first.exit_code == 0 and "new version" in first.output and "published" in first.output
    assert "unchanged" in run("publish", str(spec_path)).output

    spec = load_yaml(spec_path.read_text())
    spec["description"] = "Edited description"
    spec_path.write_text(yaml.safe_dump(spec))
    assert "new version" in run("publish", str(spec_path), "-m", "second").output

    listing = run("list").output
    assert "sales_summary" in listing and "2 version(s)" in listing
    history = run("history", "sales_summary").output.splitlines()
    assert len(history) == 2 and history[1].startswith("*") and history[1].endswith("second")
    v1, v2 = history[0].split()[0], history[1].split()[1]
    shown = run("show", "sales_summary", "--version", v1).output
    assert yaml.safe_load(shown)["description"].startswith("Revenue and order counts")
    diff = run("diff", "sales_summary", v1, v2).output
    assert "-description: Revenue and order counts" in diff and "+description: Edited description" in diff


def test_unknown_flow_is_a_clear_error(dp_home):
    result = CliRunner().invoke(main, ["history", "nope"])
    assert result.exit_code == 1 and "no flow 'nope' in the store" in result.output


def test_nodes_lists_the_catalog_and_one_type():
    listing = run("nodes").output
    assert "GroupAggregate" in listing and "FileWriter" in listing
    detail = run("nodes", "JoinMerge").output
    assert "| `how` |" in detail and "inputs: left, right" in detail


def test_init_home_writes_an_instance_with_per_flow_queue_limits(dp_home):
    import dagster as dg

    assert run("init-home").exit_code == 0
    instance = dg.DagsterInstance.from_config(str(dp_home / "dagster"))
    limits = {
        limit["key"]: limit["limit"] for limit in instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
    }
    assert limits["dp/flow_limit_1"] == 1 and limits["dp/flow_limit_2"] == 2
    assert instance.run_monitoring_enabled
