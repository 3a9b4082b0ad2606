"""The DuckDB engine in a run (issue 20): ``policies.engine: duckdb`` gives every stored node and
every file the same values as the pandas engine, on the platform's IO manager and a real
instance; a chain of ephemeral nodes is computed in DuckDB as one query, each stored node is
written as Arrow straight from DuckDB, and a node type without a DuckDB form runs in pandas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from test_ephemeral_nodes import FLOW, NODES, definitions, materialised, run

pytestmark = pytest.mark.e2e

EXTRA: list[dict[str, Any]] = [
    # no DuckDB form: runs in pandas between DuckDB nodes, with Arrow in between
    {"id": "upper", "type": "MapValues", "inputs": ["ranked"], "params": {"column": "region", "mapping": {"EU": "eu"}}},
    {"id": "top", "type": "Limit", "inputs": ["upper"], "params": {"n": 2}},
    {"id": "cast", "type": "ChangeDataType", "inputs": ["priced"], "params": {"dtype": {"qty": "float64"}}},
    {"id": "sampled", "type": "SampleRows", "inputs": ["cast"], "params": {"n": 3, "random_state": 4}},
    {
        "id": "pivoted",
        "type": "PivotTable",
        "inputs": ["sampled"],
        "params": {"index": "region", "columns": "qty", "values": "total", "aggfunc": "sum", "fill_value": 0},
    },
]


def spec(policies: dict[str, Any]) -> dict[str, Any]:
    return {"id": FLOW, "nodes": [*NODES, *EXTRA], "policies": policies}


def duckdb_nodes(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """The stored nodes DuckDB computed (their materialisation says ``dp/engine: duckdb``)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    found = set()
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        engine = materialization.metadata.get("dp/engine") if materialization else None
        if engine is not None and engine.value == "duckdb":
            found.add(materialization.asset_key.path[-1])
    return found


# what nodes report in their metadata (dp_assets/engine/reports.py), by either engine
REPORTED = {"rows_in", "rows_kept", "column", "replaced", "duplicates_dropped", "filled", "rows_per_input"}


def reported(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    found = {}
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None:
            found[materialization.asset_key.path[-1]] = {
                key: value.value for key, value in materialization.metadata.items() if key in REPORTED
            }
    return found


def run_outputs(tmp_path: Path, policies: dict[str, Any]) -> tuple[dict[str, pd.DataFrame], set[str], Any]:
    defs = definitions(spec(policies), tmp_path / str(len(policies)) / policies.get("engine", "pandas"))
    root = tmp_path / str(len(policies)) / policies.get("engine", "pandas")
    with dg.instance_for_test() as instance:
        result = run(defs, instance)
        folder = root / "runs" / result.run_id / FLOW
        frames = {path.stem: pd.read_feather(path) for path in folder.glob("*.arrow")}
        engines = duckdb_nodes(instance, result.run_id)
        report = pd.read_csv(root / "data" / "report.csv")
        kept = materialised(instance, result.run_id)
        metadata = {
            f"{node} metadata": pd.DataFrame([values]) for node, values in reported(instance, result.run_id).items()
        }
    return {**frames, **metadata, "report.csv": report}, engines, kept


@pytest.mark.parametrize("ephemeral", [None, "intermediate"])
def test_duckdb_engine_stores_what_pandas_stores(tmp_path: Path, ephemeral: str | None) -> None:
    policies = {"ephemeral": ephemeral} if ephemeral else {}
    pandas_outputs, none, _ = run_outputs(tmp_path / "p", policies)
    duck_outputs, by_duckdb, kept = run_outputs(tmp_path / "d", {**policies, "engine": "duckdb"})
    assert none == set()
    assert set(duck_outputs) == set(pandas_outputs)
    for name, frame in pandas_outputs.items():
        # the engine numbers rows 0, 1, 2...; pandas keeps a filtered row's label (docs/nodes.md)
        pd.testing.assert_frame_equal(duck_outputs[name], frame.reset_index(drop=True), obj=name)
    relational = {"priced", "big", "by_region", "ranked", "top", "cast", "sampled", "pivoted"} & kept
    assert by_duckdb == relational  # MapValues, StaticData and FileWriter ran in pandas


def _orders_files() -> dict[str, Any]:
    """Parquet sources as users have them: written by pandas (a zone, text with a missing value),
    with an integer that may be missing (pandas' ``Int64``: pandas reads it back as ``Int64``),
    written by pyarrow with an integer that holds a missing value (pandas reads float64)."""
    import pyarrow as pa

    plain = pd.DataFrame(
        {
            "id": range(6),
            "region": pd.Series(["EU", None, "US", "EU", "APAC", "EU"], dtype="str"),
            "at": pd.to_datetime(["2024-01-01"] * 6).tz_localize("Europe/Paris"),
            "amount": [1.5, None, 3.0, 4.5, 0.0, 2.0],
        }
    )
    nullable = plain.assign(id=pd.Series([1, None, 3, 4, 5, 6], dtype="Int64"))
    by_arrow = pa.table({"id": [1, None, 3, 4, 5, 6], "region": ["EU", "US", "US", "EU", "APAC", "EU"]})
    return {"pandas": plain, "pandas Int64": nullable, "pyarrow": by_arrow}


@pytest.mark.parametrize("written_by", list(_orders_files()))
def test_a_parquet_source_in_duckdb_gives_what_pandas_reads_and_filters(tmp_path: Path, written_by: str) -> None:
    """DuckDB reads a plain file itself (only its own path: the engine's external access), and
    hands a file pandas reads by other rules to pyarrow or pandas: the stored values and the
    written file are pandas' in each case, also after a filter drops the missing integers."""
    import pyarrow.parquet as pq

    nodes = [
        {"id": "orders", "type": "FileInput", "params": {"path": "orders.parquet"}},
        {"id": "eu", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "region != 'US'"}},
        {"id": "out", "type": "FileWriter", "inputs": ["eu"], "params": {"path": "eu.parquet"}},
    ]
    source = _orders_files()[written_by]
    results = {}
    for engine in ("pandas", "duckdb"):
        root = tmp_path / engine
        (root / "data").mkdir(parents=True)
        if isinstance(source, pd.DataFrame):
            source.to_parquet(root / "data" / "orders.parquet", index=False)
        else:
            pq.write_table(source, root / "data" / "orders.parquet")
        defs = definitions({"id": FLOW, "nodes": nodes, "policies": {"engine": engine}}, root)
        with dg.instance_for_test() as instance:
            result = run(defs, instance)
            [stored] = (root / "runs" / result.run_id / FLOW).glob("eu.arrow")
            results[engine] = (pd.read_feather(stored), pd.read_parquet(root / "data" / "eu.parquet"))
            by_duckdb = duckdb_nodes(instance, result.run_id)
        if engine == "pandas" or written_by == "pandas Int64":
            assert by_duckdb == set()
        else:
            assert by_duckdb == {"orders", "eu"}
    for duck, pandas in zip(results["duckdb"], results["pandas"], strict=True):
        pd.testing.assert_frame_equal(duck.reset_index(drop=True), pandas.reset_index(drop=True))


def test_the_ui_shows_which_nodes_duckdb_runs(tmp_path: Path) -> None:
    """A node the engine runs is tagged ``duckdb`` in the asset catalog; one without a DuckDB form
    (MapValues) keeps ``pandas``, as it runs in pandas."""
    graph = definitions(spec({"engine": "duckdb"}), tmp_path).resolve_asset_graph()
    kinds = {key.path[-1]: graph.get(key).kinds for key in graph.get_all_asset_keys()}
    assert "duckdb" in kinds["top"] and "pandas" not in kinds["top"]
    assert "pandas" in kinds["upper"] and "duckdb" not in kinds["upper"]


def test_a_database_table_feeds_duckdb_nodes_as_arrow(tmp_path: Path, postgres_url: str) -> None:
    """A TableReader has no DuckDB form (DuckDB's postgres scanner is an extension this platform
    does not load): it reads as in pandas and the DuckDB nodes after it take its frame as Arrow,
    with the pandas engine's answer (docs/nodes.md)."""
    import sqlalchemy as sa

    from dp_assets.catalog import default_catalog
    from dp_assets.compiler.factory import build_flow_definitions
    from dp_assets.spec.validation import validate_spec
    from dp_io import RunScopedIOManager
    from dp_resources.databases import DatabasesResource

    table = f"duck_orders_{tmp_path.name[-8:].replace('-', '_')}"
    rows = pd.DataFrame(
        {
            "id": range(8),
            "region": ["EU", None, "US", "EU", "APAC", "EU", "US", None],
            "amount": [1.5, None, 3.0, 4.5, 0.0, 2.0, 8.0, 1.0],
            "at": pd.to_datetime(["2024-01-01 10:00"] * 8, utc=True),
        }
    )
    engine = sa.create_engine(postgres_url)
    rows.to_sql(table, engine, index=False)
    nodes = [
        {"id": "orders", "type": "TableReader", "params": {"table": table, "order_by": ["id"]}},
        {"id": "known", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "not is_null(region)"}},
        {
            "id": "totals",
            "type": "GroupAggregate",
            "inputs": ["known"],
            "params": {"by": "region", "agg": {"total": ["amount", "sum"], "last_at": ["at", "max"]}},
        },
    ]
    outputs, engines = {}, {}
    databases = DatabasesResource(urls={"default": postgres_url})
    try:
        for name in ("pandas", "duckdb"):
            flow_spec = {"id": FLOW, "nodes": nodes, "policies": {"engine": name, "ephemeral": "intermediate"}}
            catalog = default_catalog()
            defs = dg.Definitions.merge(
                build_flow_definitions(validate_spec(flow_spec, catalog), catalog),
                dg.Definitions(
                    resources={
                        "io_manager": RunScopedIOManager(base_url=str(tmp_path / name)),
                        "databases": databases,
                    },
                    executor=dg.in_process_executor,
                ),
            )
            with dg.instance_for_test() as instance:
                result = run(defs, instance)
                [stored] = (tmp_path / name / result.run_id / FLOW).glob("totals.arrow")
                outputs[name] = pd.read_feather(stored)
                engines[name] = duckdb_nodes(instance, result.run_id)
    finally:
        databases.dispose()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE "{table}"'))
        engine.dispose()
    assert engines == {"pandas": set(), "duckdb": {"totals"}}  # orders: pandas; known: ephemeral
    pd.testing.assert_frame_equal(outputs["duckdb"], outputs["pandas"])
    assert outputs["duckdb"]["total"].tolist() == [0.0, 8.0, 11.0]  # APAC, EU (one missing amount), US
