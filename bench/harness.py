"""Shared set-up for measurements: an isolated platform home, publishing specs, timing."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PLATFORM_ENV = ("DP_HOME", "DAGSTER_HOME", "DP_FLOWS_DIR", "DP_STORE_URL", "DP_DATA_DIR",
                "DP_OUTPUTS_URL", "DP_EXECUTOR")


@contextmanager
def isolated_home(prefix: str = "dp-bench-") -> Iterator[Path]:
    """An empty embedded-default home (SQLite store and Dagster instance) in a temp folder.

    Sets the platform's environment variables for the duration and restores them after, so a
    measurement never touches the developer's ``.dp_home``.
    """
    saved = {key: os.environ.get(key) for key in PLATFORM_ENV}
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    home = tmp / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "data").mkdir()
    os.environ.update({"DP_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "DP_FLOWS_DIR": ""})
    for key in ("DP_STORE_URL", "DP_DATA_DIR", "DP_OUTPUTS_URL", "DP_EXECUTOR"):
        os.environ.pop(key, None)
    try:
        yield home
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(tmp, ignore_errors=True)


#: The local PostgreSQL server the bench and the tests make their databases on.
PG_ADMIN_URL = os.environ.get("DP_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def postgres_up(postgres_url: str = PG_ADMIN_URL) -> bool:
    """Whether ``postgres_url``'s server accepts connections."""
    import socket

    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def fresh_database(postgres_url: str = PG_ADMIN_URL, prefix: str = "dp_bench") -> Iterator[str]:
    """A new, empty PostgreSQL database on ``postgres_url``'s server, dropped afterwards; yields
    its URL. The tests' databases are made here too (tests/conftest.py, tests/deploy)."""
    import uuid

    import sqlalchemy as sa

    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # NullPool: a fault test may restart the server in between; no stale pooled connection.
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_instance_yaml(url: str, storage_class: bool = True) -> str:
    """A Dagster instance on PostgreSQL at ``url``: with the storage class of the repository's
    dagster.yaml (``dp_instance.pg_storage``), or dagster-postgres' own (``storage: postgres:``)."""
    if storage_class:
        storage = ("storage:\n  custom:\n    module: dp_instance.pg_storage\n"
                   f"    class: ResilientPostgresStorage\n    config:\n      postgres_url: {url}\n")
    else:
        storage = f"storage:\n  postgres:\n    postgres_url: {url}\n"
    return storage + "telemetry:\n  enabled: false\n"


def flow_store(home: Path):
    from dp_resources.store import FlowStore

    store = FlowStore(f"sqlite:///{home / 'store.db'}")
    store.upgrade()
    return store


def publish_all(store: Any, specs: Sequence[Mapping[str, Any]], catalog: Any = None) -> None:
    """Validate and store each spec, as ``dp publish`` does."""
    from dp_assets.catalog import default_catalog
    from dp_assets.publishing import publish_spec

    catalog = catalog or default_catalog()
    for spec in specs:
        publish_spec(store, spec, catalog)


def execute_as_a_run(job: Any, instance: Any) -> Any:
    """Execute ``job`` in this process the way a run worker does (``dagster api execute_run``),
    with the job's own executor (in process for the flows measured here). Not
    ``execute_in_process``: that keeps every output value in memory for its result, so a frame
    no later node reads would stay alive to the end of the run."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run

    run = instance.create_run_for_job(job_def=job)
    return execute_run(InMemoryJob(job), run, instance)


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[list[float], Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; seconds and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def frames_equal(actual: Any, expected: Any) -> str:
    """``"ok"`` or what differs: the correctness check every timed row depends on."""
    import pandas as pd

    try:
        pd.testing.assert_frame_equal(actual.reset_index(drop=True), expected.reset_index(drop=True),
                                      check_exact=False, rtol=1e-9, check_dtype=False)
    except AssertionError as exc:
        return "FAILED: " + str(exc).replace("\n", " ")[:300]
    return "ok"


def checksum(df: Any) -> str:
    """Row count and a content hash (order-sensitive), as recorded beside a timing."""
    import pandas as pd

    rounded = df.copy()
    for column in rounded.select_dtypes("float").columns:
        rounded[column] = rounded[column].round(6)
    digest = int(pd.util.hash_pandas_object(rounded, index=False).sum()) & 0xFFFFFFFFFFFF
    return f"{len(df)} rows, {digest:012x}"


def free_port() -> int:
    """A free TCP port on loopback for a server a workload starts."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
