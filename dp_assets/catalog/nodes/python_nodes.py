"""Node types that run user Python: ``RunPythonScript`` and ``ApplyFunction``.

Both hand the code to the ``sandbox`` resource (``dp_resources.sandbox.SandboxResource``), which
runs it in a locked-down child process with CPU, memory, wall-clock and output limits. A node may
carry its own ``limits``; the deployment decides whether they may exceed its defaults.

``ApplyFunction`` sends the whole frame through one sandbox call: a small driver, appended to
the user's code and restricted like it, maps ``apply`` over the column (``Series.map``) or the
rows (``DataFrame.apply(axis=1)``) inside the child, so a million rows cost one process.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from dp_assets.catalog.base import ONE_INPUT, NodeContext, NodeType, Params, SchemaError
from dp_assets.deferred import pd
from dp_resources.sandbox.api import SandboxError, SandboxLimits, SandboxResult

JsonScalar = str | int | float | bool | None

_APPLY_DRIVER = """

def dp_apply_to_frame(df, column, output_column):
    try:
        function = apply
    except NameError:
        raise ValueError("the code must define `def apply(value)`, or `def apply(row)` when no column is set")
    out = df.copy()
    if column is None:
        if len(df) == 0:
            out[output_column] = pd.Series([], index=df.index, dtype="object")
        else:
            out[output_column] = df.apply(function, axis=1)
    else:
        out[output_column] = df[column].map(function)
    return out
"""


class RunPythonScriptParams(Params):
    code: str = Field(
        min_length=1,
        description="Python run in the sandbox. It sees the input as `df`, the flow's params "
        "plus `variables` as `params`, `pd` and `np`, and must assign a DataFrame to `result`.",
    )
    variables: dict[str, JsonScalar] = Field(
        default_factory=dict,
        description="Extra values the script sees in `params` (over the flow's params).",
    )
    limits: SandboxLimits | None = Field(
        default=None,
        description="This node's sandbox limits instead of the deployment's.",
    )


class ApplyFunctionParams(Params):
    code: str = Field(
        min_length=1,
        description="Python that defines `def apply(value)` (with `column`) or "
        "`def apply(row)` (without), run in the sandbox.",
    )
    column: str | None = Field(
        default=None,
        description="Apply to this column's values (Series.map); when unset, apply to each "
        "row as a Series (DataFrame.apply(axis=1)).",
    )
    output_column: str = Field(min_length=1, description="Column that receives the results.")
    limits: SandboxLimits | None = Field(
        default=None,
        description="This node's sandbox limits instead of the deployment's.",
    )

    @field_validator("column")
    @classmethod
    def _non_empty(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("column must be a column name, or left out to apply to rows")
        return value


def _place(ctx: NodeContext, node_type: str) -> str:
    return f"node '{ctx.node_id}' ({node_type}) of flow '{ctx.flow_id}'"


def _run_sandboxed(
    ctx: NodeContext, node_type: str, code: str, inputs: dict[str, Any], **options: Any
) -> SandboxResult:
    sandbox = ctx.resource("sandbox")
    try:
        outcome: SandboxResult = sandbox.run(code, inputs, **options)
    except SandboxError as exc:
        raise type(exc)(f"{_place(ctx, node_type)}, field 'code': {exc}") from exc
    if outcome.stdout:
        ctx.log.info("%s printed:\n%s", _place(ctx, node_type), outcome.stdout[-10_000:])
    ctx.add_metadata(sandbox_seconds=round(outcome.duration_s, 3))
    return outcome


def run_python_script(ctx: NodeContext, params: RunPythonScriptParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Run a Python script on the input frame in the sandbox; the script sets `result`."""
    script_params = {**dict(ctx.flow_params), **params.variables}
    outcome = _run_sandboxed(
        ctx,
        "RunPythonScript",
        params.code,
        {"df": inputs["input"], "params": script_params},
        mode="script",
        limits=params.limits,
    )
    if isinstance(outcome.value, pd.DataFrame):
        return outcome.value
    raise SandboxError(
        f"{_place(ctx, 'RunPythonScript')}, field 'code': `result` must be a pandas DataFrame, "
        f"got {type(outcome.value).__name__}; end the script with e.g. "
        "`result = series.to_frame()` or `result = pd.DataFrame(...)`"
    )


def apply_function(ctx: NodeContext, params: ApplyFunctionParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Apply a user function to a column's values or to each row, in one sandbox call."""
    frame = inputs["input"]
    if params.column is not None and params.column not in frame.columns:
        raise KeyError(
            f"{_place(ctx, 'ApplyFunction')}, field 'column': column '{params.column}' is not in "
            f"the input (columns: {', '.join(map(str, frame.columns))})"
        )
    outcome = _run_sandboxed(
        ctx,
        "ApplyFunction",
        params.code + _APPLY_DRIVER,
        {"df": frame, "column": params.column, "output_column": params.output_column},
        mode="function",
        function_name="dp_apply_to_frame",
        limits=params.limits,
    )
    return outcome.value


def _apply_function_schema(
    params: ApplyFunctionParams, input_schemas: dict[str, dict[str, str] | None]
) -> dict[str, str] | None:
    schema = input_schemas.get("input")
    if schema is None:
        return None
    if params.column is not None and params.column not in schema:
        raise SchemaError(
            "column",
            f"column '{params.column}' is not in the input (columns: {', '.join(schema)})",
        )
    return {**schema, params.output_column: "any"}


RUN_PYTHON_SCRIPT = NodeType(
    name="RunPythonScript",
    params_model=RunPythonScriptParams,
    run=run_python_script,
    category="transform",
    inputs=ONE_INPUT,
    resources=frozenset({"sandbox"}),
)

APPLY_FUNCTION = NodeType(
    name="ApplyFunction",
    params_model=ApplyFunctionParams,
    run=apply_function,
    category="transform",
    inputs=ONE_INPUT,
    resources=frozenset({"sandbox"}),
    infer_schema=_apply_function_schema,
)

NODE_TYPES = [RUN_PYTHON_SCRIPT, APPLY_FUNCTION]
