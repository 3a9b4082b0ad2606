"""Round trips through RunScopedIOManager: every kind of value, every DataFrame format, on a
local folder (file://) and on fsspec's memory filesystem; the metadata each output records."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from dp_io.io_manager import RunScopedIOManager
from dp_io.metadata import output_metadata
from dp_io.store import OutputStore

FRAME_FORMATS = ["arrow", "arrow-lz4", "parquet"]


def dtype_frame() -> pd.DataFrame:
    """One column per dtype the issue names: nullable ints, categoricals, time zones, strings."""
    return pd.DataFrame(
        {
            "int": np.arange(5, dtype="int64"),
            "int32": np.arange(5, dtype="int32"),
            "nullable_int": pd.array([1, None, 3, None, 5], dtype="Int64"),
            "float": [1.5, np.nan, 3.0, -0.0, np.inf],
            "bool": [True, False, True, False, True],
            "nullable_bool": pd.array([True, None, False, None, True], dtype="boolean"),
            "str": pd.array(["a", None, "ü", "", "tab\there"], dtype="str"),
            "string": pd.array(["x", None, "y", "z", "w"], dtype="string"),
            "category": pd.Categorical(["lo", "hi", "lo", None, "hi"], categories=["lo", "hi"]),
            "ts": pd.date_range("2024-03-30", periods=5, freq="h"),
            "ts_tz": pd.date_range("2024-03-30 23:00", periods=5, freq="h", tz="Europe/Berlin"),
            "date_naive_ns": pd.to_datetime(["2020-01-01", None, "2021-06-01", "2022-01-01", "2023-01-01"]),
        }
    )


FRAMES = {
    "dtypes": dtype_frame,
    "named_index": lambda: pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["k1", "k2"], name="key")),
    "int_column_names": lambda: pd.DataFrame({0: [1, 2], 1: ["a", "b"]}),
    "empty_with_columns": lambda: pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype="str")}),
    "multiindex_rows": lambda: pd.DataFrame(
        {"v": [1, 2, 3]},
        index=pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["g", "n"]),
    ),
}


_INSTANCE: list[dg.DagsterInstance] = []


def _instance() -> dg.DagsterInstance:
    """One ephemeral instance for built contexts (each would otherwise build its own, ~0.3 s)."""
    if not _INSTANCE:
        _INSTANCE.append(dg.DagsterInstance.ephemeral())
    return _INSTANCE[0]


def _write_and_read(io: RunScopedIOManager, value, *, fmt: str | None = None, parts: bool = False):
    """The IO manager's own dump/load hooks, as handle_output and a same-run load_input call
    them; returns (value read back, output metadata). The Dagster plumbing around them is
    covered by ``test_through_dagster_contexts`` and by the real runs in test_io_cross_run."""
    run_id = str(uuid.uuid4())
    store = io.store()
    stem = io.output_stem(store, run_id, ("flow_rt", "node"), None)
    info = io.dump(store, stem, value, fmt or io.default_format)
    info["path"] = store.to_url(info["path"])
    stored = store.find_output(stem)
    assert stored is not None
    return io.load(store, stored, parts=parts), output_metadata(**info)


def test_through_dagster_contexts(any_base: str) -> None:
    """handle_output/load_input with Dagster's built contexts (dp/format and dp/parts)."""
    io = RunScopedIOManager(base_url=any_base)
    run_id = str(uuid.uuid4())
    key = dg.AssetKey(["flow_rt", "node"])
    inst = _instance()
    out = dg.build_output_context(
        run_id=run_id, asset_key=key, definition_metadata={"dp/format": "parquet"}, instance=inst
    )
    chunks = [dtype_frame().iloc[:2], dtype_frame().iloc[2:]]
    io.handle_output(out, iter(chunks))
    metadata = out.get_logged_metadata()
    assert metadata["format"].value == "parquet" and metadata["parts"].value == 2
    upstream = dg.build_output_context(run_id=run_id, asset_key=key, instance=inst)
    whole = io.load_input(dg.build_input_context(asset_key=key, upstream_output=upstream, instance=inst))
    pd.testing.assert_frame_equal(whole, dtype_frame())
    lazy = io.load_input(
        dg.build_input_context(
            asset_key=key,
            upstream_output=upstream,
            definition_metadata={"dp/parts": True},
            instance=inst,
        )
    )
    assert [len(p) for p in lazy] == [2, 3]


def test_op_input_reads_the_output_that_feeds_it(local_base: str) -> None:
    """A plain op job (no assets): the input is read from the upstream op's output path."""

    @dg.op
    def make() -> dict:
        return {"n": 3}

    @dg.op
    def use(value: dict) -> int:
        return value["n"] + 1

    @dg.job(resource_defs={"io_manager": RunScopedIOManager(base_url=local_base)})
    def op_job() -> None:
        use(make())

    result = op_job.execute_in_process(instance=_instance())
    assert result.output_for_node("use") == 4


@pytest.mark.parametrize("fmt", FRAME_FORMATS)
@pytest.mark.parametrize("name", list(FRAMES))
def test_frame_round_trip_keeps_dtypes(any_base: str, name: str, fmt: str) -> None:
    frame = FRAMES[name]()
    back, metadata = _write_and_read(RunScopedIOManager(base_url=any_base), frame, fmt=fmt)
    pd.testing.assert_frame_equal(back, frame)
    assert metadata["format"].value == fmt
    assert metadata["dagster/row_count"].value == len(frame)
    assert metadata["bytes"].value > 0
    expected_suffix = ".parquet" if fmt == "parquet" else ".arrow"
    assert metadata["path"].value.endswith(f"/flow_rt/node{expected_suffix}")
    schema = metadata["dagster/column_schema"].value
    assert {c.name for c in schema.columns} >= {str(c) for c in frame.columns}


@pytest.mark.parametrize("fmt", FRAME_FORMATS)
def test_loaded_frame_is_writable(any_base: str, fmt: str) -> None:
    """Reads convert zero-copy first; the frame handed out must still accept assignment."""
    back, _ = _write_and_read(RunScopedIOManager(base_url=any_base), dtype_frame(), fmt=fmt)
    back.loc[0, "int"] = 100
    back.iloc[1, back.columns.get_loc("float")] = 7.0
    back.loc[2, "str"] = "changed"
    assert back.loc[0, "int"] == 100 and back.loc[1, "float"] == 7.0 and back.loc[2, "str"] == "changed"


@pytest.mark.parametrize("fmt", FRAME_FORMATS)
def test_frame_from_chunked_arrow_round_trips_and_is_writable(any_base: str, fmt: str) -> None:
    """A frame read from Arrow often has chunked columns (many record batches on disk); the
    reader makes them contiguous column by column."""
    import pyarrow as pa

    parts = [pa.Table.from_pandas(dtype_frame().iloc[i : i + 2], preserve_index=False) for i in (0, 2, 4)]
    frame = pa.concat_tables(parts).to_pandas()
    back, _ = _write_and_read(RunScopedIOManager(base_url=any_base), frame, fmt=fmt)
    pd.testing.assert_frame_equal(back, frame)
    back.loc[0, "int"] = -1
    assert back.loc[0, "int"] == -1


def test_compressed_arrow_in_several_batches(local_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import dp_io.formats

    monkeypatch.setattr(dp_io.formats, "COMPRESSED_BATCH_ROWS", 2)
    frame = dtype_frame()
    back, _ = _write_and_read(RunScopedIOManager(base_url=local_base), frame, fmt="arrow-lz4")
    pd.testing.assert_frame_equal(back, frame)


VALUES = {
    "dict": ({"a": 1, "b": [1.5, None, "x"], "c": {"d": True}}, "json"),
    "list": ([1, 2, 3], "json"),
    "str": ("hello", "json"),
    "int": (42, "json"),
    "float": (1.25, "json"),
    "bool": (False, "json"),
    "none": (None, "json"),
    "big_int": (2**70, "json"),
    "tuple": ((1, 2), "pickle"),
    "set": ({1, 2}, "pickle"),
    "int_keys": ({1: "a"}, "pickle"),
    "nan": (float("nan"), "pickle"),
    "datetime": (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "pickle"),
    "decimal": (decimal.Decimal("1.10"), "pickle"),
    "ndarray": (np.arange(6).reshape(2, 3), "pickle"),
    "series": (pd.Series([1, 2], name="s"), "pickle"),
    "bytes": (b"\x00\x01", "pickle"),
}


@pytest.mark.parametrize("name", list(VALUES))
def test_value_round_trip_json_or_pickle(any_base: str, name: str) -> None:
    value, expected_format = VALUES[name]
    back, metadata = _write_and_read(RunScopedIOManager(base_url=any_base), value)
    assert metadata["format"].value == expected_format
    if isinstance(value, float) and value != value:
        assert back != back
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(back, value)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(back, value)
    else:
        assert back == value and type(back) is type(value)


def test_frame_arrow_cannot_hold_is_pickled_with_a_note(any_base: str) -> None:
    frame = pd.DataFrame({"mixed": [1, "a", 2.5]}, dtype=object)
    back, metadata = _write_and_read(RunScopedIOManager(base_url=any_base), frame, fmt="arrow")
    pd.testing.assert_frame_equal(back, frame)
    assert metadata["format"].value == "pickle"
    assert "Arrow cannot hold" in metadata["dp/note"].value


def test_pickle_format_can_be_forced_for_frames(local_base: str) -> None:
    frame = dtype_frame()
    back, metadata = _write_and_read(RunScopedIOManager(base_url=local_base), frame, fmt="pickle")
    pd.testing.assert_frame_equal(back, frame)
    assert metadata["path"].value.endswith(".pkl")


def test_unknown_format_names_the_node(local_base: str) -> None:
    out = dg.build_output_context(
        run_id=str(uuid.uuid4()),
        asset_key=dg.AssetKey(["flow_rt", "node"]),
        definition_metadata={"dp/format": "csv"},
        instance=_instance(),
    )
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=r"flow_rt\.node.*'csv'"):
        RunScopedIOManager(base_url=local_base).handle_output(out, dtype_frame())


def test_default_format_is_configurable(local_base: str) -> None:
    io = RunScopedIOManager(base_url=local_base, default_format="parquet")
    _, metadata = _write_and_read(io, dtype_frame())
    assert metadata["format"].value == "parquet"


@pytest.mark.parametrize("fmt", FRAME_FORMATS)
def test_stream_of_frames_stored_as_parts(any_base: str, fmt: str) -> None:
    chunks = [dtype_frame().iloc[i : i + 2] for i in range(0, 5, 2)]
    io = RunScopedIOManager(base_url=any_base)
    whole, metadata = _write_and_read(io, (c for c in chunks), fmt=fmt)
    pd.testing.assert_frame_equal(whole, pd.concat(chunks))
    assert metadata["parts"].value == 3
    assert metadata["dagster/row_count"].value == 5
    assert metadata["path"].value.endswith("/flow_rt/node.parts")
    store = OutputStore(any_base)
    names = sorted(store.listdir(store.to_path(metadata["path"].value)))
    assert "manifest.json" in names and len(names) == 4

    parts, _ = _write_and_read(io, iter(chunks), fmt=fmt, parts=True)
    assert not isinstance(parts, pd.DataFrame)
    for got, expected in zip(parts, chunks, strict=True):
        pd.testing.assert_frame_equal(got, expected)


def test_stream_of_values_reads_back_as_list(any_base: str) -> None:
    back, metadata = _write_and_read(RunScopedIOManager(base_url=any_base), iter([{"a": 1}, (2,)]))
    assert back == [{"a": 1}, (2,)]
    assert metadata["format"].value == "json+pickle"


def test_empty_stream_reads_back_as_empty_frame(any_base: str) -> None:
    back, metadata = _write_and_read(RunScopedIOManager(base_url=any_base), iter([]))
    assert isinstance(back, pd.DataFrame) and back.empty
    assert metadata["parts"].value == 0


def test_single_value_read_as_parts_is_one_part(local_base: str) -> None:
    back, _ = _write_and_read(RunScopedIOManager(base_url=local_base), {"a": 1}, parts=True)
    assert list(back) == [{"a": 1}]


def test_rewrite_with_another_kind_leaves_one_candidate(local_base: str) -> None:
    """A retried step that now returns another kind of value replaces the old file."""
    io = RunScopedIOManager(base_url=local_base)
    run_id = str(uuid.uuid4())
    key = dg.AssetKey(["flow_rt", "node"])
    inst = _instance()
    io.handle_output(dg.build_output_context(run_id=run_id, asset_key=key, instance=inst), {"f": 1})
    io.handle_output(dg.build_output_context(run_id=run_id, asset_key=key, instance=inst), (1, 2))
    store = OutputStore(local_base)
    assert store.listdir(f"{store.root}/{run_id}/flow_rt") == ["node.pkl"]
    upstream = dg.build_output_context(run_id=run_id, asset_key=key, instance=inst)
    context = dg.build_input_context(asset_key=key, upstream_output=upstream, instance=inst)
    assert io.load_input(context) == (1, 2)


def test_path_segments_are_escaped(local_base: str) -> None:
    """Keys and partitions can never climb out of the run folder."""
    store = OutputStore(local_base)
    stem = store.output_stem("run-1", ("..", "a/b"), "../../etc")
    assert stem.startswith(store.root + "/run-1/")
    assert stem.split("/run-1/")[1].count("/") == 2
    assert ".." not in stem.split("/run-1/")[1].split("/")
