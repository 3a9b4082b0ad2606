"""TableIOManager on the real PostgreSQL: round trips compared with plain pandas, identifiers
checked (V1-style), replace swapped in one transaction so a concurrent reader only ever sees the
old complete table or the new one (E4-style), a failed load leaves the old table and no other."""

import threading
import uuid

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from dp_io.errors import InvalidIdentifierError
from dp_io.table import TableIOManager, read_table, replace_table

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str):
    eng = sa.create_engine(postgres_url)
    yield eng
    eng.dispose()


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.arange(4, dtype="int64"),
            "nullable": pd.array([1, None, 3, None], dtype="Int64"),
            "amount": [1.5, np.nan, -2.25, 1e10],
            "flag": [True, False, True, False],
            "text": ["plain", "tab\tand\nnewline", "back\\slash", None],
            "unicode": ["ü", "日本", "", "x"],
            "at": pd.date_range("2024-03-31 00:30", periods=4, freq="h", tz="Europe/Berlin"),
            "day": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-04"]),
            "cat": pd.Categorical(["a", "b", "a", "b"]),
        }
    )


def test_round_trip_matches_pandas(engine, postgres_url: str) -> None:
    frame = _frame()
    replace_table(engine, "io_rt", "values", frame)
    back = read_table(engine, "io_rt", "values", "numpy_nullable").sort_values("id", ignore_index=True)
    assert back["id"].tolist() == frame["id"].tolist()
    assert back["nullable"].tolist() == [1, pd.NA, 3, pd.NA]
    assert back["amount"].isna().tolist() == frame["amount"].isna().tolist()
    assert back["amount"].dropna().tolist() == frame["amount"].dropna().tolist()
    assert back["flag"].tolist() == frame["flag"].tolist()
    assert back["text"].tolist()[:3] == frame["text"].tolist()[:3] and back["text"].isna().tolist()[3]
    assert back["unicode"].tolist() == frame["unicode"].tolist()
    assert (back["at"] == frame["at"]).all()  # same instants (PostgreSQL returns UTC)
    assert back["day"].isna().tolist() == frame["day"].isna().tolist()
    assert back["cat"].tolist() == frame["cat"].astype(str).tolist()


def test_through_dagster_assets(postgres_url: str, dp_home) -> None:
    @dg.asset(key=["tbl_flow", "orders"], io_manager_key="table_io")
    def orders() -> pd.DataFrame:
        return pd.DataFrame({"id": [1, 2, 3], "total": [9.5, 3.0, 7.25]})

    @dg.asset(
        key=["tbl_flow", "big_orders"],
        ins={"orders": dg.AssetIn(["tbl_flow", "orders"])},
        io_manager_key="table_io",
    )
    def big_orders(orders: pd.DataFrame) -> pd.DataFrame:
        return orders[orders["total"] > 5].reset_index(drop=True)

    manager = TableIOManager(url=postgres_url)
    with dg.instance_for_test() as instance:
        result = dg.materialize([orders, big_orders], instance=instance, resources={"table_io": manager})
    assert result.success
    metadata = result.asset_materializations_for_node("tbl_flow__orders")[0].metadata
    assert metadata["dagster/table_name"].value == "tbl_flow.orders"
    assert metadata["dagster/row_count"].value == 3
    eng = sa.create_engine(postgres_url)
    try:
        got = read_table(eng, "tbl_flow", "big_orders").sort_values("id", ignore_index=True)
    finally:
        eng.dispose()
    expected = pd.DataFrame({"id": [1, 3], "total": [9.5, 7.25]})
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_metadata_names_schema_and_table(postgres_url: str) -> None:
    manager = TableIOManager(url=postgres_url)
    assert manager.table_for(dg.AssetKey(["f", "n"]), {}) == ("f", "n")
    assert manager.table_for(dg.AssetKey(["n"]), {}) == ("public", "n")
    assert manager.table_for(dg.AssetKey(["f", "n"]), {"dp/schema": "s", "dp/table": "t"}) == (
        "s",
        "t",
    )


INJECTIONS = [
    'x"; DROP TABLE canary.keep; --',
    "x; DROP TABLE canary.keep",
    "1starts_with_digit",
    "has space",
    "dotted.name",
    "a" * 64,
    "",
]


@pytest.mark.parametrize("name", INJECTIONS, ids=[f"V1-{i}" for i in range(len(INJECTIONS))])
def test_V1_identifiers_are_refused_and_canary_untouched(engine, postgres_url: str, name: str) -> None:
    replace_table(engine, "canary", "keep", pd.DataFrame({"v": [1]}))
    manager = TableIOManager(url=postgres_url)
    for metadata in ({"dp/table": name}, {"dp/schema": name}):
        with pytest.raises(InvalidIdentifierError, match="not a valid SQL identifier"):
            manager.table_for(dg.AssetKey(["flow", "node"]), metadata)
    with pytest.raises(InvalidIdentifierError):
        replace_table(engine, "canary", name, pd.DataFrame({"v": [2]}))
    assert read_table(engine, "canary", "keep")["v"].tolist() == [1]


def _no_temporary_tables(engine) -> bool:
    with engine.connect() as conn:
        count = conn.execute(
            sa.text("SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_dp\\_new\\_%'")
        ).scalar_one()
    return count == 0


def test_failed_load_keeps_old_table_and_leaves_no_temporary(engine) -> None:
    replace_table(engine, "io_fail", "t", pd.DataFrame({"v": [1, 2]}))

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("value cannot be rendered")

    bad = pd.DataFrame({"v": ["ok", Boom()]}, dtype=object)
    with pytest.raises(RuntimeError, match="cannot be rendered"):
        replace_table(engine, "io_fail", "t", bad)
    assert read_table(engine, "io_fail", "t")["v"].tolist() == [1, 2]
    assert _no_temporary_tables(engine)


@pytest.mark.fault
def test_E4_concurrent_reader_sees_old_or_new_table_only(engine) -> None:
    """While the table is replaced again and again, a reader in another connection only ever
    sees a complete version: (rows, min(version), max(version)) is (N1, 1, 1) or (N2, 2, 2)."""
    sizes = {1: 20_000, 2: 35_000}

    def version(v: int) -> pd.DataFrame:
        return pd.DataFrame({"version": np.full(sizes[v], v), "payload": ["x" * 20] * sizes[v]})

    replace_table(engine, "io_swap", "t", version(1))
    seen: set[tuple[int, int, int]] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        reader_engine = sa.create_engine(engine.url)
        try:
            while not stop.is_set():
                with reader_engine.connect() as conn:
                    row = conn.execute(sa.text('SELECT count(*), min(version), max(version) FROM "io_swap"."t"')).one()
                seen.add(tuple(row))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            reader_engine.dispose()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(6):
            replace_table(engine, "io_swap", "t", version(2 if i % 2 == 0 else 1))
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors, errors
    assert seen <= {(20_000, 1, 1), (35_000, 2, 2)}
    assert len(seen) >= 1
    assert _no_temporary_tables(engine)


def test_partitioned_and_non_frames_are_refused(postgres_url: str) -> None:
    manager = TableIOManager(url=postgres_url)
    context = dg.build_output_context(asset_key=dg.AssetKey(["f", "n"]), instance=dg.DagsterInstance.ephemeral())
    with pytest.raises(dg.DagsterTypeCheckDidNotPass, match=r"f/n.*got dict"):
        manager.handle_output(context, {"not": "a frame"})


def test_unique_schema_names_do_not_collide(engine) -> None:
    schema = f"io_{uuid.uuid4().hex[:8]}"
    replace_table(engine, schema, "t", pd.DataFrame({"a": [1]}))
    replace_table(engine, schema, "t", pd.DataFrame({"a": [2, 3]}))
    assert read_table(engine, schema, "t")["a"].tolist() == [2, 3]
