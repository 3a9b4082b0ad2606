"""How the DuckDB engine learns a node's columns before running it (``relation.describe``): from
the bound query's DuckDB types where their Arrow export is fixed, else by running the query on
no rows. Either way the names and Arrow types are exactly what DuckDB's own export gives, which
the forms compare (a join's keys, a union's columns) and the chain converts with."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dp_assets.engine.connection import connect
from dp_assets.engine.relation import ROW_ORDER, _arrow_types, describe

# One value per DuckDB type: those describe maps itself, and some it leaves to DuckDB.
VALUES = {
    "BOOLEAN": "true",
    "TINYINT": "1::TINYINT",
    "SMALLINT": "1::SMALLINT",
    "INTEGER": "1::INTEGER",
    "BIGINT": "1::BIGINT",
    "UTINYINT": "1::UTINYINT",
    "USMALLINT": "1::USMALLINT",
    "UINTEGER": "1::UINTEGER",
    "UBIGINT": "1::UBIGINT",
    "FLOAT": "1.5::FLOAT",
    "DOUBLE": "1.5::DOUBLE",
    "VARCHAR": "'ä'",
    "DATE": "DATE '2024-02-29'",
    "TIMESTAMP": "TIMESTAMP '2024-02-29 10:00:00'",
    "TIMESTAMP_S": "TIMESTAMP_S '2024-02-29 10:00:00'",
    "TIMESTAMP_MS": "TIMESTAMP_MS '2024-02-29 10:00:00'",
    "TIMESTAMP_NS": "TIMESTAMP_NS '2024-02-29 10:00:00'",
    # left to DuckDB:
    "TIMESTAMPTZ": "TIMESTAMPTZ '2024-02-29 10:00:00+02'",
    "DECIMAL": "1.25::DECIMAL(10, 2)",
    "HUGEINT": "1::HUGEINT",
    "LIST": "[1, 2]",
    "NULL": "NULL",
    "INTERVAL": "INTERVAL 1 DAY",
}


@pytest.fixture(scope="module")
def connection():
    con = connect()
    yield con
    con.close()


def duckdb_export(connection, sql: str) -> list[tuple[str, object]]:
    """What DuckDB itself gives: the query run on no rows, as Arrow."""
    schema = connection.sql(f"SELECT * FROM ({sql}) LIMIT 0").to_arrow_table().schema
    return [(field.name, field.type) for field in schema if field.name != ROW_ORDER]


@pytest.mark.parametrize("type_name", list(VALUES))
def test_each_type_is_described_as_duckdb_exports_it(connection, type_name: str) -> None:
    sql = f"SELECT {VALUES[type_name]} AS v, 7::BIGINT AS {ROW_ORDER}"
    relation = describe(connection, sql)
    assert list(zip(relation.names, relation.arrow_types, strict=True)) == duckdb_export(connection, sql)
    assert relation.names == ("v",)  # the hidden row order is never a column


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "A", "b", "ä"]), st.sampled_from(list(VALUES))), min_size=1, max_size=6)
)
def test_a_relation_of_any_types_is_described_as_duckdb_exports_it(columns: list[tuple[str, str]]) -> None:
    """Mapped and unmapped types in one relation, names repeated or differing by case (DuckDB
    renames them): the same names, order and types as DuckDB's own export."""
    con = connect()
    try:
        sql = "SELECT " + ", ".join(f'{VALUES[t]} AS "{name}"' for name, t in columns)
        relation = describe(con, sql)
        assert list(zip(relation.names, relation.arrow_types, strict=True)) == duckdb_export(con, sql)
    finally:
        con.close()


def test_types_without_a_fixed_export_are_left_to_duckdb(connection) -> None:
    bound = connection.sql("SELECT 1::BIGINT AS a, 1.25::DECIMAL(10, 2) AS b")
    assert _arrow_types(bound.types) is None
    assert _arrow_types(connection.sql("SELECT 1::BIGINT AS a, 'x' AS b").types) is not None
