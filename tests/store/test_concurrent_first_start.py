"""Four processes start at once on an empty flow store (issue 16): on PostgreSQL one of them used
to fail with a unique violation while the others created the schema. Each process here creates
or migrates the store and publishes flows, some the same flow and version as the others; all must
exit 0, the store must have one schema at the head revision, every version stored once, and each
publisher told clearly whether it created a version or found it there.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import traceback
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.services import PG_ADMIN_URL, fresh_database

PROCESSES = 4
#: Empty stores met in turn by the same four processes (a race lost once is caught more often).
ROUNDS = 3


def _spec(flow_id: str, value: int) -> dict:
    return {"id": flow_id, "nodes": [{"id": "a", "type": "StaticData", "params": {"rows": [{"x": value}]}}]}


def _specs_of(worker: int) -> list[dict]:
    """Every worker publishes the shared flow in two versions, a flow shared with one other worker,
    and a flow of its own."""
    return [_spec("shared", 1), _spec(f"pair_{worker // 2}", 1), _spec(f"own_{worker}", worker), _spec("shared", 2)]


def _first_start(urls: list[str], worker: int, barrier, results) -> None:
    """One process: for each empty store in turn, wait for the others, then start on the store
    and publish (a spawned child; the rounds share its slow imports)."""
    try:
        from dp_assets.catalog import default_catalog
        from dp_assets.publishing import publish_spec
        from dp_resources.store import FlowStore

        catalog = default_catalog()
        for url in urls:
            barrier.wait(timeout=120)  # all four meet each empty store together
            store = FlowStore(url)
            store.upgrade()
            for spec in _specs_of(worker):
                validated, result = publish_spec(store, spec, catalog)
                results.put((url, worker, validated.id, validated.version, result.created))
    except BaseException:
        results.put(("error", worker, traceback.format_exc(), "", False))
        raise


def _start_all(urls: list[str]) -> list[tuple]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [context.Process(target=_first_start, args=(urls, n, barrier, results)) for n in range(PROCESSES)]
    for process in processes:
        process.start()
    reported = []
    # Drain while they run: a child exits only once what it put on the queue has been read.
    while len(reported) < PROCESSES * len(urls) * len(_specs_of(0)):
        try:
            item = results.get(timeout=180)
        except queue.Empty:
            break
        reported.append(item)
        if item[0] == "error":
            break
    for process in processes:
        process.join(timeout=60)
        if process.exitcode is None:
            process.kill()
    errors = [r[2] for r in reported if r[0] == "error"]
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    return reported


def _check_store(url: str, reported: list[tuple]) -> None:
    from dp_resources.store.store import HEAD_REVISION

    reported = [r[1:] for r in reported if r[0] == url]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD_REVISION]
            rows = conn.execute(sa.text("SELECT flow_id, version FROM dp_flow_versions")).all()
            workspaces = conn.execute(sa.text("SELECT name FROM dp_workspaces")).scalars().all()
            flows = conn.execute(sa.text("SELECT id FROM dp_flows")).scalars().all()
    finally:
        engine.dispose()
    published = {(flow, version) for _, flow, version, _ in reported}
    assert Counter(map(tuple, rows)) == Counter(published), "every version stored exactly once"
    assert workspaces == ["default"]
    assert sorted(flows) == sorted({flow for flow, _ in published})
    assert len(reported) == PROCESSES * len(_specs_of(0))
    created = Counter((flow, version) for _, flow, version, was_created in reported if was_created)
    assert created == Counter(published), "each version reported created by exactly one publisher"


@pytest.fixture
def empty_postgres_stores(postgres_url: str) -> list[str]:
    """New databases of their own (``postgres_url`` checks the server is up, loudly under CI)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(fresh_database(PG_ADMIN_URL, prefix="dp_test_first")) for _ in range(ROUNDS)]


def test_four_processes_start_at_once_on_an_empty_postgresql_store(empty_postgres_stores: list[str]):
    """Store first start (issue 16): four processes meet each new PostgreSQL database."""
    reported = _start_all(empty_postgres_stores)
    for url in empty_postgres_stores:
        _check_store(url, reported)


def test_four_processes_start_at_once_on_an_empty_sqlite_store(tmp_path: Path):
    """Store first start (issue 16): four processes, no SQLite file yet (nor its folder)."""
    urls = [f"sqlite:///{tmp_path / f'home{n}' / 'store.db'}" for n in range(ROUNDS)]
    reported = _start_all(urls)
    for url in urls:
        _check_store(url, reported)


def test_a_starting_process_waits_for_the_schema_lock_then_says_who_holds_it(empty_postgres_stores, tmp_path):
    """Store first start: while another process holds the schema lock (a migration in progress),
    a starting process waits, and after its bound fails with a message naming the store, not a
    database error."""
    from filelock import FileLock

    from dp_resources.store.schema_lock import ADVISORY_KEY, SchemaLockTimeout, schema_lock

    url = empty_postgres_stores[0]
    holder = sa.create_engine(url, poolclass=sa.pool.NullPool)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with holder.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
            with (
                pytest.raises(SchemaLockTimeout, match=r"flow store at postgresql.*waited 1 s"),
                schema_lock(engine, wait_seconds=1),
            ):
                pass
        with schema_lock(engine, wait_seconds=1):  # the holder's session ended: free again
            pass
    finally:
        holder.dispose()
        engine.dispose()

    sqlite = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with (
        FileLock(f"{tmp_path / 'store.db'}.migrate.lock"),
        pytest.raises(SchemaLockTimeout, match=r"store\.db\.migrate\.lock"),
        schema_lock(sqlite, wait_seconds=0.5),
    ):
        pass
