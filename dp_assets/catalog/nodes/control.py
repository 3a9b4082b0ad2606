"""Control flow: ``ConditionalBranch`` routes its input to ``true`` or ``false``; ``Merge`` joins paths.

The branch not taken is ``SKIPPED``: the runtime skips every node that depends only on it, and a
``Merge`` (which accepts skipped inputs) takes whichever branch ran. Conditions use the safe
expression language (``dp_assets.expressions``), parsed when the spec loads.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from dp_assets.catalog.base import (
    MANY_INPUTS,
    SKIPPED,
    ColumnSchema,
    NodeContext,
    NodeOutputs,
    NodeType,
    Params,
    SchemaError,
)
from dp_assets.catalog.nodes.transforms_rows import (
    UnionConcatenateParams,
    union_concatenate_schema,
)
from dp_assets.deferred import pd
from dp_assets.expressions import ExpressionError, parse_expression

# --- ConditionalBranch -----------------------------------------------------------------------


class ConditionalBranchParams(Params):
    condition: str = Field(
        min_length=1,
        description="An expression (docs/expressions.md) on flow params (`params.x > 3`) or on the "
        "data's columns (`amount > 100`); null counts as false.",
    )
    rows: Literal["any", "all", "split"] = Field(
        default="any",
        description="For a condition on columns: 'any' / 'all' rows true sends the whole input to "
        "`true` (else `false`); 'split' sends the true rows to `true` and the others to `false`.",
    )

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_expression(value)
        return value


def _where(ctx: NodeContext, err: ExpressionError) -> ExpressionError:
    return ExpressionError(
        f"flow '{ctx.flow_id}', node '{ctx.node_id}', field 'params.condition': {err.message}",
        expression=err.expression,
    )


def conditional_branch(ctx: NodeContext, params: ConditionalBranchParams, inputs: dict[str, Any]) -> NodeOutputs:
    """Route the input to output ``true`` or ``false`` by a condition; the other output is skipped."""
    df: pd.DataFrame = inputs["input"]
    expression = parse_expression(params.condition)
    try:
        if not expression.columns:
            value = expression.evaluate(df, ctx.flow_params)
            if isinstance(value, pd.Series):
                value = bool(value.fillna(False).all()) if len(value) else False
            if value is not None and not isinstance(value, (bool,)) and not hasattr(value, "dtype"):
                raise ExpressionError(
                    f"`{params.condition}` gives {type(value).__name__}, not true/false", expression=params.condition
                )
            decision = bool(value) if value is not None and not pd.isna(value) else False
        else:
            mask = expression.evaluate_mask(df, ctx.flow_params)
            if params.rows == "split":
                ctx.add_metadata(rows_true=int(mask.sum()), rows_false=int((~mask).sum()))
                return NodeOutputs({"true": df[mask], "false": df[~mask]})
            decision = bool(mask.any()) if params.rows == "any" else bool(mask.all())
    except ExpressionError as err:
        raise _where(ctx, err) from err
    ctx.add_metadata(branch="true" if decision else "false")
    ctx.log.info(f"{ctx.node_id}: condition is {decision}; the '{'false' if decision else 'true'}' branch is skipped")
    return NodeOutputs({"true": df if decision else SKIPPED, "false": SKIPPED if decision else df})


def conditional_branch_schema(params: ConditionalBranchParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    if schema is None:
        return None
    try:
        found = parse_expression(params.condition).infer_type(schema)
    except ExpressionError as err:
        raise SchemaError("condition", err.message) from None
    if found not in ("boolean", "any"):
        raise SchemaError("condition", f"the condition `{params.condition}` gives {found} values, not true/false")
    return dict(schema)


# --- Merge -----------------------------------------------------------------------------------


class MergeParams(Params):
    how: Literal["first", "union"] = Field(
        default="first",
        description="'first': the first input that ran (the branch taken); 'union': all inputs that "
        "ran, stacked (pd.concat).",
    )
    join: Literal["outer", "inner"] = Field(
        default="outer",
        description="With how: union — outer: every column (missing ones null); inner: shared columns only.",
    )
    ignore_index: bool = Field(default=True, description="With how: union — number the rows anew.")


def merge(ctx: NodeContext, params: MergeParams, inputs: dict[str, Any]) -> Any:
    """Take whichever input ran (the branch taken), or stack all that ran; skipped if none ran."""
    ran = {name: value for name, value in inputs.items() if value is not SKIPPED}
    ctx.add_metadata(inputs_ran=list(ran))
    if not ran:
        return SKIPPED
    if params.how == "first" or len(ran) == 1:
        return next(iter(ran.values()))
    return pd.concat(list(ran.values()), join=params.join, ignore_index=params.ignore_index)


def merge_schema(params: MergeParams, inputs: dict) -> ColumnSchema | None:
    schemas = list(inputs.values())
    if not schemas or any(s is None for s in schemas):
        return None
    if params.how == "first":
        return schemas[0] if all(s == schemas[0] for s in schemas) else None
    return union_concatenate_schema(UnionConcatenateParams(join=params.join), inputs)


NODE_TYPES = [
    NodeType(
        "ConditionalBranch",
        ConditionalBranchParams,
        conditional_branch,
        "control",
        outputs=("true", "false"),
        infer_schema=conditional_branch_schema,
        expression_params=("condition",),
    ),
    NodeType(
        "Merge", MergeParams, merge, "control", inputs=MANY_INPUTS, accepts_skipped=True, infer_schema=merge_schema
    ),
]
