"""``storage: {format: table}`` in a spec: the node's output is a PostgreSQL table (dp_io.table),
not a file of the run; dependants in the same step get the frame, a later run that materialises
only a dependant reads the table; ``policies.output_format`` sets every other node's format."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from dp_assets.location import build_code_location

pytestmark = pytest.mark.postgres

ROWS = [{"region": r, "amount": float(a)} for r, a in [("n", 1), ("s", 2), ("n", 3), ("e", 4)]]


def _spec() -> dict:
    return {
        "id": "tabled",
        "policies": {"output_format": "arrow-lz4"},
        "nodes": [
            {"id": "sales", "type": "StaticData", "params": {"rows": ROWS}},
            {
                "id": "totals",
                "type": "GroupAggregate",
                "inputs": ["sales"],
                "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
                "storage": {"format": "table", "table": "reporting.region_totals"},
            },
            {"id": "ranked", "type": "SortData", "inputs": ["totals"], "params": {"by": "total", "ascending": False}},
        ],
    }


def _expected_totals() -> pd.DataFrame:
    sales = pd.DataFrame(ROWS)
    return sales.groupby("region", as_index=False).agg(total=("amount", "sum"))


def test_a_table_node_is_a_postgres_table_and_a_later_run_reads_it(flows_dir, dp_home, postgres_url, monkeypatch):
    monkeypatch.setenv("DP_TABLES_URL", postgres_url)
    (flows_dir / "tabled.yaml").write_text(yaml.safe_dump(_spec()))
    defs = build_code_location()
    job = defs.resolve_job_def("tabled")
    instance = dg.DagsterInstance.get()

    result = job.execute_in_process(instance=instance)
    assert result.success
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        table = pd.read_sql_query(sa.text('SELECT * FROM "reporting"."region_totals"'), conn)
    engine.dispose()
    expected = _expected_totals()
    pd.testing.assert_frame_equal(table.sort_values("region", ignore_index=True), expected, check_dtype=False)
    run_dir = dp_home / "outputs" / result.run_id / "tabled"
    assert sorted(p.name for p in run_dir.iterdir()) == ["ranked.arrow", "sales.arrow"]
    materialised = {
        e.asset_key.path[-1]: e.step_materialization_data.materialization.metadata
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    }
    assert materialised["totals"]["dagster/table_name"].value == "reporting.region_totals"
    assert materialised["sales"]["format"].value == "arrow-lz4"  # policies.output_format
    ranked = pd.read_feather(run_dir / "ranked.arrow")
    pd.testing.assert_frame_equal(
        ranked, expected.sort_values("total", ascending=False, ignore_index=True), check_dtype=False
    )

    # Materialise only the dependant: it reads the table, which another writer changed meanwhile.
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text('UPDATE "reporting"."region_totals" SET total = total * 10'))
    engine.dispose()
    later = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(["tabled", "ranked"])])
    assert later.success
    again = pd.read_feather(dp_home / "outputs" / later.run_id / "tabled" / "ranked.arrow")
    assert again["total"].tolist() == sorted((expected["total"] * 10).tolist(), reverse=True)


def test_policies_output_format_table_makes_every_node_a_table(flows_dir, dp_home, postgres_url, monkeypatch):
    monkeypatch.setenv("DP_TABLES_URL", postgres_url)
    spec = {
        "id": "all_tables",
        "policies": {"output_format": "table"},
        "nodes": [
            {"id": "sales", "type": "StaticData", "params": {"rows": ROWS}},
            {"id": "big", "type": "FilterRows", "inputs": ["sales"], "params": {"condition": "amount > 1"}},
        ],
    }
    (flows_dir / "all_tables.yaml").write_text(yaml.safe_dump(spec))
    result = build_code_location().resolve_job_def("all_tables").execute_in_process(instance=dg.DagsterInstance.get())
    assert result.success
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        sales = pd.read_sql_query(sa.text('SELECT * FROM "all_tables"."sales"'), conn)
        big = pd.read_sql_query(sa.text('SELECT * FROM "all_tables"."big"'), conn)
    engine.dispose()
    frame = pd.DataFrame(ROWS)
    pd.testing.assert_frame_equal(sales, frame, check_dtype=False, check_like=True)
    expected_big = frame[frame["amount"] > 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(big, expected_big, check_dtype=False, check_like=True)
    assert not (dp_home / "outputs" / result.run_id).exists()  # no run files for tables
