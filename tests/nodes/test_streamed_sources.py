"""Streamed sources (``stream: true``): TableReader, CustomSQLQuery and FileInput against pandas.

A streamed source returns its chunks one by one (``FrameStream``); in a flow the IO manager stores
each chunk as its own part while the source is still reading, a dependant in the same step or in
another step gets the whole frame, and ``dp runs show/read`` list and read the parts. Every result
is compared with reading the whole table or file in pandas; the part count is
``ceil(rows / chunksize)``.
"""

from __future__ import annotations

import math
import posixpath
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner
from node_helpers import make_ctx, run_node
from pydantic import ValidationError

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NO_INPUTS, FrameStream, NodeType, Params
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec
from dp_io import RunScopedIOManager
from dp_io.cli import runs as runs_cli
from dp_resources.files import FilesResource

ROWS = 23
CHUNK = 5


def readings(n: int = ROWS, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(offset, offset + n),
            "sensor": [f"s{i % 4}" for i in range(offset, offset + n)],
            "value": [float(i % 7) + 0.25 if i % 5 else None for i in range(offset, offset + n)],
        }
    )


def seed(databases: Any, df: pd.DataFrame) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    with databases.connect("default") as conn:
        df.to_sql(name, conn, index=False)
    return name


def parts_of(result: Any) -> list[pd.DataFrame]:
    assert isinstance(result, FrameStream), f"expected a stream, got {type(result).__name__}"
    return list(result)


# --- the nodes alone ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("rows", [ROWS, 2 * CHUNK, 0], ids=["uneven", "even", "empty"])
def test_table_reader_stream_matches_pandas(databases: Any, rows: int) -> None:
    """TableReader-stream: chunks of ``chunksize`` rows whose concatenation is pandas' whole read."""
    name = seed(databases, readings(rows))
    parts = parts_of(
        run_node(
            "TableReader",
            {"table": name, "order_by": ["id"], "chunksize": CHUNK, "stream": True},
            {},
            make_ctx(resources={"databases": databases}),
        )
    )
    # an empty table is one empty part, so that its columns are kept
    assert len(parts) == max(1, math.ceil(rows / CHUNK))
    assert [len(p) for p in parts[:-1]] == [CHUNK] * (len(parts) - 1)
    with databases.get_engine("default").connect() as conn:
        expected = pd.read_sql_query(f"SELECT * FROM {name} ORDER BY id", conn)
    pd.testing.assert_frame_equal(pd.concat(parts), expected)


@pytest.mark.postgres
def test_custom_sql_query_stream_matches_pandas(databases: Any) -> None:
    """CustomSQLQuery-stream: the query's chunks, binds applied, equal to pandas' whole read."""
    name = seed(databases, readings())
    sql = f"SELECT id, value FROM {name} WHERE id >= :low ORDER BY id"
    ctx = make_ctx(resources={"databases": databases}, flow_params={"low": 3})
    parts = parts_of(run_node("CustomSQLQuery", {"sql": sql, "chunksize": CHUNK, "stream": True}, {}, ctx))
    with databases.get_engine("default").connect() as conn:
        expected = pd.read_sql_query(sql.replace(":low", "3"), conn)
    assert len(parts) == math.ceil(len(expected) / CHUNK)
    pd.testing.assert_frame_equal(pd.concat(parts), expected)


@pytest.mark.postgres
def test_table_reader_stream_fails_in_the_node_when_the_table_is_missing(databases: Any) -> None:
    """The first chunk is read before the node returns: a missing table is the node's own error."""
    with pytest.raises(ValueError, match="does not exist"):
        run_node(
            "TableReader",
            {"table": "no_such_table", "chunksize": 2, "stream": True},
            {},
            make_ctx(resources={"databases": databases}),
        )


@pytest.fixture
def files(tmp_path: Path) -> FilesResource:
    (tmp_path / "data" / "daily").mkdir(parents=True)
    return FilesResource(data_dir=str(tmp_path / "data"))


def test_file_input_stream_csv_matches_pandas(files: FilesResource, tmp_path: Path) -> None:
    """FileInput-stream: CSV files parsed ``chunksize`` rows at a time, in name order, with the
    index running on across chunks and files, as ``pd.concat(read_csv...)`` gives."""
    paths = [tmp_path / "data" / "daily" / f"day{i}.csv" for i in (1, 2)]
    readings(ROWS).to_csv(paths[0], index=False)
    readings(7, offset=ROWS).to_csv(paths[1], index=False)
    parts = parts_of(
        run_node(
            "FileInput",
            {"path": "daily/*.csv", "chunksize": CHUNK, "stream": True},
            {},
            make_ctx(resources={"files": files}),
        )
    )
    assert [len(p) for p in parts] == [5, 5, 5, 5, 3, 5, 2]  # chunks do not span files
    expected = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    pd.testing.assert_frame_equal(pd.concat(parts), expected)
    # chunksize alone parses in chunks and returns one frame
    whole = run_node("FileInput", {"path": "daily/*.csv", "chunksize": CHUNK}, {}, make_ctx(resources={"files": files}))
    pd.testing.assert_frame_equal(whole, expected)


def test_stream_params_are_checked(files: FilesResource, tmp_path: Path) -> None:
    """stream needs chunksize; FileInput streams CSV only."""
    for node_type, params in [
        ("TableReader", {"table": "t"}),
        ("CustomSQLQuery", {"sql": "SELECT 1"}),
        ("FileInput", {"path": "a.csv"}),
    ]:
        with pytest.raises(ValidationError, match="stream: true needs chunksize"):
            default_catalog()[node_type].params_model.model_validate({**params, "stream": True})
    readings().to_parquet(tmp_path / "data" / "a.parquet")
    with pytest.raises(ValueError, match="chunksize and stream read CSV files only"):
        run_node(
            "FileInput", {"path": "a.parquet", "chunksize": 5, "stream": True}, {}, make_ctx(resources={"files": files})
        )


# --- in a flow: stored part by part, read back whole or per part --------------------------------


def csv_flow(flow_id: str, *, steps: str = "flow", timeout: float | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {
        "id": "history",
        "type": "FileInput",
        "params": {"path": "history.csv", "chunksize": CHUNK, "stream": True},
    }
    if timeout:
        source["timeout_seconds"] = timeout
    return {
        "id": flow_id,
        "policies": {"steps": steps},
        "nodes": [
            source,
            {
                "id": "per_sensor",
                "type": "GroupAggregate",
                "inputs": ["history"],
                "params": {"by": "sensor", "agg": {"readings": ["id", "count"], "total": ["value", "sum"]}},
            },
        ],
    }


def expected_per_sensor(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby("sensor").agg(readings=("id", "count"), total=("value", "sum")).reset_index()


def run(spec: dict[str, Any], tmp_path: Path, io_manager: Any, catalog: Any = None) -> dg.ExecuteInProcessResult:
    catalog = catalog or default_catalog()
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(spec, catalog), catalog),
        dg.Definitions(resources={"io_manager": io_manager, "files": FilesResource(data_dir=str(tmp_path / "data"))}),
    )
    result = defs.resolve_job_def(spec["id"]).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return result


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        e.asset_key.path[-1]: {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


@pytest.mark.e2e
@pytest.mark.parametrize("steps", ["flow", "node"])
def test_streamed_source_in_a_flow_is_stored_in_parts_and_read_by_dp_runs(
    tmp_path: Path, steps: str, dp_home: Path
) -> None:
    """The source's output is ``ceil(rows / chunksize)`` stored parts; its dependant (same step,
    or its own step) gets the whole frame; ``dp runs show`` lists the parts, ``dp runs read``
    reads the whole output or one part."""
    (tmp_path / "data").mkdir()
    history = readings()
    history.to_csv(tmp_path / "data" / "history.csv", index=False)
    base = str(tmp_path / "outputs")
    result = run(csv_flow("streamed", steps=steps), tmp_path, RunScopedIOManager(base_url=base))

    stored = materialized(result)
    parts = math.ceil(ROWS / CHUNK)
    assert stored["history"]["parts"] == parts and stored["history"]["dagster/row_count"] == ROWS
    assert stored["history"]["path"].endswith("/streamed/history.parts")
    assert "the first part of a streamed output" in stored["history"]["preview"]
    step = "streamed__step" if steps == "flow" else "streamed__node__per_sensor"
    pd.testing.assert_frame_equal(result.output_for_node(step, "per_sensor"), expected_per_sensor(history))

    cli = CliRunner()
    shown = cli.invoke(runs_cli, ["show", result.run_id, "--base", base])
    assert shown.exit_code == 0, shown.output
    part_lines = [line.split() for line in shown.output.splitlines() if line.strip().startswith("part ")]
    assert [line[1] for line in part_lines] == [str(i) for i in range(parts)]
    assert [int(line[-2]) for line in part_lines] == [5, 5, 5, 5, 3]  # "... 5 rows"
    whole = tmp_path / "whole.parquet"
    read = cli.invoke(runs_cli, ["read", result.run_id, "history", "--out", str(whole), "--base", base])
    assert read.exit_code == 0, read.output
    pd.testing.assert_frame_equal(pd.read_parquet(whole), history)
    one = tmp_path / "part1.parquet"
    read = cli.invoke(runs_cli, ["read", result.run_id, "history", "--part", "1", "--out", str(one), "--base", base])
    assert read.exit_code == 0, read.output
    pd.testing.assert_frame_equal(pd.read_parquet(one), history.iloc[CHUNK : 2 * CHUNK])
    missing = cli.invoke(runs_cli, ["read", result.run_id, "history", "--part", str(parts), "--base", base])
    assert missing.exit_code != 0 and f"has {parts} part(s)" in missing.output


class CountingParams(Params):
    parts: int


@pytest.mark.e2e
def test_parts_are_stored_while_the_source_still_reads(tmp_path: Path) -> None:
    """Bounded memory while writing: when the source makes part ``i``, parts ``0..i-1`` are
    already on storage (the runtime hands the stream itself to the IO manager)."""
    base = tmp_path / "outputs"
    seen: list[int] = []

    def counting(ctx: Any, params: CountingParams, inputs: dict[str, Any]) -> FrameStream:
        """Yields ``parts`` one-row frames, noting how many parts are stored before each."""
        folder = base / ctx.run_id / ctx.flow_id / f"{ctx.node_id}.parts"

        def generate():
            for i in range(params.parts):
                seen.append(len(list(folder.glob("part-*"))) if folder.is_dir() else 0)
                yield pd.DataFrame({"i": [i]}, index=[i])

        return FrameStream(generate())

    catalog = default_catalog().extended([NodeType("Counting", CountingParams, counting, "source", inputs=NO_INPUTS)])
    spec = {
        "id": "counted",
        "nodes": [
            {"id": "numbers", "type": "Counting", "params": {"parts": 4}},
            {
                "id": "doubled",
                "type": "AddModifyColumn",
                "inputs": ["numbers"],
                "params": {"column": "j", "expression": "i * 2"},
            },
        ],
    }
    result = run(spec, tmp_path, RunScopedIOManager(base_url=str(base)), catalog)
    assert seen == [0, 1, 2, 3]
    assert result.output_for_node("counted__step", "doubled")["j"].tolist() == [0, 2, 4, 6]
    manifest = posixpath.join(str(base), result.run_id, "counted", "numbers.parts", "manifest.json")
    assert Path(manifest).is_file()


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["filesystem-io-manager", "timeout"])
def test_stream_is_read_whole_where_it_cannot_be_stored_in_parts(tmp_path: Path, where: str) -> None:
    """Under another IO manager, or under ``timeout_seconds`` (the node runs in a child process),
    the stream is read into one frame first: same result, one stored value."""
    (tmp_path / "data").mkdir()
    history = readings()
    history.to_csv(tmp_path / "data" / "history.csv", index=False)
    if where == "timeout":
        io: Any = RunScopedIOManager(base_url=str(tmp_path / "outputs"))
        spec = csv_flow("whole", timeout=60)
    else:
        io = dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))
        spec = csv_flow("whole")
    result = run(spec, tmp_path, io)
    assert "parts" not in materialized(result)["history"]
    pd.testing.assert_frame_equal(result.output_for_node("whole__step", "history"), history)
    pd.testing.assert_frame_equal(result.output_for_node("whole__step", "per_sensor"), expected_per_sensor(history))
