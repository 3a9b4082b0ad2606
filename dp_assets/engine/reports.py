"""The metadata a node reports (``ctx.add_metadata``), computed in DuckDB as the pandas node does.

A stored node's materialisation shows what its pandas form reports: FilterRows' ``rows_in`` and
``rows_kept``, Deduplicate's ``duplicates_dropped``, UnionConcatenate's ``rows_per_input``,
AddModifyColumn's ``column`` and ``replaced``, a HandleMissingValues fill's ``filled`` counts.
Each is one aggregate row over the node's inputs (counts; DuckDB reads a Parquet file's count
from its footer) and the output's row count, run only once the output is computed for storing
(an ephemeral node reports nothing under either engine).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .relation import Relation
from .sql_expressions import quote_identifier


@dataclass(frozen=True)
class Report:
    sql: str | None  # one row of values over the inputs (None: nothing to count)
    shape: Callable[[tuple[Any, ...], int], dict[str, Any]]  # (that row, output rows) -> metadata


def _rows(rel: Relation, known: int | None) -> str:
    """An input's row count: known when the input is computed (a table), else counted."""
    return str(int(known)) if known is not None else f"(SELECT count(*) FROM ({rel.sql}))"


def _one_row(parts: list[str]) -> str | None:
    return f"SELECT {', '.join(parts)}" if parts else None


def report_of(
    type_name: str, params: Any, inputs: dict[str, Relation], rows: Mapping[str, int | None]
) -> Report | None:
    """What the node reports, or None when its pandas form reports nothing. ``rows``: each
    input's row count where it is known without a query."""
    counts = [_rows(rel, rows.get(name)) for name, rel in inputs.items()]
    if type_name == "FilterRows":
        return Report(_one_row(counts), lambda row, out: {"rows_in": int(row[0]), "rows_kept": out})
    if type_name == "Deduplicate":
        return Report(_one_row(counts), lambda row, out: {"duplicates_dropped": int(row[0]) - out})
    if type_name == "UnionConcatenate":
        names = list(inputs)
        return Report(
            _one_row(counts),
            lambda row, out: {"rows_per_input": {name: int(n) for name, n in zip(names, row, strict=True)}},
        )
    if type_name == "AddModifyColumn":
        replaced = params.column in inputs["input"].names
        return Report(None, lambda row, out: {"column": params.column, "replaced": replaced})
    if type_name == "HandleMissingValues" and params.strategy == "fill":
        return _filled(params, inputs["input"])
    return None


def _filled(params: Any, rel: Relation) -> Report:
    """The missing values a fill replaces, per column the pandas node names (every column it
    was asked to fill, also one that holds none)."""
    if isinstance(params.value, dict):
        columns = [c for c in params.value if params.subset is None or c in params.subset]
    else:
        columns = list(params.subset) if params.subset is not None else list(rel.names)
    counts = [f"count(*) - count({quote_identifier(c)})" for c in columns]
    sql = f"SELECT {', '.join(counts)} FROM ({rel.sql})" if counts else None
    return Report(sql, lambda row, out: {"filled": {c: int(n) for c, n in zip(columns, row, strict=True)}})
