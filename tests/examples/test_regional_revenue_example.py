"""flows/regional_revenue.yaml: the example of issue 20 (engine: duckdb, ephemeral intermediate
nodes, a SqlTransform) runs on the platform's IO manager, keeps only the report, and its report
equals the same work done in pandas over flows/data/orders.csv."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.dagster_internals import execute_run_in_process
from dp_assets.spec.loading import read_spec_file
from dp_assets.spec.validation import validate_spec
from dp_io import RunScopedIOManager
from dp_resources.files import FilesResource

pytestmark = pytest.mark.e2e

FLOWS = Path(__file__).resolve().parents[2] / "flows"
TARGETS = {"EU": 3000.0, "US": 2500.0, "APAC": 2000.0, "LATAM": 1500.0}


def expected_report() -> pd.DataFrame:
    orders = pd.read_csv(FLOWS / "data" / "orders.csv")
    valid = orders[(orders["amount"] >= 20.0) & orders["region"].notna()]
    out = valid.groupby("region", as_index=False).agg(
        revenue=("amount", "sum"), orders=("order_id", "count"), units=("quantity", "sum")
    )
    out["target"] = out["region"].map(TARGETS)
    out["attainment"] = (out["revenue"] / out["target"]).round(4)
    return out.sort_values("revenue", ascending=False).reset_index(drop=True)


def test_the_example_keeps_only_its_report_and_matches_pandas(tmp_path):
    catalog = default_catalog()
    validated = validate_spec(read_spec_file(FLOWS / "regional_revenue.yaml"), catalog)
    assert validated.flow.policies.engine == "duckdb"
    defs = dg.Definitions.merge(
        build_flow_definitions(validated, catalog),
        dg.Definitions(
            resources={
                "io_manager": RunScopedIOManager(base_url=str(tmp_path / "runs")),
                "files": FilesResource(data_dir=str(tmp_path / "data"), read_roots={"flows": str(FLOWS)}),
            },
            executor=dg.in_process_executor,
        ),
    )
    assert {key.path[-1] for key in defs.resolve_all_asset_keys()} == {"report"}
    with dg.instance_for_test() as instance:
        result = execute_run_in_process(defs.resolve_job_def("regional_revenue"), instance)
        assert result.success
    assert [p.stem for p in (tmp_path / "runs" / result.run_id / "regional_revenue").iterdir()] == ["report"]
    report = pd.read_parquet(tmp_path / "data" / "reports" / "regional_revenue.parquet")
    pd.testing.assert_frame_equal(report, expected_report(), check_dtype=False)
