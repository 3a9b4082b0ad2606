"""SqlTransform: DuckDB SQL over the node's inputs, compared with the same operation in pandas;
one SELECT only, decided by DuckDB's parser; no file, network, extension or setting access;
its output columns known before a run; and any text as a query gives a result or a clear
error, never a crash or an escape (Hypothesis)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_helpers import make_ctx, run_node
from pydantic import ValidationError

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import SchemaError
from dp_assets.catalog.nodes.sql_transform import SqlTransformParams, sql_transform, sql_transform_schema
from dp_assets.spec.validation import FlowValidationError, validate_spec


def orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [1, 2, 3, 4, 5, 6],
            "region": pd.Series(["EU", "US", None, "EU", "US", "EU"], dtype="str"),
            "amount": [10.0, None, 7.5, 10.0, 3.0, 12.5],
            "qty": [1, 2, 3, 1, 5, 2],
        }
    )


def regions() -> pd.DataFrame:
    return pd.DataFrame({"region": pd.Series(["EU", "US", "APAC"], dtype="str"), "target": [20.0, 5.0, 1.0]})


PARITY = [
    pytest.param(
        "SELECT * FROM orders WHERE qty > 1 ORDER BY order_id",
        lambda o, r: o[o["qty"] > 1].reset_index(drop=True),
        id="SqlTransform-filter",
    ),
    pytest.param(
        "SELECT region, sum(qty) AS qty, count(*) AS n FROM orders WHERE region IS NOT NULL GROUP BY region ORDER BY region",
        lambda o, r: (
            o.dropna(subset=["region"])
            .groupby("region", as_index=False)
            .agg(qty=("qty", "sum"), n=("order_id", "count"))
        ),
        id="SqlTransform-group-sum-stays-integer",
    ),
    pytest.param(
        "SELECT o.order_id, o.region, r.target FROM orders o JOIN regions r ON o.region = r.region ORDER BY o.order_id",
        lambda o, r: (
            o.merge(r, on="region")[["order_id", "region", "target"]].sort_values("order_id").reset_index(drop=True)
        ),
        id="SqlTransform-join",
    ),
    pytest.param(
        "SELECT order_id, amount * qty AS total FROM orders ORDER BY total DESC NULLS LAST, order_id LIMIT 3",
        lambda o, r: (
            o.assign(total=o["amount"] * o["qty"])
            .sort_values(["total", "order_id"], ascending=[False, True], na_position="last")[["order_id", "total"]]
            .head(3)
            .reset_index(drop=True)
        ),
        id="SqlTransform-order-limit",
    ),
    pytest.param(
        "SELECT * FROM orders WHERE false",
        lambda o, r: o.iloc[0:0].reset_index(drop=True),
        id="SqlTransform-empty",
    ),
]


@pytest.mark.parametrize(("query", "expected"), PARITY)
def test_sql_transform_matches_pandas(query: str, expected: Any) -> None:
    given = {"orders": orders(), "regions": regions()}
    actual = run_node("SqlTransform", {"query": query}, given)
    pd.testing.assert_frame_equal(actual, expected(orders(), regions()))
    pd.testing.assert_frame_equal(given["orders"], orders())  # inputs untouched


REFUSED = {
    "read_csv": "SELECT * FROM read_csv('{secret}')",
    "read_parquet": "SELECT * FROM read_parquet('{secret}')",
    "file-as-table": "SELECT * FROM '{secret}'",
    "copy": "COPY orders TO '{out}'",
    "attach": "ATTACH '{out}' AS other",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET enable_external_access = true",
    "two-statements": "SELECT 1; COPY orders TO '{out}'",
    "python-variable": "SELECT * FROM ctx",
    "http": "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_sql_transform_refuses_files_network_extensions_and_settings(name: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("token\nhunter2\n")
    out = tmp_path / "out.csv"
    query = REFUSED[name].format(secret=secret, out=out)
    with pytest.raises((ValidationError, ValueError)) as caught:
        params = SqlTransformParams.model_validate({"query": query})
        sql_transform(make_ctx(), params, {"orders": orders()})
    assert "hunter2" not in str(caught.value)
    assert not out.exists()


def flow(query: str) -> dict[str, Any]:
    return {
        "id": "sql_flow",
        "nodes": [
            {"id": "orders", "type": "StaticData", "params": {"rows": [{"region": "EU", "qty": 1, "amount": 2.5}]}},
            {"id": "targets", "type": "StaticData", "params": {"rows": [{"region": "EU", "target": 3.0}]}},
            {
                "id": "joined",
                "type": "SqlTransform",
                "inputs": {"o": "orders", "t": "targets"},
                "params": {"query": query},
            },
            {"id": "sorted", "type": "SortData", "inputs": ["joined"], "params": {"by": "target"}},
        ],
    }


def test_its_columns_are_known_before_a_run() -> None:
    query = "SELECT o.region, sum(o.qty) AS qty, max(t.target) AS target FROM o JOIN t USING (region) GROUP BY 1"
    schemas = validate_spec(flow(query), default_catalog()).schemas
    assert schemas["joined"] == {"region": "string", "qty": "integer", "target": "float"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT region, nope FROM o", 'Referenced column "nope" not found'),
        ("SELECT region FROM o", "column 'target' is not in the input"),  # the reader's field
        ("DELETE FROM o", "only a SELECT may run here, not a DELETE statement"),
        ("SELECT 1; SELECT 2", "write exactly one SELECT statement (found 2)"),
        ("SELEC 1", "not valid DuckDB SQL: Parser Error"),
    ],
)
def test_a_wrong_query_is_a_validation_error_naming_flow_node_and_field(query: str, message: str) -> None:
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(flow(query), default_catalog())
    errors = [str(error) for error in caught.value.errors]
    node = "sorted" if "target" in message else "joined"
    field = "params.by" if node == "sorted" else "params.query"
    assert any(f"flow 'sql_flow', node '{node}', field '{field}'" in e and message in e for e in errors), errors


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        ("SELECT * FROM o JOIN orders USING (region)", "orders"),  # the node id, not the input's name
        ("SELECT * FROM o WHERE region IN (SELECT region FROM T2)", "T2"),
        ("WITH eu AS (SELECT * FROM o) SELECT * FROM eu JOIN T USING (region)", None),  # a CTE; T is t
        ("SELECT * FROM information_schema.tables", None),
    ],
)
def test_a_table_that_is_no_input_is_refused_when_the_columns_are_not_known(query: str, refused: str | None) -> None:
    """A source whose columns only the run knows (a file without `columns:`) still lets
    validation name a table the query reads that is no input, which the run would fail on
    ('Table with name ... does not exist')."""
    spec = flow(query)
    spec["nodes"][0] = {"id": "orders", "type": "FileInput", "params": {"path": "orders.parquet"}}
    if refused is None:
        validate_spec(spec, default_catalog())
        return
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(spec, default_catalog())
    assert [str(e) for e in caught.value.errors] == [
        f"flow 'sql_flow', node 'joined', field 'params.query': table '{refused}' is not an input of the node "
        "(its inputs: o, t) (input 'orders.result' -> 'joined', 'targets.result' -> 'joined')"
    ]


def test_a_wrong_query_in_a_spec_file_is_reported_without_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    path = tmp_path / "sql_flow.yaml"
    path.write_text(yaml.safe_dump(flow("SELECT nope FROM o")))
    done = subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", "validate", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "node 'joined', field 'params.query'" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


SQL_WORDS = st.sampled_from(
    [
        "SELECT",
        "*",
        "FROM",
        "orders",
        "WHERE",
        "qty",
        ">",
        "1",
        ";",
        "COPY",
        "TO",
        "'x.csv'",
        "ATTACH",
        "INSTALL",
        "LOAD",
        "httpfs",
        "read_csv(",
        "'/etc/passwd'",
        ")",
        "SET",
        "PRAGMA",
        "CALL",
        "(",
        "UNION",
        "ALL",
        "WITH",
        "AS",
        "x",
        ",",
        "--",
        "/*",
        "*/",
        "'",
        '"',
        "getenv(",
        "query(",
        "PIVOT",
        "EXPORT",
        "DATABASE",
        "CREATE",
        "TABLE",
        "DROP",
        "enable_external_access",
        "=",
        "true",
    ]
)
QUERIES = st.one_of(st.text(max_size=200), st.lists(SQL_WORDS, max_size=15).map(" ".join))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(query=QUERIES)
def test_any_text_as_a_query_gives_a_result_or_a_clear_error(query: str, tmp_path: Path) -> None:
    """Invariant: a frame, or a ValidationError/ValueError with a message; never another
    exception, never a file written in the working directory."""
    before = set(Path.cwd().iterdir())
    try:
        params = SqlTransformParams.model_validate({"query": query})
        result = sql_transform(make_ctx(), params, {"orders": orders()})
    except (ValidationError, ValueError) as exc:
        assert str(exc).strip()
    else:
        assert isinstance(result, pd.DataFrame)
    assert set(Path.cwd().iterdir()) == before


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=QUERIES, columns_known=st.booleans())
def test_any_text_as_a_query_gives_columns_or_a_clear_schema_error_before_a_run(
    query: str, columns_known: bool
) -> None:
    """Invariant of the check before a run (DuckDB's parse tree for the tables read, then
    DESCRIBE): a query the params accept gives its columns, None (not known before the run) or a
    SchemaError with a message; never another exception, whatever the text and whether the
    inputs' columns are known."""
    try:
        params = SqlTransformParams.model_validate({"query": query})
    except ValidationError:
        return
    schema = {"order_id": "integer", "amount": "number"} if columns_known else None
    try:
        columns = sql_transform_schema(params, {"orders": schema})
    except SchemaError as exc:
        assert exc.message.strip()
    else:
        assert columns is None or isinstance(columns, dict)


def test_flow_params_in_a_query_are_checked_again_at_run() -> None:
    """A launch param rendered into the query cannot make it a second statement."""
    spec = copy.deepcopy(flow("SELECT o.*, t.target FROM o JOIN t USING (region) WHERE qty > {{ params.n }}"))
    spec["params"] = {"n": {"type": "string", "default": "0"}}
    validate_spec(spec, default_catalog())
    with pytest.raises(ValidationError, match="exactly one SELECT"):
        SqlTransformParams.model_validate({"query": "SELECT * FROM o WHERE qty > 0; COPY o TO 'x.csv'"})


def test_dp_validate_columns_lists_a_sql_transforms_columns() -> None:
    from click.testing import CliRunner

    from dp_assets.cli import main as dp

    flows = Path(__file__).resolve().parents[2] / "flows"
    result = CliRunner().invoke(dp, ["validate", "--columns", str(flows / "regional_revenue.yaml")])
    assert result.exit_code == 0, result.output
    assert (
        "attainment: region (string), revenue (float), orders (integer), units (integer), "
        "target (float), attainment (float)"
    ) in result.output
