"""A node's checks as Dagster asset checks, evaluated on the value the node made.

Three kinds, all on the node's asset: the declared ``columns:`` (``columns_contract``), each
entry of ``checks:`` (dp_assets/spec/checks.py), and ``column_schema``, which compares the
materialisation's columns with the column schema on the asset's ``AssetSpec`` and flags a change.
They run in the flow's step right after the node (no second read of the data). A freshness
check is Dagster's own (``build_last_update_freshness_checks``), evaluated by a sensor.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from dp_assets.catalog.schema import logical_type, schema_of
from dp_assets.deferred import pd
from dp_assets.expressions import ExpressionError, parse_expression
from dp_assets.spec.checks import CONTRACT_CHECK, SCHEMA_CHECK, check_names, checked_columns
from dp_assets.spec.model import ColumnContract

#: Where the column schema sits in an ``AssetSpec``'s metadata (the catalog shows it).
COLUMN_SCHEMA_KEY = "dagster/column_schema"
#: On a materialisation whose columns differ from its asset's column schema: what changed.
SCHEMA_CHANGE_KEY = "dp/schema_change"
#: How many offending values a failed check lists in its metadata.
SHOWN_VALUES = 5
#: Rows of a DuckDB node's Arrow output converted to compare its columns' types with the schema.
SAMPLE_ROWS = 5

SEVERITY = {"warn": dg.AssetCheckSeverity.WARN, "error": dg.AssetCheckSeverity.ERROR}


def check_spec(
    key: dg.AssetKey, columns: list[ColumnContract], partitions_def: dg.PartitionsDefinition | None = None
) -> dg.AssetCheckSpec:
    names = ", ".join(c.name for c in columns)
    return _spec(CONTRACT_CHECK, key, f"Declared columns: {names}", partitions_def)


def _spec(
    name: str,
    key: dg.AssetKey,
    description: str,
    partitions_def: dg.PartitionsDefinition | None,
    blocking: bool = False,
) -> dg.AssetCheckSpec:
    """A check of the node's asset; on a partitioned flow, per partition (the asset's own
    partitions: a run's evaluation is recorded against the partition it materialised)."""
    if partitions_def is None:
        return dg.AssetCheckSpec(name, asset=key, description=description, blocking=blocking)
    with warnings.catch_warnings():  # Dagster 1.13 marks a check's partitions_def "preview"
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=key, description=description, blocking=blocking, partitions_def=partitions_def
        )


def step_checks(node: Any) -> list[tuple[Any, str]]:
    """The node's declared checks its step evaluates, with their names (freshness is Dagster's
    sensor's, not the step's)."""
    named = zip(node.checks, check_names(list(node.checks)), strict=True)
    return [(check, name) for check, name in named if check.type != "freshness"]


def reads_every_row(node: Any) -> bool:
    """Whether the node's step checks rules over every row of its output (declared columns or a
    declared check other than freshness), rather than only the columns of a sample."""
    return bool(node.columns) or bool(step_checks(node))


def node_check_specs(
    key: dg.AssetKey, node: Any, has_schema: bool, partitions_def: dg.PartitionsDefinition | None = None
) -> list[dg.AssetCheckSpec]:
    """Every asset check the node's step evaluates: contract, declared checks, schema change."""
    specs = [check_spec(key, list(node.columns), partitions_def)] if node.columns else []
    for check, name in step_checks(node):
        description = check.description or _describe(check)
        specs.append(_spec(name, key, description, partitions_def, blocking=check.blocking))
    if has_schema:
        description = "The materialisation has the columns and types of the asset's column schema."
        specs.append(_spec(SCHEMA_CHECK, key, description, partitions_def))
    return specs


def per_partition(context: dg.AssetExecutionContext, results: list[dg.AssetCheckResult]) -> list[Any]:
    """A run over a range of partitions checks the range's one output: its result is recorded for
    every partition of the range, as Dagster planned them (it records an ``AssetCheckResult``
    of such a run against no partition, leaving each partition's planned check pending)."""
    if not results or context.has_partition_key or not context.has_partition_key_range:
        return results
    specs = {spec.key: spec for spec in context.assets_def.check_specs}
    evaluations = []
    for result in results:
        assert result.asset_key is not None and result.check_name is not None  # node_results names both
        blocking = specs[dg.AssetCheckKey(result.asset_key, result.check_name)].blocking
        evaluations += [
            dg.AssetCheckEvaluation(
                asset_key=result.asset_key,
                check_name=result.check_name,
                passed=result.passed,
                metadata=result.metadata,
                severity=result.severity,
                description=result.description,
                blocking=blocking,
                partition=key,
            )
            for key in context.partition_keys
        ]
    return evaluations


def _describe(check: Any) -> str:
    if check.type == "row_count":
        low = "" if check.min is None else f"at least {check.min}"
        high = "" if check.max is None else f"at most {check.max}"
        return f"Row count {' and '.join(part for part in (low, high) if part)}."
    if check.type == "not_null":
        return f"No nulls in {', '.join(check.columns)}."
    if check.type == "unique":
        parts = [f"{c} unique" for c in check.columns]
        if check.key:
            parts.append(f"({', '.join(check.key)}) unique together")
        return "; ".join(parts) + "."
    if check.type == "accepted_values":
        return f"{check.column} is one of {', '.join(map(str, check.values))}."
    if check.type == "expression":
        return f"Every row: {check.expression}"
    if check.type == "columns":
        columns = ", ".join(f"{name}: {kind}" for name, kind in check.columns.items())
        return f"Columns {columns}{' and no others' if check.exact else ''}."
    return check.type


# --- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A check evaluated: the problems found (none: passed) and the metadata it shows."""

    problems: list[str]
    metadata: dict[str, Any]


def column_problems(value: Any, columns: list[ColumnContract]) -> list[str]:
    if not isinstance(value, pd.DataFrame):
        return [f"expected a DataFrame, got {type(value).__name__}"]
    problems = []
    for column in columns:
        if column.name not in value.columns:
            problems.append(f"column '{column.name}' is missing")
            continue
        series = value[column.name]
        actual = logical_type(series.dtype)
        if not _type_fits(actual, column.type):
            problems.append(f"column '{column.name}' is {actual}, declared {column.type}")
        if not column.nullable and series.isna().any():
            problems.append(f"column '{column.name}' has {int(series.isna().sum())} null(s)")
        if column.unique and series.duplicated().any():
            problems.append(f"column '{column.name}' has {int(series.duplicated().sum())} duplicate(s)")
    return problems


def _type_fits(actual: str, expected: str) -> bool:
    """Whether a column of logical type ``actual`` is what ``expected`` says: 'any' on either
    side fits, and whole numbers fit 'float'."""
    return expected == "any" or actual in ("any", expected) or (actual == "integer" and expected == "float")


def check_result(key: dg.AssetKey, value: Any, columns: list[ColumnContract]) -> dg.AssetCheckResult:
    problems = column_problems(value, columns)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=CONTRACT_CHECK,
        passed=not problems,
        metadata={"problems": _listed(problems)},
    )


def evaluate(check: Any, frame: Any, params: Mapping[str, Any]) -> Outcome:
    """One declared check on the node's output (a DataFrame); a check that cannot be evaluated
    (a column missing at run time, an expression that fails) fails, saying why."""
    if not isinstance(frame, pd.DataFrame):
        return Outcome([f"expected a table, got {type(frame).__name__}"], {})
    missing = [c for c in checked_columns(check) if c not in frame.columns]
    if missing:
        return Outcome([f"column '{c}' is missing" for c in missing], {})
    return _EVALUATORS[check.type](check, frame, params)


def _row_count(check: Any, frame: pd.DataFrame, params: Mapping[str, Any]) -> Outcome:
    rows = len(frame)
    problems = []
    if check.min is not None and rows < check.min:
        problems.append(f"{rows} row(s), fewer than {check.min}")
    if check.max is not None and rows > check.max:
        problems.append(f"{rows} row(s), more than {check.max}")
    return Outcome(problems, {"dagster/row_count": rows})


def _not_null(check: Any, frame: pd.DataFrame, params: Mapping[str, Any]) -> Outcome:
    nulls = {column: int(frame[column].isna().sum()) for column in check.columns}
    problems = [f"column '{column}' has {count} null(s)" for column, count in nulls.items() if count]
    failing = int(frame[list(check.columns)].isna().any(axis=1).sum())
    return Outcome(problems, {"failing_rows": failing})


def _unique(check: Any, frame: pd.DataFrame, params: Mapping[str, Any]) -> Outcome:
    """A null is no value: it never counts as a duplicate (``not_null`` checks nulls)."""
    problems = []
    failing = 0
    for column in check.columns:
        values = frame[column].dropna()
        repeated = values[values.duplicated()]
        if len(repeated):
            failing += len(repeated)
            problems.append(f"column '{column}' has {len(repeated)} duplicate(s), e.g. {_shown(repeated.unique())}")
    if check.key:
        rows = frame[list(check.key)].dropna()
        repeated = rows[rows.duplicated()]
        if len(repeated):
            failing += len(repeated)
            example = ", ".join(f"{k}={v!r}" for k, v in repeated.iloc[0].items())
            problems.append(f"key ({', '.join(check.key)}) has {len(repeated)} duplicate(s), e.g. ({example})")
    return Outcome(problems, {"failing_rows": failing})


def _accepted_values(check: Any, frame: pd.DataFrame, params: Mapping[str, Any]) -> Outcome:
    values = frame[check.column].dropna()
    unexpected = values[~values.isin(check.values)]
    problems = []
    if len(unexpected):
        problems.append(
            f"column '{check.column}' has {len(unexpected)} value(s) not accepted, e.g. {_shown(unexpected.unique())}"
        )
    return Outcome(problems, {"failing_rows": len(unexpected)})


def _expression(check: Any, frame: pd.DataFrame, params: Mapping[str, Any]) -> Outcome:
    """A row where the expression is null does not hold (as FilterRows would drop it)."""
    try:
        mask = parse_expression(check.expression).evaluate_mask(frame, params)
    except ExpressionError as err:
        return Outcome([f"the expression could not be evaluated: {err.message}"], {})
    failing = int((~mask).sum())
    problems = []
    if failing:
        first = frame.index[~mask][0]
        problems.append(f"{failing} row(s) where `{check.expression}` does not hold, e.g. row {first!r}")
    return Outcome(problems, {"failing_rows": failing})


def _columns(check: Any, frame: pd.DataFrame, params: Mapping[str, Any]) -> Outcome:
    problems = []
    for name, expected in check.columns.items():
        if name not in frame.columns:
            problems.append(f"column '{name}' is missing")
        elif not _type_fits(actual := logical_type(frame[name].dtype), expected):
            problems.append(f"column '{name}' is {actual}, expected {expected}")
    if check.exact:
        problems.extend(f"column '{name}' is not expected" for name in frame.columns if name not in check.columns)
    return Outcome(problems, {})


_EVALUATORS: dict[str, Callable[[Any, pd.DataFrame, Mapping[str, Any]], Outcome]] = {
    "row_count": _row_count,
    "not_null": _not_null,
    "unique": _unique,
    "accepted_values": _accepted_values,
    "expression": _expression,
    "columns": _columns,
}


def schema_sample(value: Any) -> Any:
    """A few rows of ``value`` with its columns and types, without converting or reading all of
    it (all the schema check needs): a DuckDB node's Arrow table, a stream's first part, a frame
    as it is."""
    from dp_assets.catalog.base import FrameStream
    from dp_io.formats import is_arrow_table

    if isinstance(value, FrameStream):
        return value.peek()
    if is_arrow_table(value):
        return value.slice(0, SAMPLE_ROWS).to_pandas()
    return value


def schema_changes(frame: Any, schema: dg.TableSchema) -> list[str]:
    """How the frame's columns differ from the asset's column schema: columns gone, new, retyped."""
    if not isinstance(frame, pd.DataFrame):
        return []
    expected = {column.name: column.type for column in schema.columns}
    actual = schema_of(frame)
    changes = [f"column '{name}' is gone" for name in expected if name not in actual]
    changes += [f"column '{name}' is new ({kind})" for name, kind in actual.items() if name not in expected]
    changes += [
        f"column '{name}' is {actual[name]}, the schema says {kind}"
        for name, kind in expected.items()
        if name in actual and not _type_fits(actual[name], kind)
    ]
    return changes


@dataclass(frozen=True)
class NodeResults:
    """A node's check results, and the names of its blocking checks that failed with severity error."""

    results: list[dg.AssetCheckResult]
    blocked_by: list[str]


def node_results(
    key: dg.AssetKey, node: Any, frame: Any, params: Mapping[str, Any], schema: dg.TableSchema | None
) -> NodeResults:
    if isinstance(frame, Mapping):  # one record (a tool's answer): a table of one row
        frame = pd.DataFrame([dict(frame)])
    results = [check_result(key, frame, list(node.columns))] if node.columns else []
    blocked_by = []
    for check, name in step_checks(node):
        outcome = evaluate(check, frame, params)
        results.append(
            dg.AssetCheckResult(
                asset_key=key,
                check_name=name,
                passed=not outcome.problems,
                severity=SEVERITY[check.severity],
                description=outcome.problems[0] if outcome.problems else None,
                metadata={**outcome.metadata, "problems": _listed(outcome.problems)},
            )
        )
        if outcome.problems and check.blocking and check.severity == "error":
            blocked_by.append(name)
    if schema is not None:
        changes = schema_changes(frame, schema)
        results.append(
            dg.AssetCheckResult(
                asset_key=key,
                check_name=SCHEMA_CHECK,
                passed=not changes,
                severity=dg.AssetCheckSeverity.WARN,
                description=changes[0] if changes else None,
                metadata={"changes": _listed(changes)},
            )
        )
    return NodeResults(results, blocked_by)


def _listed(problems: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none")


def _shown(values: Any) -> str:
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in list(values)[:SHOWN_VALUES])
    return shown + (", ..." if len(values) > SHOWN_VALUES else "")


# --- freshness -----------------------------------------------------------------------------


def freshness_checks(
    flow: Any, key_of: Callable[[str], dg.AssetKey], asset_ids: frozenset[str]
) -> list[dg.AssetChecksDefinition]:
    """The flow's freshness checks: Dagster's, one per node that declares one."""
    wanted = [
        (node.id, check)
        for node in flow.nodes
        for check in node.checks
        if check.type == "freshness" and node.id in asset_ids
    ]
    # Dagster marks these factories "superseded" by FreshnessPolicy, which is no asset check and
    # has no severity; a spec's freshness is a check (issue 21), so the factories it is.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is superseded and its usage is discouraged")
        return [
            definition
            for node_id, check in wanted
            for definition in dg.build_last_update_freshness_checks(
                assets=[key_of(node_id)],
                lower_bound_delta=dt.timedelta(minutes=check.max_age_minutes),
                deadline_cron=check.cron,
                timezone=check.timezone,
                severity=SEVERITY[check.severity],
            )
        ]


def freshness_sensor(checks: list[dg.AssetChecksDefinition], name: str) -> dg.SensorDefinition:
    """The sensor that evaluates freshness ``checks`` when they could have changed, running by
    default. A code location has one for every flow (``dp_freshness_sensor``): a sensor per flow
    cost each flow's load a definition and a snapshot of its own."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is superseded and its usage is discouraged")
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks, name=name, default_status=dg.DefaultSensorStatus.RUNNING
        )
