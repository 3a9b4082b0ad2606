"""Runs nodes as DuckDB queries over Arrow; a chain of them is one query.

``Engine.run`` returns a ``Deferred``: the node's query, not its rows. A node after it in the
engine nests that query in its own, so a chain of nodes runs as one query, when a value must
exist: ``Deferred.arrow()`` for a stored node (computed once, written as Arrow), ``frame()`` for
a node that runs in pandas. A node whose type, params or inputs have no faithful DuckDB form
raises ``NotSupported`` (the runtime then runs it in pandas, as without the engine).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dp_assets.catalog.schema import as_list

from .connection import EngineLimits, connect
from .errors import NotSupported
from .forms import DATA_FORMS, FORMS, STAGED_FORMS
from .forms_aggregate import group_order
from .forms_missing import statistics_as_fill
from .forms_types import hints_after_cast
from .frames import (
    INT64_WHEN_EMPTY,
    Hints,
    arrow_to_frame,
    arrow_with_hints,
    check_kinds,
    frame_to_arrow,
    with_row_order,
)
from .nulls import check_settled, nonnull_after, settle, watched
from .relation import ROW_ORDER, Relation, column_list, describe
from .reports import Report, report_of
from .row_order import fetch_in_row_order
from .sql_expressions import kind_of_arrow, quote_text

__all__ = ["Deferred", "Engine", "NotSupported", "supports"]


def supports(type_name: str) -> bool:
    return type_name in FORMS or type_name in DATA_FORMS or type_name in STAGED_FORMS


@dataclass
class Deferred:
    """A node's output as a query of the engine; computed at most once."""

    engine: Engine
    relation: Relation
    hints: Hints
    nonnull: frozenset[str] = frozenset()  # integer/boolean columns known to hold no missing value
    _table: Any = field(default=None, repr=False)
    report: Report | None = field(default=None, repr=False)  # its metadata, as the pandas node's

    def arrow(self) -> Any:
        if self._table is None:
            with self.engine.lock:
                rows = fetch_in_row_order(self.engine.connection, self.relation, self.engine.scratch_name())
                table = arrow_with_hints(rows, self.hints)
            # the dtypes pandas gives this node's rows (nulls.py), also for what is stored
            self._table, self.nonnull = settle(table)
            # later nodes read the computed rows instead of computing them again
            self.relation = self.engine.register(self._table)
        return self._table

    def metadata(self) -> dict[str, Any]:
        """What the pandas node reports in its metadata (``reports.py``): computes the node."""
        if self.report is None:
            return {}
        rows = self.arrow().num_rows
        (row,) = self.engine.fetch_all(self.report.sql) if self.report.sql else [()]
        return self.report.shape(row, rows)

    def frame(self) -> Any:
        return arrow_to_frame(self.arrow(), self.hints)

    @property
    def num_rows(self) -> int | None:
        return self._table.num_rows if self._table is not None else None


class Engine:
    """One DuckDB connection for a step's nodes (DuckDB connections are not shared by threads:
    calls go through ``lock``)."""

    def __init__(self, limits: EngineLimits | None = None, allowed_paths: tuple[str, ...] = ()):
        self.allowed_paths = frozenset(allowed_paths)  # the Parquet sources DuckDB reads itself
        self.connection = connect(limits, allowed_paths)
        self.lock = threading.RLock()
        self._names = itertools.count()

    def scratch_name(self) -> str:
        return f"__dp_input_{next(self._names)}"

    def register(self, table: Any) -> Relation:
        name = self.scratch_name()
        with self.lock:
            self.connection.register(name, with_row_order(table))
            return describe(self.connection, f"SELECT * FROM {name}")

    def register_picks(self, positions: Any) -> str:
        """A table of row positions (``forms_sample.PICK``) numbered in the given order."""
        import numpy as np
        import pyarrow as pa

        from .forms_sample import PICK

        name = self.scratch_name()
        order = np.arange(len(positions), dtype=np.int64)
        picks = pa.table({PICK: pa.array(positions, type=pa.int64()), ROW_ORDER: pa.array(order)})
        with self.lock:
            self.connection.register(name, picks)
        return name

    def fetch_all(self, sql: str) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.connection.sql(sql).fetchall()

    def fetch_arrow(self, sql: str) -> Any:
        with self.lock:
            return self.connection.sql(sql).to_arrow_table()

    def relation_of(self, value: Any) -> tuple[Relation, Hints, frozenset[str]]:
        """An input as a relation, its dtype hints and its integer/boolean columns known to
        hold no missing value (all of them: a node whose were unknown is computed first)."""
        import pandas as pd
        import pyarrow as pa

        if isinstance(value, Deferred):
            if value.engine is not self or watched(value.relation) - value.nonnull:
                table = value.arrow()
                relation = value.relation if value.engine is self else self.register(table)
            else:
                relation = value.relation
            check_settled(relation, value.nonnull)
            return relation, value.hints, value.nonnull
        if isinstance(value, pd.DataFrame):
            table, hints = frame_to_arrow(value)
            settled, nonnull = settle(table)
            if settled is not table:  # an object column of integers and None: pandas keeps object
                raise NotSupported("an object column of integers with missing values")
            relation = self.register(table)
            check_settled(relation, nonnull)
            return relation, hints, nonnull
        if isinstance(value, pa.Table):
            check_kinds(value)
            table, nonnull = settle(value)
            relation = self.register(table)
            check_settled(relation, nonnull)
            return relation, {}, nonnull
        raise NotSupported(f"an input of type {type(value).__name__}")

    def source(self, table: Any, hints: Hints) -> Deferred:
        """A source's Arrow table (read by pyarrow) as the engine's value, with the dtypes
        ``pandas.read_parquet`` gives it (an integer column with a missing value: float64)."""
        check_kinds(table)
        table, nonnull = settle(table)
        return Deferred(self, self.register(table), hints, nonnull, _table=table)

    def parquet(self, path: str, columns: list[str], file_schema: Any, hints: Hints) -> Deferred:
        """A Parquet source read by DuckDB where a reader needs it (only the columns and rows a
        query uses), numbered in file order. ``file_schema`` (pyarrow's reading of the file,
        what ``pandas.read_parquet`` builds on) must give every column DuckDB's kind, and the
        caller has checked that no integer or boolean column holds a missing value."""
        if path not in self.allowed_paths:
            raise NotSupported("a file outside the step's sources")
        sql = (
            f"SELECT {column_list(columns)}, file_row_number AS {ROW_ORDER} "
            f"FROM read_parquet({quote_text(path)}, file_row_number = true)"
        )
        with self.lock:
            relation = describe(self.connection, sql)
        wanted = {name: kind_of_arrow(file_schema.field(name).type) for name in columns}
        if relation.names != tuple(columns) or relation.kinds != wanted:
            raise NotSupported("a column DuckDB reads as another type than pyarrow")
        return Deferred(self, relation, hints, frozenset(watched(relation)))

    def _read_first(self, data_form: Any, params: Any, relations: dict[str, Relation]) -> str:
        try:
            return data_form(params, relations, {}, self)
        except NotSupported:
            raise
        except Exception as err:  # DuckDB could not compute the input (an overflow...): pandas answers
            raise NotSupported(f"DuckDB: {err}") from err

    def value_of(self, frame: Any) -> Deferred:
        """A frame computed in pandas as the engine's value, with its dtypes: an ``object``
        column must hold text (Arrow would turn numbers in it into a number column)."""
        import pandas as pd

        for name, dtype in frame.dtypes.items():
            if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(frame[name], skipna=True) not in (
                "string",
                "empty",
            ):
                raise NotSupported(f"column {name!r}: an object column that is not text")
        relation, hints, nonnull = self.relation_of(frame)
        return Deferred(self, relation, hints, nonnull)

    def run(self, type_name: str, params: Any, inputs: Mapping[str, Any], flow_params: Mapping[str, Any]) -> Deferred:
        staged = STAGED_FORMS.get(type_name)
        if staged is not None:
            return staged(self, params, inputs, flow_params)
        form, data_form = FORMS.get(type_name), DATA_FORMS.get(type_name)
        if form is None and data_form is None:
            raise NotSupported(f"{type_name} has no DuckDB form")
        relations: dict[str, Relation] = {}
        known: dict[str, tuple[Relation, frozenset[str]]] = {}
        hints: Hints = {}
        for name, value in inputs.items():
            given, found, nonnull = self.relation_of(value)
            relations[name] = dataclasses.replace(given, nonnull=nonnull)
            known[name] = (relations[name], nonnull)
            hints = {**found, **hints}
        if type_name == "HandleMissingValues":  # a statistic: the fill with pandas' values
            params = statistics_as_fill(params, relations["input"], hints, self)
        with self.lock:
            sql = form(params, relations, flow_params) if form else self._read_first(data_form, params, relations)
            try:
                relation = describe(self.connection, sql)
            except NotSupported:
                raise
            except Exception as err:  # DuckDB refused what pandas may accept: let pandas answer
                raise NotSupported(f"DuckDB: {err}") from err
        nonnull = nonnull_after(type_name, params, known, relation)
        carried = _carried_hints(type_name, params, hints, relations.get("input", relation))
        if type_name == "AddModifyColumn" and relation.kinds.get(params.column) == "str":
            carried = _text_hint(params, relations["input"], hints, flow_params, carried)
        if type_name == "GroupAggregate":
            relation = dataclasses.replace(relation, order_keys=group_order(params))
        report = report_of(type_name, params, relations, {name: _known_rows(v) for name, v in inputs.items()})
        return Deferred(self, relation, carried, nonnull, report=report)


def _known_rows(value: Any) -> int | None:
    """An input's row count when it is already computed (a frame, a table, a computed node)."""
    if isinstance(value, Deferred):
        return value.num_rows
    rows = getattr(value, "num_rows", None)
    return rows if isinstance(rows, int) else (len(value) if hasattr(value, "columns") else None)


def _carried_hints(type_name: str, params: Any, hints: Hints, given: Relation) -> Hints:
    """The input dtypes a node's output columns keep under another name."""
    if type_name == "ChangeDataType":
        return hints_after_cast(params, hints, given)
    if type_name == "RenameColumns":
        return {params.columns.get(name, name): dtype for name, dtype in hints.items()}
    if type_name == "GroupAggregate":
        kept = {
            name: hints[column]
            for name, (column, func) in params.agg.items()
            if func in ("min", "max", "first", "last") and column in hints
        }
        return {**hints, **kept}
    if type_name == "Melt":  # the value column keeps the value columns' dtype where they share one
        ids = as_list(params.id_vars)
        values = as_list(params.value_vars) or [name for name in given.names if name not in ids]
        found = {str(hints.get(name)) for name in values}
        shared = hints.get(values[0]) if values and len(found) == 1 else None
        kept = {name: dtype for name, dtype in hints.items() if name in ids}
        return {**kept, params.value_name: shared} if shared is not None else kept
    if type_name == "WindowFunctions":
        kept = {
            spec.output: hints[spec.column]
            for spec in params.functions
            if spec.function in ("lag", "lead", "cummax", "cummin") and spec.column in hints
        }
        # pandas' shift() of integers is float64, but an empty frame keeps int64
        first_key = next(iter(as_list(params.order_by)), "")
        shifted = {
            spec.output: INT64_WHEN_EMPTY
            for spec in params.functions
            if spec.function in ("lag", "lead") and given.kinds.get(spec.column or first_key) == "int"
        }
        return {**hints, **kept, **shifted}
    return hints


def _text_hint(params: Any, given: Relation, hints: Hints, flow_params: Mapping[str, Any], carried: Hints) -> Hints:
    """pandas keeps ``object`` for text computed from an ``object`` column (``upper``, ``substr``,
    an if/else whose first value is one...) and gives ``str`` elsewhere (``concat``, ``+``): the
    evaluator's own answer over no rows of the input's dtypes says which."""
    import pandas as pd
    import pyarrow as pa

    from dp_assets.expressions import parse_expression

    empty = pa.schema(list(zip(given.names, given.arrow_types, strict=True))).empty_table()
    try:
        value = parse_expression(params.expression).evaluate(arrow_to_frame(empty, hints), flow_params)
    except Exception:  # noqa: BLE001 - the rows decide what pandas does: keep what the inputs said
        return carried
    rest = {name: dtype for name, dtype in carried.items() if name != params.column}
    dtype = getattr(value, "dtype", None)
    return {**rest, params.column: dtype} if dtype is not None and pd.api.types.is_object_dtype(dtype) else rest
