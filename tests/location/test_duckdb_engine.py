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
    return {**frames, "report.csv": report}, engines, kept


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
    relational = {"priced", "big", "by_region", "ranked", "top"} & kept
    assert by_duckdb == relational  # MapValues, StaticData and FileWriter ran in pandas


def test_a_parquet_source_is_read_by_pyarrow_and_filtered_in_duckdb(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "id": range(6),
            "region": pd.Series(["EU", None, "US", "EU", "APAC", "EU"], dtype="str"),
            "at": pd.to_datetime(["2024-01-01"] * 6).tz_localize("Europe/Paris"),
            "amount": [1.5, None, 3.0, 4.5, 0.0, 2.0],
        }
    )
    nodes = [
        {"id": "orders", "type": "FileInput", "params": {"path": "orders.parquet"}},
        {"id": "eu", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "region != 'US'"}},
        {"id": "out", "type": "FileWriter", "inputs": ["eu"], "params": {"path": "eu.parquet"}},
    ]
    results = {}
    for engine in ("pandas", "duckdb"):
        root = tmp_path / engine
        (root / "data").mkdir(parents=True)
        frame.to_parquet(root / "data" / "orders.parquet", index=False)
        defs = definitions({"id": FLOW, "nodes": nodes, "policies": {"engine": engine}}, root)
        with dg.instance_for_test() as instance:
            result = run(defs, instance)
            [stored] = (root / "runs" / result.run_id / FLOW).glob("eu.arrow")
            results[engine] = (pd.read_feather(stored), pd.read_parquet(root / "data" / "eu.parquet"))
            assert duckdb_nodes(instance, result.run_id) == ({"orders", "eu"} if engine == "duckdb" else set())
    for duck, pandas in zip(results["duckdb"], results["pandas"], strict=True):
        pd.testing.assert_frame_equal(duck, pandas.reset_index(drop=True))


def test_the_ui_shows_which_nodes_duckdb_runs(tmp_path: Path) -> None:
    """A node the engine runs is tagged ``duckdb`` in the asset catalog; one without a DuckDB form
    (MapValues) keeps ``pandas``, as it runs in pandas."""
    graph = definitions(spec({"engine": "duckdb"}), tmp_path).resolve_asset_graph()
    kinds = {key.path[-1]: graph.get(key).kinds for key in graph.get_all_asset_keys()}
    assert "duckdb" in kinds["top"] and "pandas" not in kinds["top"]
    assert "pandas" in kinds["upper"] and "duckdb" not in kinds["upper"]
