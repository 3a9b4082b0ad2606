"""FilterRows and AddModifyColumn against plain pandas, their params validation and schema hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pydantic
import pytest

from dp_assets.catalog.base import NodeContext, SchemaError
from dp_assets.catalog.nodes.control import ConditionalBranchParams, conditional_branch
from dp_assets.catalog.nodes.expression_nodes import (
    NODE_TYPES,
    AddModifyColumnParams,
    FilterRowsParams,
    add_modify_column,
    add_modify_column_schema,
    filter_rows,
    filter_rows_schema,
)
from dp_assets.expressions import ExpressionError

FLOW_PARAMS = {"min_amount": 10, "regions": ["EU", "APAC"], "since": "2024-02-01"}
SCHEMA = {
    "order_id": "integer",
    "region": "string",
    "amount": "float",
    "qty": "integer",
    "ordered_at": "datetime",
    "note": "string",
}


def orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [1, 2, 3, 4, 5],
            "region": ["EU", "US", None, "APAC", "eu"],
            "amount": [12.5, None, 8.0, 100.0, 10.0],
            "qty": pd.Series([1, 2, None, 4, 1], dtype="Int64"),
            "ordered_at": pd.to_datetime(
                [
                    "2024-01-15 08:00",
                    "2024-02-01 00:30",
                    None,
                    "2024-03-01 12:00",
                    "2024-02-29 23:59",
                ]
            ).tz_localize("Asia/Seoul"),
            "note": ["rush", "", None, "gift wrap", "rush"],
        },
        index=[10, 11, 12, 13, 14],
    )


def context() -> NodeContext:
    return NodeContext(flow_id="sales", node_id="big_orders", run_id="r1", flow_params=FLOW_PARAMS, resources={})


def _frames() -> list[Any]:
    return [pytest.param(False, id="rows"), pytest.param(True, id="empty")]


FILTERS: dict[str, tuple[str, Callable[[pd.DataFrame, dict], pd.Series]]] = {
    "threshold-param": ("amount >= params.min_amount", lambda d, p: d.amount >= p["min_amount"]),
    "nullable-int": ("qty > 1", lambda d, p: (d.qty > 1).fillna(False).astype(bool)),
    "in-param": (
        "upper(region) in params.regions",
        lambda d, p: d.region.str.upper().isin(p["regions"]),
    ),
    "null-test": (
        "is_null(amount) or note == 'rush'",
        lambda d, p: d.amount.isna() | (d.note == "rush"),
    ),
    "tz-aware-vs-text": ("ordered_at >= params.since", lambda d, p: d.ordered_at >= p["since"]),
    "tz-aware-vs-aware": (
        "ordered_at < to_datetime('2024-02-01T00:00:00+00:00')",
        lambda d, p: d.ordered_at < pd.Timestamp("2024-02-01T00:00:00+00:00"),
    ),
    "local-date": ("month(ordered_at) == 2", lambda d, p: d.ordered_at.dt.month == 2),
    "constant": ("True", lambda d, p: pd.Series(True, index=d.index)),
}


@pytest.mark.parametrize("empty", _frames())
@pytest.mark.parametrize(("condition", "by_hand"), list(FILTERS.values()), ids=list(FILTERS))
def test_filter_rows_matches_pandas(condition: str, by_hand: Callable[..., pd.Series], empty: bool) -> None:
    df = orders().iloc[0:0] if empty else orders()
    ctx = context()
    result = filter_rows(ctx, FilterRowsParams(condition=condition), {"input": df})
    pd.testing.assert_frame_equal(result, df[by_hand(df, FLOW_PARAMS)])
    assert ctx.metadata == {"rows_in": len(df), "rows_kept": len(result)}


COLUMNS: dict[str, tuple[str, str, Callable[[pd.DataFrame, dict], pd.DataFrame]]] = {
    "new-arith": ("total", "amount * qty", lambda d, p: d.assign(total=d.amount * d.qty)),
    "replace-existing": (
        "region",
        "coalesce(upper(region), 'UNKNOWN')",
        lambda d, p: d.assign(region=d.region.str.upper().fillna("UNKNOWN")),
    ),
    "ternary": (
        "size",
        "'big' if amount > params.min_amount else 'small'",
        lambda d, p: d.assign(size=pd.Series("big", index=d.index).where(d.amount > p["min_amount"], "small")),
    ),
    "scalar-broadcast": ("batch", "params.min_amount * 2", lambda d, p: d.assign(batch=20)),
    "space-in-name": (
        "order day",
        "date(ordered_at)",
        lambda d, p: d.assign(**{"order day": d.ordered_at.dt.date}),
    ),
    "text": (
        "label",
        "concat(region, '#', order_id)",
        lambda d, p: d.assign(label=d.region + "#" + d.order_id.astype("str")),
    ),
}


@pytest.mark.parametrize("empty", _frames())
@pytest.mark.parametrize(("column", "expression", "by_hand"), list(COLUMNS.values()), ids=list(COLUMNS))
def test_add_modify_column_matches_pandas(
    column: str, expression: str, by_hand: Callable[..., pd.DataFrame], empty: bool
) -> None:
    df = orders().iloc[0:0] if empty else orders()
    params = AddModifyColumnParams(column=column, expression=expression)
    result = add_modify_column(context(), params, {"input": df})
    pd.testing.assert_frame_equal(result, by_hand(df, FLOW_PARAMS))


def test_duplicate_index_labels() -> None:
    df = pd.DataFrame({"a": [1, 2, 3]}, index=[0, 0, 1])
    kept = filter_rows(context(), FilterRowsParams(condition="a > 1"), {"input": df})
    pd.testing.assert_frame_equal(kept, df[df.a > 1])
    params = AddModifyColumnParams(column="b", expression="a * 2")
    added = add_modify_column(context(), params, {"input": df})
    pd.testing.assert_frame_equal(added, df.assign(b=df.a * 2))


def test_nodes_do_not_modify_their_input() -> None:
    df = orders()
    before = df.copy()
    add_modify_column(context(), AddModifyColumnParams(column="amount", expression="0"), {"input": df})
    filter_rows(context(), FilterRowsParams(condition="amount > 0"), {"input": df})
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize(
    ("model", "values", "field", "text"),
    [
        pytest.param(
            FilterRowsParams,
            {"condition": "__import__('os')"},
            "condition",
            "name `__import__` is not allowed",
            id="X1-filter-dunder",
        ),
        pytest.param(
            FilterRowsParams,
            {"condition": "amount >"},
            "condition",
            "invalid expression: invalid syntax: `amount >`",
            id="filter-syntax",
        ),
        pytest.param(
            FilterRowsParams,
            {"condition": ""},
            "condition",
            "at least 1 character",
            id="filter-empty",
        ),
        pytest.param(
            FilterRowsParams,
            {"condition": "a", "where": "b"},
            "where",
            "Extra inputs are not permitted",
            id="filter-extra-key",
        ),
        pytest.param(
            AddModifyColumnParams,
            {"column": "x", "expression": "open('f')"},
            "expression",
            "unknown function `open`",
            id="X1-add-unknown-function",
        ),
        pytest.param(
            AddModifyColumnParams,
            {"column": "", "expression": "1"},
            "column",
            "at least 1 character",
            id="add-empty-column",
        ),
    ],
)
def test_params_refuse_bad_expressions_at_load(model: type, values: dict, field: str, text: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        model(**values)
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert text in error["msg"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param(FilterRowsParams(condition="amount > 1"), SCHEMA, id="filter-keeps-schema"),
        pytest.param(
            AddModifyColumnParams(column="total", expression="amount * qty"),
            {**SCHEMA, "total": "float"},
            id="add-new-column",
        ),
        pytest.param(
            AddModifyColumnParams(column="qty", expression="str(qty)"),
            {**SCHEMA, "qty": "string"},
            id="replace-keeps-position",
        ),
        pytest.param(
            AddModifyColumnParams(column="day", expression="date(ordered_at)"),
            {**SCHEMA, "day": "date"},
            id="add-date",
        ),
    ],
)
def test_schema_hooks(params: Any, expected: dict[str, str]) -> None:
    hook = filter_rows_schema if isinstance(params, FilterRowsParams) else add_modify_column_schema
    result = hook(params, {"input": dict(SCHEMA)})
    assert result == expected
    assert list(result) == list(expected)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        pytest.param(
            FilterRowsParams(condition="amount > 1 and regoin == 'EU'"),
            "condition",
            "unknown column `regoin` (columns: order_id, region, amount, qty, ordered_at, note); "
            "did you mean `region`?",
            id="filter-missing-column",
        ),
        pytest.param(
            FilterRowsParams(condition="amount * 2"),
            "condition",
            "the condition `amount * 2` gives float values, not true/false; "
            "compare it with something (for example `x > 0` or not_null(x))",
            id="filter-not-boolean",
        ),
        pytest.param(
            AddModifyColumnParams(column="x", expression="lower(amount)"),
            "expression",
            "lower() needs text for text, but `amount` is float; usage: lower(text)",
            id="add-type-mismatch",
        ),
        pytest.param(
            AddModifyColumnParams(column="x", expression="col('unit price') * qty"),
            "expression",
            "unknown column `unit price` (columns: order_id, region, amount, qty, ordered_at, note)",
            id="add-missing-column",
        ),
    ],
)
def test_schema_hooks_name_the_field(params: Any, field: str, message: str) -> None:
    hook = filter_rows_schema if isinstance(params, FilterRowsParams) else add_modify_column_schema
    with pytest.raises(SchemaError) as caught:
        hook(params, {"input": dict(SCHEMA)})
    assert caught.value.field == field
    assert caught.value.message == message


def test_schema_hooks_with_unknown_input_schema() -> None:
    assert filter_rows_schema(FilterRowsParams(condition="x > 1"), {"input": None}) is None
    assert add_modify_column_schema(AddModifyColumnParams(column="y", expression="x"), {"input": None}) is None


@pytest.mark.parametrize(
    ("run", "params", "message"),
    [
        pytest.param(
            filter_rows,
            FilterRowsParams(condition="missing > 1"),
            "flow 'sales', node 'big_orders', field 'params.condition': unknown column `missing`",
            id="filter",
        ),
        pytest.param(
            filter_rows,
            FilterRowsParams(condition="amount + 1"),
            "flow 'sales', node 'big_orders', field 'params.condition': `amount + 1` must be true/false",
            id="filter-not-boolean",
        ),
        pytest.param(
            filter_rows,
            FilterRowsParams(condition="ordered_at >= to_datetime(params.since)"),
            "flow 'sales', node 'big_orders', field 'params.condition': cannot evaluate "
            "`ordered_at >= to_datetime(params.since)`: Invalid comparison between "
            "dtype=datetime64[us, Asia/Seoul] and Timestamp (time zones differ",
            id="filter-tz-mismatch",
        ),
        pytest.param(
            add_modify_column,
            AddModifyColumnParams(column="x", expression="amount > params.nope"),
            "flow 'sales', node 'big_orders', field 'params.expression': flow param `nope` is not set",
            id="add",
        ),
        pytest.param(
            conditional_branch,
            ConditionalBranchParams(condition="missing > 1"),
            "flow 'sales', node 'big_orders', field 'params.condition': unknown column `missing`",
            id="branch",
        ),
    ],
)
def test_run_errors_name_flow_node_and_field(run: Callable, params: Any, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        run(context(), params, {"input": orders()})
    assert caught.value.message.startswith(message)


def test_every_node_type_has_cases() -> None:
    """Completeness: each node type exported here is covered by the tables above."""
    assert {node_type.name for node_type in NODE_TYPES} == {"FilterRows", "AddModifyColumn"}
    for node_type in NODE_TYPES:
        assert node_type.infer_schema is not None
        assert node_type.description
