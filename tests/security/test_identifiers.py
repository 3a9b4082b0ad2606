"""V1: SQL identifiers from specs (table, schema, column) with injection strings.

Plain identifiers only for tables and schemas (refused when the spec loads); column names are
checked and always quoted; filter values are bound parameters. A canary table must be untouched.
"""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NodeContext
from dp_resources.databases import DatabasesResource

INJECTIONS = [
    "orders; DROP TABLE canary; --",
    'orders" ; DROP TABLE canary; --',
    "orders' OR '1'='1",
    "canary--",
    "a.b.c",
    "1orders",
    "orders\x00",
    "orders /* */",
    "x" * 64,
    "",
]


@pytest.fixture(params=["postgres", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'v1.db'}"
    resource = DatabasesResource(urls={"default": url})
    canary = f"canary_{uuid.uuid4().hex[:8]}"
    with resource.connect("default") as conn:
        pd.DataFrame({"secret": ["keep me"]}).to_sql(canary, conn, index=False)
    yield resource, canary
    with resource.get_engine("default").connect() as conn:
        assert pd.read_sql_table(canary, conn)["secret"].tolist() == ["keep me"], "the canary table was touched"
    resource.dispose()


def run(type_name: str, params: dict[str, Any], inputs: dict[str, Any], resource: Any) -> Any:
    node_type = default_catalog()[type_name]
    ctx = NodeContext("v1", "node", "run", {}, {"databases": resource})
    return node_type.run(ctx, node_type.params_model.model_validate(params), inputs)


@pytest.mark.parametrize("name", INJECTIONS)
@pytest.mark.parametrize("type_name", ["TableReader", "TableWriter"])
@pytest.mark.parametrize("field", ["table", "schema"])
def test_V1_table_and_schema_names_are_refused_at_load(type_name: str, field: str, name: str) -> None:
    params = {"table": "orders", field: name}
    with pytest.raises(ValidationError, match=r"not allowed|must be"):
        default_catalog()[type_name].params_model.model_validate(params)


@pytest.mark.parametrize("column", ['a"; DROP TABLE canary; --', "a;b", "new\nline", "", "x" * 70])
def test_V1_bad_column_names_are_refused(db: Any, column: str) -> None:
    resource, canary = db
    with pytest.raises(ValidationError):
        default_catalog()["TableReader"].params_model.model_validate({"table": canary, "columns": [column]})
    with pytest.raises(ValidationError):
        default_catalog()["TableReader"].params_model.model_validate(
            {"table": canary, "where": [{"column": column, "value": 1}]}
        )
    with pytest.raises(ValueError, match="cannot be written"):
        run(
            "TableWriter",
            {"table": "out_table", "if_exists": "replace"},
            {"input": pd.DataFrame({column: [1]})},
            resource,
        )


def test_V1_odd_but_allowed_column_names_are_quoted(db: Any) -> None:
    """Spaces, keywords, case and unicode in column names round-trip, quoted by SQLAlchemy."""
    resource, _canary = db
    table = f"odd_{uuid.uuid4().hex[:8]}"
    df = pd.DataFrame({"select": [1, 2], "Order Id": [3, 4], "drop table": ["x", "y"], "café": [1.5, 2.5]})
    run("TableWriter", {"table": table, "if_exists": "replace"}, {"input": df}, resource)
    run("TableWriter", {"table": table, "if_exists": "upsert", "keys": ["Order Id"]}, {"input": df}, resource)
    back = run(
        "TableReader", {"table": table, "where": [{"column": "drop table", "op": "==", "value": "x"}]}, {}, resource
    )
    pd.testing.assert_frame_equal(back, df.iloc[:1])


@pytest.mark.parametrize("value", ["x' OR '1'='1", "'; DROP TABLE canary; --", "%"])
def test_V1_filter_values_are_bound(db: Any, value: str) -> None:
    resource, canary = db
    out = run(
        "TableReader", {"table": canary, "where": [{"column": "secret", "op": "==", "value": value}]}, {}, resource
    )
    assert out.empty
    with resource.get_engine("default").connect() as conn:
        assert canary in sa.inspect(conn).get_table_names()
