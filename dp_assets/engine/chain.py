"""Runs nodes as DuckDB queries over Arrow; a chain of them is one query.

``Engine.run`` returns a ``Deferred``: the node's query, not its rows. A node after it in the
engine nests that query in its own, so a chain of nodes runs as one query, when a value must
exist: ``Deferred.arrow()`` for a stored node (computed once, written as Arrow), ``frame()`` for
a node that runs in pandas. A node whose type, params or inputs have no faithful DuckDB form
raises ``NotSupported`` (the runtime then runs it in pandas, as without the engine).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .connection import EngineLimits, connect
from .errors import NotSupported
from .forms import FORMS
from .frames import Hints, arrow_to_frame, arrow_with_hints, check_kinds, frame_to_arrow, with_row_order
from .relation import Relation, describe, ordered_output

__all__ = ["Deferred", "Engine", "NotSupported", "supports"]


def supports(type_name: str) -> bool:
    return type_name in FORMS


@dataclass
class Deferred:
    """A node's output as a query of the engine; computed at most once."""

    engine: Engine
    relation: Relation
    hints: Hints
    _table: Any = field(default=None, repr=False)

    def arrow(self) -> Any:
        if self._table is None:
            with self.engine.lock:
                reader = self.engine.connection.sql(ordered_output(self.relation))
                self._table = arrow_with_hints(reader.to_arrow_table(), self.hints)
            # later nodes read the computed rows instead of computing them again
            self.relation = self.engine.register(self._table)
        return self._table

    def frame(self) -> Any:
        return arrow_to_frame(self.arrow(), self.hints)

    @property
    def num_rows(self) -> int | None:
        return self._table.num_rows if self._table is not None else None


class Engine:
    """One DuckDB connection for a step's nodes (DuckDB connections are not shared by threads:
    calls go through ``lock``)."""

    def __init__(self, limits: EngineLimits | None = None):
        self.connection = connect(limits)
        self.lock = threading.RLock()
        self._names = itertools.count()

    def register(self, table: Any) -> Relation:
        name = f"__dp_input_{next(self._names)}"
        with self.lock:
            self.connection.register(name, with_row_order(table))
            return describe(self.connection, f"SELECT * FROM {name}")

    def relation_of(self, value: Any) -> tuple[Relation, Hints]:
        import pandas as pd
        import pyarrow as pa

        if isinstance(value, Deferred):
            if value.engine is not self:
                return self.register(value.arrow()), value.hints
            return value.relation, value.hints
        if isinstance(value, pd.DataFrame):
            table, hints = frame_to_arrow(value)
            return self.register(table), hints
        if isinstance(value, pa.Table):
            check_kinds(value)
            return self.register(value), {}
        raise NotSupported(f"an input of type {type(value).__name__}")

    def source(self, table: Any, hints: Hints) -> Deferred:
        """A source's Arrow table (read by pyarrow) as the engine's value."""
        check_kinds(table)
        return Deferred(self, self.register(table), hints, _table=table)

    def run(self, type_name: str, params: Any, inputs: Mapping[str, Any], flow_params: Mapping[str, Any]) -> Deferred:
        form = FORMS.get(type_name)
        if form is None:
            raise NotSupported(f"{type_name} has no DuckDB form")
        relations: dict[str, Relation] = {}
        hints: Hints = {}
        for name, value in inputs.items():
            relations[name], found = self.relation_of(value)
            hints = {**found, **hints}
        with self.lock:
            sql = form(params, relations, flow_params)
            try:
                relation = describe(self.connection, sql)
            except NotSupported:
                raise
            except Exception as err:  # DuckDB refused what pandas may accept: let pandas answer
                raise NotSupported(f"DuckDB: {err}") from err
        return Deferred(self, relation, _carried_hints(type_name, params, hints))


def _carried_hints(type_name: str, params: Any, hints: Hints) -> Hints:
    """The input dtypes a node's output columns keep under another name."""
    if type_name == "RenameColumns":
        return {params.columns.get(name, name): dtype for name, dtype in hints.items()}
    if type_name == "GroupAggregate":
        kept = {
            name: hints[column]
            for name, (column, func) in params.agg.items()
            if func in ("min", "max", "first", "last") and column in hints
        }
        return {**hints, **kept}
    if type_name == "WindowFunctions":
        kept = {
            spec.output: hints[spec.column]
            for spec in params.functions
            if spec.function in ("lag", "lead", "cummax", "cummin") and spec.column in hints
        }
        return {**hints, **kept}
    return hints
