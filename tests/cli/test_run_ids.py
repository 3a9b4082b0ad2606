"""Short run ids: the 8 characters the Dagster UI shows work wherever a dp command takes a run id,
and a prefix that names no run, or several, is refused naming them (never a guess, never a
traceback). On the embedded default's instance, with no DAGSTER_HOME set, as `make run` leaves it."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from dp_assets.cli import main

ROOT = Path(__file__).resolve().parents[2]
#: Two runs whose ids share their first 8 characters, as happens among thousands of runs.
TWINS = ("abcd1234-1111-4000-8000-000000000000", "abcd1234-2222-4000-8000-000000000000")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, str | None]:
    """A user's shell with the example sales flow published and run once (`dp run`)."""
    folder = tmp_path_factory.mktemp("shell")
    flows = folder / "flows"
    flows.mkdir()
    shutil.copy(ROOT / "flows" / "sales_summary.yaml", flows)
    shutil.copytree(ROOT / "flows" / "data", flows / "data")
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("DP_", "DAGSTER_"))}
    env.update(DP_HOME=str(folder / "home"), DP_FLOWS_DIR=str(flows), DAGSTER_HOME=None)
    assert _dp(env, "publish", str(flows / "sales_summary.yaml")).exit_code == 0
    done = _dp(env, "run", "sales_summary")
    assert done.exit_code == 0, done.output
    env["RUN_ID"] = re.search(r"run id ([0-9a-f-]{36})", done.output).group(1)
    return env


def _dp(env: dict[str, str | None], *args: str):
    shell = {k: v for k, v in env.items() if k != "RUN_ID"}
    result = CliRunner().invoke(main, list(args), env=shell)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _add_twins(env: dict[str, str | None]) -> None:
    @dg.op
    def nothing() -> None:
        return None

    @dg.job
    def twin():
        nothing()

    with dg.DagsterInstance.from_config(str(Path(env["DP_HOME"]) / "dagster")) as instance:
        for run_id in TWINS:
            if not instance.has_run(run_id):
                assert twin.execute_in_process(instance=instance, run_id=run_id).success


def test_the_eight_characters_of_the_ui_work_where_a_run_id_is_taken(project):
    run_id = project["RUN_ID"]
    short = run_id[:8]

    shown = _dp(project, "runs", "show", short)
    assert shown.exit_code == 0, shown.output
    assert f"run {run_id}  status SUCCESS  job sales_summary" in shown.output
    assert "sales_summary/revenue_by_region" in shown.output

    read = _dp(project, "runs", "read", short, "revenue_by_region")
    assert read.exit_code == 0, read.output
    assert "region" in read.output and "rows x" in read.output
    # The flow/node form that `dp runs show` lists is read as the node with --flow.
    keyed = _dp(project, "runs", "read", short, "sales_summary/revenue_by_region")
    assert keyed.exit_code == 0, keyed.output
    assert keyed.output == read.output
    other = _dp(project, "runs", "read", short, "sales_summary/revenue_by_region", "--flow", "other")
    assert other.exit_code == 1 and "--flow says 'other'" in other.output

    status = _dp(project, "status", short)
    assert status.exit_code == 0, status.output
    assert "succeeded" in status.output and run_id in status.output

    # The run had no ForEach failures: refused, about the whole id the prefix named.
    retry = _dp(project, "retry-failed", short, "--dry-run")
    assert retry.exit_code == 1
    assert f"run {run_id} of flow 'sales_summary' recorded no failed ForEach items" in retry.output


def test_a_prefix_shared_by_two_runs_is_refused_naming_both(project):
    _add_twins(project)
    for args in (("runs", "show", "abcd1234"), ("retry-failed", "abcd1234", "--dry-run"), ("status", "abcd1234")):
        refused = _dp(project, *args)
        assert refused.exit_code == 1, args
        assert "run id 'abcd1234' is ambiguous: 2 runs start with it" in refused.output, args
        assert f"{TWINS[0]} (twin, SUCCESS)" in refused.output and TWINS[1] in refused.output
    # One more character and it is one run.
    one = _dp(project, "retry-failed", "abcd1234-2", "--dry-run")
    assert f"run {TWINS[1]} of flow 'twin'" in one.output


def test_an_unknown_or_too_short_prefix_is_a_clear_error(project):
    unknown = _dp(project, "runs", "show", "ffff0000")
    assert unknown.exit_code == 1
    assert "no run id starts with 'ffff0000'" in unknown.output
    short = _dp(project, "runs", "read", "ab", "orders")
    assert short.exit_code == 1 and "give at least 4 characters" in short.output
    # dp status takes task ids too: an unknown one keeps its own message.
    status = _dp(project, "status", "no-such-task")
    assert status.exit_code == 1 and "no runs for task 'no-such-task'" in status.output
