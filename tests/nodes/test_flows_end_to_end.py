"""Small flows run end to end through the compiler and Dagster's ``execute_in_process``.

Branching with skips and a Merge, a TryCatch whose error becomes data, and a ForEach between a
TableReader and a TableWriter on SQLite (resources passed explicitly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec
from dp_resources.databases import DatabasesResource
from dp_resources.files import FilesResource

pytestmark = pytest.mark.e2e

ROWS = [{"region": "EU", "qty": 1}, {"region": "US", "qty": 5}, {"region": "EU", "qty": 2}]
SOURCE = {"id": "src", "type": "StaticData", "params": {"rows": ROWS}}


def run_flow(
    spec: dict[str, Any], tmp_path: Path, resources: dict[str, Any] | None = None, params: dict[str, Any] | None = None
) -> dg.ExecuteInProcessResult:
    catalog = default_catalog()
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(spec, catalog), catalog),
        dg.Definitions(
            resources={
                "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io")),
                "files": FilesResource(data_dir=str(tmp_path / "data")),
                **(resources or {}),
            }
        ),
    )
    job = defs.resolve_job_def(spec["id"])
    return job.execute_in_process(run_config=params or None, instance=dg.DagsterInstance.ephemeral())


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.path[-1] for event in result.get_asset_materialization_events()}


def value(result: dg.ExecuteInProcessResult, flow_id: str, node_id: str) -> Any:
    return result.output_for_node(f"{flow_id}__step", node_id)


BRANCH_FLOW = {
    "id": "branching",
    "params": {"limit": {"type": "integer", "default": 3}},
    "nodes": [
        SOURCE,
        {"id": "check", "type": "ConditionalBranch", "inputs": ["src"], "params": {"condition": "params.limit > 3"}},
        {"id": "big", "type": "SampleRows", "inputs": ["check.true"], "params": {"frac": 1.0, "random_state": 1}},
        {"id": "small", "type": "RenameColumns", "inputs": ["check.false"], "params": {"columns": {"qty": "n"}}},
        {"id": "joined", "type": "Merge", "inputs": ["big", "small"]},
        {"id": "shown", "type": "DisplayResults", "inputs": ["joined"], "params": {"n": 2}},
    ],
}


@pytest.mark.parametrize(("limit", "taken", "skipped"), [(5, "big", "small"), (1, "small", "big")])
def test_branch_skips_the_other_side_and_merge_takes_the_taken(
    tmp_path: Path, limit: int, taken: str, skipped: str
) -> None:
    """ConditionalBranch-flow: the branch not taken and its dependants are skipped, not failed."""
    result = run_flow(BRANCH_FLOW, tmp_path, params={"limit": limit})
    assert result.success
    done = materialized(result)
    assert {"src", taken, "joined", "shown"} <= done and skipped not in done
    expected = pd.DataFrame(ROWS)
    expected = expected.sample(frac=1.0, random_state=1) if taken == "big" else expected.rename(columns={"qty": "n"})
    pd.testing.assert_frame_equal(value(result, "branching", "joined"), expected)
    shown = next(e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "shown")
    assert "dp/statistics" in shown.materialization.metadata


def test_try_catch_turns_an_error_into_data(tmp_path: Path) -> None:
    """TryCatch-flow: the body fails, `catch` carries the error, the run succeeds."""
    spec = {
        "id": "protected",
        "nodes": [
            SOURCE,
            {
                "id": "guard",
                "type": "TryCatch",
                "inputs": ["src"],
                "params": {
                    "body": [
                        {"id": "cast", "type": "ChangeDataType", "params": {"dtype": {"region": "int64"}}},
                        {"id": "pick", "type": "SelectColumns", "params": {"columns": ["region"]}},
                    ]
                },
            },
            {"id": "after", "type": "SelectColumns", "inputs": ["guard"], "params": {"columns": ["region"]}},
            {"id": "errors", "type": "DisplayResults", "inputs": ["guard.catch"]},
        ],
    }
    result = run_flow(spec, tmp_path)
    assert result.success
    assert "after" not in materialized(result) and "errors" in materialized(result)
    caught = value(result, "protected", "errors")
    assert caught[["node", "error_type"]].values.tolist() == [["cast", "ValueError"]]


def test_for_each_between_table_reader_and_writer(tmp_path: Path) -> None:
    """ForEach-flow: TableReader -> ForEach per group -> TableWriter (upsert), on SQLite."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    databases = DatabasesResource(urls={"default": url})
    with databases.connect("default") as conn:
        pd.DataFrame(ROWS).to_sql("orders", conn, index=False)
    spec = {
        "id": "fanout",
        "nodes": [
            {"id": "orders", "type": "TableReader", "params": {"table": "orders"}},
            {
                "id": "per_region",
                "type": "ForEach",
                "inputs": ["orders"],
                "params": {
                    "group_by": "region",
                    "max_workers": 2,
                    "body": [
                        {
                            "id": "sum",
                            "type": "GroupAggregate",
                            "params": {"by": "region", "agg": {"total": ["qty", "sum"]}},
                        }
                    ],
                },
            },
            {
                "id": "save",
                "type": "TableWriter",
                "inputs": ["per_region"],
                "params": {"table": "totals", "if_exists": "upsert", "keys": ["region"]},
            },
        ],
    }
    for _ in range(2):
        result = run_flow(spec, tmp_path, resources={"databases": databases})
        assert result.success
    with databases.get_engine("default").connect() as conn:
        totals = pd.read_sql_table("totals", conn)
    expected = pd.DataFrame(ROWS).groupby("region", sort=False).agg(total=("qty", "sum")).reset_index()
    pd.testing.assert_frame_equal(totals, expected)
    databases.dispose()
