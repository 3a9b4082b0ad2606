"""Shared set-up for measurements: an isolated platform home, publishing specs, timing.

Free ports and fresh PostgreSQL databases are shared with the tests and live in
``tests/support/`` (one copy for both); the workloads import them from here.
"""

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

# Re-exported for the workloads: one copy, shared with the tests (stdlib-only imports, so a
# measured child process pays nothing for them). A live workload's processes each lead a session
# of their own and are stopped as a group: a webserver's or daemon's ``dagster api grpc`` code
# server ignores SIGTERM and would otherwise outlive the bench, adopted by init.
from tests.support.processes import free_port, popen_in_session, signal_group, stop_groups  # noqa: F401
from tests.support.services import PG_ADMIN_URL, fresh_database, postgres_up  # noqa: F401

PLATFORM_ENV = (
    "DP_HOME",
    "DAGSTER_HOME",
    "DP_FLOWS_DIR",
    "DP_STORE_URL",
    "DP_DATA_DIR",
    "DP_OUTPUTS_URL",
    "DP_EXECUTOR",
)


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


def pg_instance_yaml(url: str, storage_class: bool = True) -> str:
    """A Dagster instance on PostgreSQL at ``url``: with the storage class of the repository's
    dagster.yaml (``dp_instance.pg_storage``), or dagster-postgres' own (``storage: postgres:``)."""
    if storage_class:
        storage = (
            "storage:\n  custom:\n    module: dp_instance.pg_storage\n"
            f"    class: ResilientPostgresStorage\n    config:\n      postgres_url: {url}\n"
        )
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
    """Execute ``job`` in this process the way a run worker does, not with ``execute_in_process``
    (which keeps every output value alive for its result): Dagster's internals behind the fence,
    ``dp_assets.dagster_internals.execute_run_in_process``, imported when first used."""
    from dp_assets.dagster_internals import execute_run_in_process

    return execute_run_in_process(job, instance)


def as_a_warm_run_worker(instance: Any) -> None:
    """Import what the default (warm) run launcher's template imports before it forks a run
    worker (``dp_instance.warm_preload.preload``): Dagster's run-worker modules, the instance's
    storage classes, and the location's ``prepare_run_worker``. A run measured after this starts
    where a run of the default launcher starts; the location itself is already built."""
    from dp_assets.definitions import prepare_run_worker
    from dp_instance.warm_preload import import_run_worker_modules

    import_run_worker_modules(instance.get_ref())
    prepare_run_worker()


def warm_template_ready(dagster_home: Path) -> bool:
    """The warm run launcher has started a template on this home and every template it started
    listens: runs launched now start warm. A template's socket appears only once it is ready
    (``Template.listen``); its key is named by the lock the launcher took to start it. Benchmarks
    wait for this after a platform's first run, which starts the template (start-up, reported
    apart)."""
    from dp_instance.warm_pool import TemplatePool

    folder = dagster_home / "warm"
    keys = [lock.stem for lock in folder.glob("*.lock")] if folder.is_dir() else []
    return bool(keys) and all(TemplatePool.socket_path(key).exists() for key in keys)


def wait_until(
    what: str,
    probe: Callable[[], Any],
    procs: Sequence[Any],
    timeout: float = 300,
    every: float = 0.25,
    logs_in: Path | None = None,
) -> Any:
    """Poll ``probe`` every ``every`` seconds until it returns something truthy, and return that;
    fail naming ``what`` as soon as one of ``procs`` (the live platform's processes) has exited,
    or on timeout."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        dead = [p.args[0] for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            where = f"; logs in {logs_in}" if logs_in is not None else ""
            raise RuntimeError(f"timed out waiting for {what} (exited: {dead}){where}")
        time.sleep(every)
    return value


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
        pd.testing.assert_frame_equal(
            actual.reset_index(drop=True),
            expected.reset_index(drop=True),
            check_exact=False,
            rtol=1e-9,
            check_dtype=False,
        )
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
