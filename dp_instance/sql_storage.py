"""What the embedded (SQLite) and the production (PostgreSQL) storage share.

- **Pooled engines that are safe across fork.** Dagster's storages open a connection per
  storage operation (SQLite: a new engine each time for some; PostgreSQL: ``NullPool``), which
  is most of what an event costs: a run of 50 nodes on PostgreSQL opened 624 connections. Ours
  keep connections in a pool between operations. A forked child (a node's time limit, a Celery
  pool process) starts with an empty pool and never touches, nor closes, the connections it
  inherited: two processes must never share one.
- **Schema answers kept once they are "yes".** On every run-status change and every asset event
  Dagster asks whether a migration has run: a table exists, a column exists, an index was built
  (a reflection or a query each; 153 per run of 50 nodes), and the schedule storage does on
  every sensor or schedule tick. Only a migration changes the answer
  and it only ever adds, so a "yes" is kept for the life of the storage object and a "no" is
  asked again.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from functools import cached_property
from typing import Any

import sqlalchemy as sa

# Pools a forked child inherited: kept referenced so their connections are never closed there
# (closing a connection the parent still uses, from another process, breaks it for the parent).
_INHERITED_POOLS: list[Any] = []
_ENGINES: weakref.WeakSet[sa.Engine] = weakref.WeakSet()  # the pooled engines of this process
_FORK_HOOK = threading.Lock()
_fork_hooked = False


def _fresh_pools_in_child() -> None:
    for engine in list(_ENGINES):
        _INHERITED_POOLS.append(engine.pool)
        engine.dispose(close=False)


def fork_safe(engine: sa.Engine) -> sa.Engine:
    """``engine``, given a fresh pool in every child this process forks from now on."""
    global _fork_hooked
    with _FORK_HOOK:
        if not _fork_hooked:
            os.register_at_fork(after_in_child=_fresh_pools_in_child)
            _fork_hooked = True
        _ENGINES.add(engine)
    return engine


class KeptSchemaAnswers:
    """The store of "yes" answers; mixed into a storage class before Dagster's."""

    @cached_property
    def _schema_seen(self) -> set[tuple[str, ...]]:
        return set()

    def _kept_yes(self, key: tuple[str, ...], ask: Callable[[], bool]) -> bool:
        if key in self._schema_seen:
            return True
        if ask():
            self._schema_seen.add(key)
            return True
        return False


class KeptEventLogSchema(KeptSchemaAnswers):
    """The questions an event-log storage asks per asset event."""

    def has_table(self, table_name: str) -> bool:
        ask = super().has_table  # type: ignore[misc]
        return self._kept_yes(("has_table", table_name), lambda: ask(table_name))

    def _has_asset_key_col_on_connection(self, conn: sa.Connection, column_name: str) -> bool:
        ask = super()._has_asset_key_col_on_connection  # type: ignore[misc]
        return self._kept_yes(("asset_keys", column_name), lambda: ask(conn, column_name))


class KeptRunSchema(KeptSchemaAnswers):
    """The questions a run storage asks per run-status change and per run query."""

    def has_built_index(self, migration_name: str) -> bool:
        ask = super().has_built_index  # type: ignore[misc]
        return self._kept_yes(("has_built_index", migration_name), lambda: ask(migration_name))

    def has_run_stats_index_cols(self) -> bool:
        return self._kept_yes(("has_run_stats_index_cols",), super().has_run_stats_index_cols)  # type: ignore[misc]

    def has_bulk_actions_selector_cols(self) -> bool:
        return self._kept_yes(("has_bulk_actions_selector_cols",), super().has_bulk_actions_selector_cols)  # type: ignore[misc]

    def has_backfill_id_column(self) -> bool:
        return self._kept_yes(("has_backfill_id_column",), super().has_backfill_id_column)  # type: ignore[misc]

    def has_bulk_action_job_name_column(self) -> bool:
        return self._kept_yes(("has_bulk_action_job_name_column",), super().has_bulk_action_job_name_column)  # type: ignore[misc]

    def has_backfill_tags_table(self) -> bool:
        return self._kept_yes(("has_backfill_tags_table",), super().has_backfill_tags_table)  # type: ignore[misc]


class KeptScheduleSchema(KeptSchemaAnswers):
    """The questions a schedule storage asks per tick and per instigator-state change."""

    def has_instigators_table(self) -> bool:
        return self._kept_yes(("has_instigators_table",), super().has_instigators_table)  # type: ignore[misc]

    def _has_instigators_table(self, conn: sa.Connection) -> bool:
        ask = super()._has_instigators_table  # type: ignore[misc]
        return self._kept_yes(("has_instigators_table",), lambda: ask(conn))

    def _has_asset_daemon_asset_evaluations_table(self, conn: sa.Connection) -> bool:
        ask = super()._has_asset_daemon_asset_evaluations_table  # type: ignore[misc]
        return self._kept_yes(("has_asset_daemon_asset_evaluations_table",), lambda: ask(conn))

    def has_secondary_index_table(self) -> bool:
        return self._kept_yes(("has_secondary_index_table",), super().has_secondary_index_table)  # type: ignore[misc]

    def has_built_index(self, migration_name: str) -> bool:
        ask = super().has_built_index  # type: ignore[misc]
        return self._kept_yes(("has_built_index", migration_name), lambda: ask(migration_name))
