"""Node types built on the safe expression language: FilterRows and AddModifyColumn.

Conditions and column expressions are parsed when the spec loads (a pydantic validator), so a
refused or malformed expression fails ``dp validate`` with the field's name; the schema hooks
then check the referenced columns and the result type against the upstream schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from dp_assets.catalog.base import ColumnSchema, NodeContext, NodeType, Params, SchemaError
from dp_assets.deferred import pd
from dp_assets.expressions import Expression, ExpressionError, parse_expression

_EXPRESSION_HELP = "An expression (see docs/expressions.md), e.g. amount > 100 and region == 'EU'."


def _checked(value: str) -> str:
    parse_expression(value)  # raises ExpressionError, a ValueError: pydantic names the field
    return value


def _in_node(ctx: NodeContext, field: str, err: ExpressionError) -> ExpressionError:
    """The same error with the flow, node and field in front, for the run's failure message."""
    return ExpressionError(
        f"flow '{ctx.flow_id}', node '{ctx.node_id}', field '{field}': {err.message}",
        expression=err.expression,
    )


def _infer(expression: Expression, schema: ColumnSchema, field: str) -> str:
    try:
        return expression.infer_type(schema)
    except ExpressionError as err:
        raise SchemaError(field, err.message) from None


# --- FilterRows ------------------------------------------------------------------------------


class FilterRowsParams(Params):
    condition: str = Field(
        min_length=1,
        description="Keep the rows where this is true; rows where it is null are dropped. " + _EXPRESSION_HELP,
    )

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str) -> str:
        return _checked(value)


def filter_rows(ctx: NodeContext, params: FilterRowsParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Keep the rows where ``condition`` is true (``df[mask]``); null counts as false."""
    df = inputs["input"]
    try:
        mask = parse_expression(params.condition).evaluate_mask(df, ctx.flow_params)
    except ExpressionError as err:
        raise _in_node(ctx, "params.condition", err) from err
    result = df[mask]
    ctx.add_metadata(rows_in=len(df), rows_kept=len(result))
    return result


def filter_rows_schema(params: FilterRowsParams, inputs: dict[str, ColumnSchema | None]) -> ColumnSchema | None:
    schema = inputs.get("input")
    if schema is None:
        return None
    found = _infer(parse_expression(params.condition), schema, "condition")
    if found not in ("boolean", "any"):
        raise SchemaError(
            "condition",
            f"the condition `{params.condition}` gives {found} values, not true/false; "
            "compare it with something (for example `x > 0` or not_null(x))",
        )
    return dict(schema)


# --- AddModifyColumn -------------------------------------------------------------------------


class AddModifyColumnParams(Params):
    column: str = Field(min_length=1, description="The column to add, or to replace if it exists.")
    expression: str = Field(min_length=1, description="Its value for each row. " + _EXPRESSION_HELP)

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        return _checked(value)


def add_modify_column(ctx: NodeContext, params: AddModifyColumnParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Add a column computed from ``expression``, or replace it (``df.assign(column=...)``)."""
    df = inputs["input"]
    try:
        value = parse_expression(params.expression).evaluate(df, ctx.flow_params)
    except ExpressionError as err:
        raise _in_node(ctx, "params.expression", err) from err
    ctx.add_metadata(column=params.column, replaced=params.column in df.columns)
    return df.assign(**{params.column: value})


def add_modify_column_schema(
    params: AddModifyColumnParams, inputs: dict[str, ColumnSchema | None]
) -> ColumnSchema | None:
    schema = inputs.get("input")
    if schema is None:
        return None
    found = _infer(parse_expression(params.expression), schema, "expression")
    return {**schema, params.column: found}


NODE_TYPES = [
    NodeType(
        "FilterRows",
        FilterRowsParams,
        filter_rows,
        "transform",
        infer_schema=filter_rows_schema,
        expression_params=("condition",),
    ),
    NodeType(
        "AddModifyColumn",
        AddModifyColumnParams,
        add_modify_column,
        "transform",
        infer_schema=add_modify_column_schema,
        expression_params=("expression",),
    ),
]
