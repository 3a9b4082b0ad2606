"""What the storage tests count (connections opened, schema read) and a sensor tick's storage work:
shared by the embedded (SQLite) and the production (PostgreSQL) storage tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus
from sqlalchemy.engine.reflection import Inspector


@contextmanager
def counted(monkeypatch: pytest.MonkeyPatch, dbapi: Any) -> Iterator[tuple[list[Any], list[str]]]:
    """Connections ``dbapi`` opens and schema reads (columns, table names) while inside."""
    opened: list[Any] = []
    schema_reads: list[str] = []
    real_connect, real_columns, real_tables = dbapi.connect, Inspector.get_columns, Inspector.get_table_names
    with monkeypatch.context() as patch:
        patch.setattr(dbapi, "connect", lambda *a, **kw: opened.append(a) or real_connect(*a, **kw))
        patch.setattr(
            Inspector,
            "get_columns",
            lambda self, table, *a, **kw: schema_reads.append(table) or real_columns(self, table, *a, **kw),
        )
        patch.setattr(
            Inspector,
            "get_table_names",
            lambda self, *a, **kw: schema_reads.append("(tables)") or real_tables(self, *a, **kw),
        )
        yield opened, schema_reads


def sensor_tick(schedule_storage: Any, origin: str = "origin", selector: str = "selector") -> Any:
    """What the sensor daemon stores and reads for one tick of one sensor."""
    tick = schedule_storage.create_tick(
        TickData(
            instigator_origin_id=origin,
            instigator_name="sensor",
            instigator_type=InstigatorType.SENSOR,
            status=TickStatus.STARTED,
            timestamp=time.time(),
            selector_id=selector,
        )
    )
    schedule_storage.update_tick(tick.with_status(TickStatus.SKIPPED))
    schedule_storage.get_instigator_state(origin, selector)
    return schedule_storage.get_ticks(origin, selector, limit=5)
