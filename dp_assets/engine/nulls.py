"""Integer and boolean columns that may hold a missing value: pandas decides their dtype per node.

pandas computes each node on its own: an integer column that holds a missing value there is
float64 (NaN) from then on, even after a later ``FilterRows`` drops that row, and a boolean
column with a missing value is ``object``. DuckDB's types do not depend on the rows, so a chain
run as one query would keep an integer that pandas turned into float64 (the parity break that
``tests/nodes/test_engine_parity_properties.py`` now covers). The engine therefore tracks, per
node, the integer and boolean columns it knows hold no missing value (``nonnull_after``); a
node read by another engine node while one of its columns is unknown is computed first and
settled as pandas would (``settle``): integers with a missing value become float64; a boolean
with one makes the reader run in pandas (``NotSupported``), where the column is ``object``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dp_assets.catalog.schema import as_list

from .errors import NotSupported
from .relation import Relation

NULLABLE_BY_PANDAS = ("int", "bool")  # kinds whose pandas dtype changes when a value is missing

# nodes whose output columns are input columns, row for row or a subset of the rows (a cast's
# integer or boolean column comes from an integer or boolean one, missing where it was: forms_types.py)
_ROWS_OF_INPUT = {
    "FilterRows",
    "SelectColumns",
    "SortData",
    "Limit",
    "Deduplicate",
    "HandleMissingValues",
    "ChangeDataType",
    "SampleRows",
}


def watched(relation: Relation) -> set[str]:
    """The output's integer and boolean columns."""
    return {name for name, kind in relation.kinds.items() if kind in NULLABLE_BY_PANDAS}


def settle(table: Any) -> tuple[Any, frozenset[str]]:
    """``table`` with pandas' dtype for each integer column that holds a missing value
    (float64), and the integer and boolean columns then known to hold none."""
    import pyarrow as pa

    nonnull: set[str] = set()
    for index, field in enumerate(table.schema):
        missing = table.column(index).null_count
        if pa.types.is_integer(field.type) and missing:
            table = table.set_column(index, field.name, table.column(index).cast(pa.float64()))
        elif pa.types.is_integer(field.type) or (pa.types.is_boolean(field.type) and not missing):
            nonnull.add(field.name)
    return table, frozenset(nonnull)


def check_settled(relation: Relation, nonnull: frozenset[str]) -> None:
    """Refuse an input whose boolean column holds a missing value (pandas' ``object``)."""
    unknown = watched(relation) - nonnull
    if unknown:
        raise NotSupported(f"columns {sorted(unknown)} hold missing true/false values (pandas: object)")


def nonnull_after(
    type_name: str, params: Any, inputs: Mapping[str, tuple[Relation, frozenset[str]]], output: Relation
) -> frozenset[str]:
    """The output's integer and boolean columns that hold no missing value whatever the rows,
    given the same for each input (anything not proven stays unknown: the reader settles it)."""
    known = _known(type_name, params, inputs)
    return frozenset(known & watched(output))


def _known(type_name: str, params: Any, inputs: Mapping[str, tuple[Relation, frozenset[str]]]) -> set[str]:
    sides = list(inputs.values())
    if type_name in _ROWS_OF_INPUT:
        return set(sides[0][1])
    if type_name == "RenameColumns":
        return {params.columns.get(name, name) for name in sides[0][1]}
    if type_name == "AddModifyColumn":
        return set(sides[0][1]) - {params.column}
    if type_name == "WindowFunctions":
        numbered = {spec.output for spec in params.functions if spec.function in ("row_number", "cumcount")}
        return (set(sides[0][1]) - {spec.output for spec in params.functions}) | numbered
    if type_name == "GroupAggregate":
        return _aggregated(params, sides[0][1])
    if type_name == "UnionConcatenate":
        return set.intersection(*(set(nonnull) for _, nonnull in sides)) if sides else set()
    if type_name == "JoinMerge":
        return _joined(params, inputs)
    return set()


def _aggregated(params: Any, nonnull: frozenset[str]) -> set[str]:
    by = as_list(params.by)
    known = {key for key in by if key in nonnull}
    for name, (column, func) in params.agg.items():
        if func in ("count", "size", "nunique", "sum"):
            known.add(name)
        elif func in ("min", "max", "first", "last") and by and column in nonnull:
            known.add(name)  # every group has a row, and the column no missing value
    return known


def _joined(params: Any, inputs: Mapping[str, tuple[Relation, frozenset[str]]]) -> set[str]:
    (left, left_nonnull), (right, right_nonnull) = inputs["left"], inputs["right"]
    keys = set(as_list(params.on)) | set(as_list(params.left_on)) | set(as_list(params.right_on))
    lsuf, rsuf = params.suffixes
    shared = (set(left.names) & set(right.names)) - keys
    kept_left = params.how in ("inner", "cross", "left")  # every output row has a left row
    kept_right = params.how in ("inner", "cross", "right")
    known: set[str] = set()
    if params.how == "outer":  # a key pandas keeps once is either side's
        known |= {key for key in as_list(params.on) or keys if key in left_nonnull and key in right_nonnull}
    if kept_left:
        known |= {name + lsuf if name in shared else name for name in left_nonnull}
    if kept_right:
        # a key column is the left side's, except in a right join
        known |= {
            name + rsuf if name in shared else name
            for name in right_nonnull
            if name not in keys or params.how == "right"
        }
    return known
