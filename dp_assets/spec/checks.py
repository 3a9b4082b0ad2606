"""Data checks, automation and pools in a flow spec: the pydantic models and their rules.

``checks:`` on a node lists what its output must satisfy; each entry becomes a Dagster asset
check (``dp_assets.compiler.checks``) with a severity, and ``blocking: true`` stops the nodes
that read it in the same run when it fails with severity ``error``. ``automation:`` (a flow's or
a node's) is a Dagster ``AutomationCondition``; ``pool:`` a Dagster concurrency pool.

Validation (``problems``) names the flow, node and field: unknown columns (when the node's
schema is known before a run), check names that clash, a check on a node that is not stored,
and nodes of one step that want different pools.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from dp_assets.expressions import ExpressionError, parse_expression
from dp_assets.spec.dagster_rules import dagster_accepts_cron

Severity = Literal["warn", "error"]
LogicalType = Literal["integer", "float", "string", "boolean", "datetime", "date", "any"]

#: A Dagster check name (its rule for names: letters, digits and underscores).
CheckName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
#: A Dagster pool name, as ``dagster instance concurrency set`` takes one.
PoolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$", max_length=64)]

#: Check names the platform gives checks it adds itself: declared ``columns:`` and the
#: comparison of a materialisation's columns with the asset's column schema.
CONTRACT_CHECK = "columns_contract"
SCHEMA_CHECK = "column_schema"
#: Dagster's freshness check factory names its check so (one per asset).
FRESHNESS_CHECK = "freshness_check"
CHECK_TYPES = frozenset({"row_count", "not_null", "unique", "accepted_values", "expression", "columns", "freshness"})
RESERVED_CHECK_NAMES = frozenset({CONTRACT_CHECK, SCHEMA_CHECK, FRESHNESS_CHECK})


def _cron(value: str) -> str:
    if not dagster_accepts_cron(value):
        raise ValueError(f"'{value}' is not a valid cron expression (e.g. '0 9 * * *')")
    return value


def _zone(value: str) -> str:
    from dp_assets.timezones import check_timezone  # a set lookup: the name never reaches a file

    return check_timezone(value)


Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, AfterValidator(_zone)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Check(_Strict):
    name: CheckName | None = Field(
        default=None,
        description="The check's name in Dagster (default: the type, then its columns).",
    )
    description: str = ""
    severity: Severity = Field(
        default="error",
        description="'error' or 'warn': how a failure shows in the UI; only an 'error' blocks.",
    )
    blocking: bool = Field(
        default=False,
        description="A failure with severity 'error' stops the nodes that read this one in the "
        "same run (they are skipped and the run fails); the node's own output is still stored.",
    )


class RowCountCheck(_Check):
    """The output has between ``min`` and ``max`` rows (each bound optional, inclusive)."""

    type: Literal["row_count"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _a_bound(self) -> RowCountCheck:
        if self.min is None and self.max is None:
            raise ValueError("a row_count check needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        return self


class NotNullCheck(_Check):
    """No row has a null (None, NaN, NaT) in any of ``columns``."""

    type: Literal["not_null"]
    columns: list[str] = Field(min_length=1)


class UniqueCheck(_Check):
    """Each of ``columns`` has no value twice; the combination of ``key``'s columns is never twice."""

    type: Literal["unique"]
    columns: list[str] = Field(default_factory=list, description="Each column unique on its own.")
    key: list[str] = Field(default_factory=list, description="Columns whose combination is unique.")

    @model_validator(mode="after")
    def _something_unique(self) -> UniqueCheck:
        if not self.columns and not self.key:
            raise ValueError("a unique check needs 'columns' (each unique) or 'key' (unique together)")
        return self


class AcceptedValuesCheck(_Check):
    """Every non-null value of ``column`` is one of ``values`` (nulls: see ``not_null``)."""

    type: Literal["accepted_values"]
    column: str
    values: list[str | int | float | bool] = Field(min_length=1)


class ExpressionCheck(_Check):
    """An expression of the safe expression language (docs/expressions.md) true for every row;
    a row where it is null fails, as FilterRows would drop it."""

    type: Literal["expression"]
    expression: str = Field(min_length=1, description="e.g. amount >= 0 and quantity > 0")

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_expression(value)  # an ExpressionError is a ValueError: pydantic names the field
        return value


class ColumnsCheck(_Check):
    """The output has these columns with these logical types ('any': any type)."""

    type: Literal["columns"]
    columns: dict[str, LogicalType] = Field(min_length=1)
    exact: bool = Field(default=False, description="No other columns either.")


class FreshnessCheck(_Check):
    """The node's asset was materialised recently: within ``max_age_minutes`` of now, or with
    ``cron``, within ``max_age_minutes`` before the cron's latest tick (Dagster's
    ``build_last_update_freshness_checks``; a sensor evaluates it)."""

    type: Literal["freshness"]
    max_age_minutes: int = Field(ge=1, le=60 * 24 * 366)
    cron: Cron | None = Field(default=None, description="A deadline cron, e.g. '0 9 * * *'.")
    timezone: TimeZone = Field(default="UTC", description="IANA time zone of the cron.")
    severity: Severity = "warn"


Check = Annotated[
    RowCountCheck | NotNullCheck | UniqueCheck | AcceptedValuesCheck | ExpressionCheck | ColumnsCheck | FreshnessCheck,
    Field(discriminator="type"),
]


class Automation(_Strict):
    """When Dagster's automation (the daemon's automation condition sensor) materialises the
    node's asset: ``eager`` whenever an upstream is updated (and it is missing), ``on_cron``
    once per cron tick after its upstreams updated, ``on_missing`` once when it was never
    materialised. An alternative to ``triggers`` (docs/flow-spec.md#automation)."""

    condition: Literal["eager", "on_cron", "on_missing"]
    cron: Cron | None = Field(default=None, description="For on_cron: e.g. '0 * * * *'.")
    timezone: TimeZone = Field(default="UTC", description="For on_cron: IANA time zone of the cron.")

    @model_validator(mode="after")
    def _cron_with_on_cron(self) -> Automation:
        if self.condition == "on_cron" and self.cron is None:
            raise ValueError("condition 'on_cron' needs 'cron'")
        if self.condition != "on_cron" and self.cron is not None:
            raise ValueError(f"'cron' belongs to condition 'on_cron', not '{self.condition}'")
        return self


def union_tag_message(tag: Any) -> str:
    """A check's unknown or missing ``type``, with the types there are."""
    kinds = ", ".join(sorted(CHECK_TYPES))
    if tag is None:
        return f"missing 'type': a check is one of {kinds}"
    return f"unknown check type '{tag}'; a check is one of {kinds}"


def _default_name(check: Any) -> str:
    name = "_".join([check.type, *checked_columns(check)])
    return re.sub(r"[^A-Za-z0-9_]", "_", name)[:56]


def check_names(checks: list[Any]) -> list[str]:
    """Each check's name in Dagster: its own, else the type and columns, numbered when the same
    default would appear twice (``expression``, ``expression_2``)."""
    taken = {check.name for check in checks if check.name}
    names = []
    for check in checks:
        if check.name:
            names.append(check.name)
            continue
        if check.type == "freshness":
            names.append(FRESHNESS_CHECK)
            continue
        base = name = _default_name(check)
        number = 1
        while name in taken:
            number += 1
            name = f"{base}_{number}"
        taken.add(name)
        names.append(name)
    return names


def checked_columns(check: Any) -> list[str]:
    """The columns a check reads (an expression's are found when it is inferred)."""
    if check.type == "not_null":
        return list(check.columns)
    if check.type == "unique":
        return [*check.columns, *check.key]
    if check.type == "accepted_values":
        return [check.column]
    return []


def problems(
    flow: Any, schemas: Mapping[str, Any], asset_ids: frozenset[str] | None
) -> Iterator[tuple[str | None, str, str]]:
    """``(node id, field, message)`` for each check, automation or pool a flow cannot have.

    ``schemas``: the nodes' column schemas known before a run (empty when not inferred);
    ``asset_ids``: the nodes that are stored assets (None: not decided, not checked)."""
    for node in flow.nodes:
        checks = node.checks or []
        if checks and asset_ids is not None and node.id not in asset_ids:
            yield node.id, "checks", "checks run on a stored asset; this node is ephemeral or stores nothing"
        yield from _name_problems(node.id, checks)
        schema = schemas.get(node.id)
        for index, check in enumerate(checks):
            yield from _column_problems(node.id, f"checks[{index}]", check, schema)
        if node.automation is not None and asset_ids is not None and node.id not in asset_ids:
            yield node.id, "automation", "automation materialises an asset; this node is no stored asset"
    yield from _pool_problems(flow)


def _name_problems(node_id: str, checks: list[Any]) -> Iterator[tuple[str, str, str]]:
    seen: dict[str, int] = {}
    freshness = [index for index, check in enumerate(checks) if check.type == "freshness"]
    for index in freshness[1:]:
        yield node_id, f"checks[{index}]", "one freshness check per node (Dagster keeps one per asset)"
    for index, (check, name) in enumerate(zip(checks, check_names(checks), strict=True)):
        if check.type != "freshness" and name in RESERVED_CHECK_NAMES:
            yield node_id, f"checks[{index}].name", f"'{name}' is the name of a check the platform adds itself"
        elif name in seen and check.type != "freshness":
            yield node_id, f"checks[{index}].name", f"another check of this node (checks[{seen[name]}]) is '{name}'"
        seen.setdefault(name, index)


def _column_problems(
    node_id: str, field: str, check: Any, schema: Mapping[str, str] | None
) -> Iterator[tuple[str, str, str]]:
    if not schema:
        return
    for column in checked_columns(check):
        if column not in schema:
            yield node_id, field, f"column '{column}' is not in the node's output (it has: {', '.join(schema)})"
    if check.type == "expression":
        try:
            found = parse_expression(check.expression).infer_type(dict(schema))
        except ExpressionError as err:
            yield node_id, f"{field}.expression", err.message
            return
        if found not in ("boolean", "any"):
            yield node_id, f"{field}.expression", f"`{check.expression}` gives {found} values, not true/false"


def _pool_problems(flow: Any) -> Iterator[tuple[str | None, str, str]]:
    """With ``policies.steps: flow`` the flow is one Dagster step, and a step is in one pool."""
    if flow.policies.steps != "flow":
        return
    named = {node.id: node.pool for node in flow.nodes if node.pool is not None}
    if flow.pool is not None and named:
        named = {"(the flow)": flow.pool, **named}
    if len(set(named.values())) > 1:
        listed = ", ".join(f"{where} {pool}" for where, pool in named.items())
        yield (
            None,
            "pool",
            f"the flow runs as one Dagster step, which takes one pool, and pools differ ({listed}); "
            "set policies.steps: node, or use one pool",
        )


def step_pool(flow_pool: str | None, node_pools: frozenset[str | None]) -> str | None:
    """The pool of a step holding nodes with ``node_pools``: a node's own, else the flow's."""
    named = {pool for pool in node_pools if pool is not None}
    return next(iter(named)) if len(named) == 1 else flow_pool
