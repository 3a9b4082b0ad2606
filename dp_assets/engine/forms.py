"""The DuckDB form of each relational node type: params and input relations -> a query.

Every query carries ``ROW_ORDER`` (``relation.py``) so that a row order pandas defines survives:
a filter keeps its input's order, a sort orders by its keys and then by the input's order (a
stable sort), a group-by by its keys or by first appearance. Where pandas' order or dtype rules
cannot be followed the form raises ``NotSupported`` and the node runs in pandas. JoinMerge's
order is pandas' (``forms_join.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dp_assets.catalog.schema import as_list
from dp_assets.expressions import parse_expression

from .errors import NotSupported
from .forms_aggregate import group_aggregate, window_functions
from .forms_join import join_merge
from .forms_missing import handle_missing_values
from .forms_pivot import pivot_table
from .forms_reshape import melt
from .forms_sample import sample_rows
from .forms_types import change_data_type
from .relation import ROW_ORDER, Relation, column_list
from .sql_expressions import compile_condition, compile_expression, quote_identifier

R = ROW_ORDER
Form = Callable[[Any, dict[str, Relation], Mapping[str, Any]], str]
# a form that reads some of its input first (the engine: ``chain.Engine``)
DataForm = Callable[[Any, dict[str, Relation], Mapping[str, Any], Any], str]
# a form made of engine steps: (engine, params, inputs, flow params) -> the engine's value
StagedForm = Callable[[Any, Any, Mapping[str, Any], Mapping[str, Any]], Any]


def _input(inputs: dict[str, Relation]) -> Relation:
    return inputs["input"]


def filter_rows(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = _input(inputs)
    condition = compile_condition(parse_expression(params.condition), rel.kinds, flow_params)
    return f"SELECT * FROM ({rel.sql}) WHERE {condition}"


def select_columns(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = _input(inputs)
    if len(set(params.columns)) != len(params.columns) or not set(params.columns) <= set(rel.names):
        raise NotSupported("a repeated or missing column")  # pandas gives its own answer or error
    return f"SELECT {column_list(params.columns)}, {R} FROM ({rel.sql})"


def rename_columns(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = _input(inputs)
    if params.errors == "raise" and not set(params.columns) <= set(rel.names):
        raise NotSupported("a missing column (pandas names it)")
    new = [params.columns.get(name, name) for name in rel.names]
    if len(set(new)) != len(new) or R in new:
        raise NotSupported("renaming onto another column's name")
    parts = [f"{quote_identifier(old)} AS {quote_identifier(name)}" for old, name in zip(rel.names, new, strict=True)]
    return f"SELECT {', '.join([*parts, R])} FROM ({rel.sql})"


def add_modify_column(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = _input(inputs)
    expression = parse_expression(params.expression)
    if not expression.columns:
        raise NotSupported("a value that reads no column (pandas broadcasts the Python value's type)")
    value = compile_expression(expression, rel.kinds, flow_params)
    if value.kind == "null" or params.column == R:
        raise NotSupported("a column of nulls (pandas' object dtype)")
    target = quote_identifier(params.column)
    if params.column in rel.names:
        return f"SELECT * REPLACE ({value.text} AS {target}) FROM ({rel.sql})"
    return f"SELECT *, {value.text} AS {target} FROM ({rel.sql})"


def sort_order(by: list[str], ascending: bool | list[bool], na_position: str, rel: Relation) -> list[str]:
    flags = ascending if isinstance(ascending, list) else [ascending] * len(by)
    if len(flags) != len(by) or not set(by) <= set(rel.kinds):
        raise NotSupported("sort keys that pandas reads differently")
    nulls = "NULLS FIRST" if na_position == "first" else "NULLS LAST"
    return [f"{quote_identifier(c)} {'ASC' if up else 'DESC'} {nulls}" for c, up in zip(by, flags, strict=True)]


def sort_data(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = _input(inputs)
    if params.kind != "stable" and params.kind != "mergesort":
        raise NotSupported("an unstable sort (its order of ties is numpy's)")
    keys = sort_order(as_list(params.by), params.ascending, params.na_position, rel)
    order = ", ".join([*keys, R])
    return f"SELECT * EXCLUDE ({R}), row_number() OVER (ORDER BY {order}) AS {R} FROM ({rel.sql})"


def limit(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = _input(inputs)
    return f"SELECT * FROM ({rel.sql}) ORDER BY {R} LIMIT {int(params.n)} OFFSET {int(params.offset)}"


def deduplicate(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = _input(inputs)
    subset = as_list(params.subset) or list(rel.names)
    if not set(subset) <= set(rel.kinds):
        raise NotSupported("duplicates of columns DuckDB compares differently")
    keys = column_list(subset)
    if params.keep is False:
        return f"SELECT * FROM ({rel.sql}) QUALIFY count(*) OVER (PARTITION BY {keys}) = 1"
    direction = "ASC" if params.keep == "first" else "DESC"
    return f"SELECT * FROM ({rel.sql}) QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {R} {direction}) = 1"


def union_concatenate(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rels = list(inputs.values())
    names: list[str] = []
    for rel in rels:
        names += [name for name in rel.names if name not in names]
    if params.join == "inner":
        names = [name for name in names if all(name in rel.names for rel in rels)]
    elif params.sort:
        names = sorted(names)
    if not names or any(name not in rel.kinds for rel in rels for name in rel.names if name in names):
        raise NotSupported("columns DuckDB cannot stack as pandas does")
    _check_stackable(names, rels)
    parts = []
    for position, rel in enumerate(rels):
        columns = [quote_identifier(n) if n in rel.names else f"NULL AS {quote_identifier(n)}" for n in names]
        # the inputs in order, each in its own order: (input, row) as one number, no sort
        order = f"CAST({position} AS HUGEINT) * 18446744073709551616 + {R} AS {R}"
        parts.append(f"SELECT {', '.join(columns)}, {order} FROM ({rel.sql})")
    return " UNION ALL BY NAME ".join(f"({part})" for part in parts)


def _check_stackable(names: list[str], rels: list[Relation]) -> None:
    """pandas keeps a dtype only where every input has the column in the same dtype (or it
    upcasts int and float); anything else becomes object, which Arrow does not hold."""
    for name in names:
        kinds = {rel.kinds[name] for rel in rels if name in rel.names}
        types = {str(rel.arrow_type(name)) for rel in rels if name in rel.names}
        if len(kinds) > 1 and kinds != {"int", "float"}:
            raise NotSupported(f"column {name!r} of different kinds")
        if len(kinds) == 1 and len(types) > 1:
            raise NotSupported(f"column {name!r} of different types")


FORMS: dict[str, Form] = {
    "FilterRows": filter_rows,
    "SelectColumns": select_columns,
    "RenameColumns": rename_columns,
    "AddModifyColumn": add_modify_column,
    "SortData": sort_data,
    "Limit": limit,
    "Deduplicate": deduplicate,
    "UnionConcatenate": union_concatenate,
    "JoinMerge": join_merge,
    "GroupAggregate": group_aggregate,
    "WindowFunctions": window_functions,
    "HandleMissingValues": handle_missing_values,
    "Melt": melt,
    "ChangeDataType": change_data_type,
}

DATA_FORMS: dict[str, DataForm] = {
    "SampleRows": sample_rows,
}

STAGED_FORMS: dict[str, StagedForm] = {
    "PivotTable": pivot_table,
}
