"""``dp init-home``: the embedded default's local home, created once.

The instance file comes before the instance: every ``dp`` command that opens the Dagster
instance of ``DAGSTER_HOME`` calls ``prepare_instance`` first (``dp_assets.cli.INSTANCE_COMMANDS``),
and ``make run`` runs ``dp init-home`` before ``dagster dev``. Without the platform's file Dagster
falls back to its stock SQLite storage, whose first open is not safe across processes: two
processes creating it at once each stamp its Alembic revision, and the run storage is left with
two heads, after which every run fails. Writing the file and the first open of the storage
happen under one file lock in ``DAGSTER_HOME``, so processes starting together create the
storage once and the others find it done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import yaml
from filelock import FileLock, Timeout

from dp_settings import load

LOCAL_INSTANCE = """\
# Embedded default instance (written by `dp init-home`; edit freely, it is not overwritten).
# SQLite storage lives in this folder. Production uses the repository's top-level dagster.yaml.
telemetry:
  enabled: false
# Runs start in a child forked from a process that has loaded the code location (docs/run-launcher.md).
run_launcher:
  module: dp_instance.warm_launcher
  class: WarmRunLauncher
  config:
    max_workers: 8
# Fails a run whose run worker died (the warm launcher checks its workers) within one poll.
run_monitoring:
  enabled: true
  max_runtime_seconds: 21600
  poll_interval_seconds: 10
run_retries:
  enabled: true
  max_retries: 0
"""


def local_storage(dagster_home: Path) -> str:
    """Runs, all runs' events and the daemon's ticks in SQLite files kept open between operations
    (``dp_instance.embedded_storage``): a run no longer pays for a database file of its own, nor
    an engine and a WAL checkpoint per write, which made most of a small flow's run time (and a
    sensor tick's storage work 14 ms -> 1 ms). Compute logs in Dagster's usual folder, mirrored to
    the terminal by a thread rather than four processes per capture (``dp_instance.compute_logs``)."""
    storage = {
        "run_storage": {
            "module": "dp_instance.embedded_storage",
            "class": "EmbeddedRunStorage",
            "config": {"base_dir": str(dagster_home.resolve() / "history")},
        },
        "event_log_storage": {
            "module": "dp_instance.embedded_storage",
            "class": "EmbeddedEventLogStorage",
            "config": {"base_dir": str(dagster_home.resolve() / "history" / "events")},
        },
        "schedule_storage": {
            "module": "dp_instance.embedded_storage",
            "class": "EmbeddedScheduleStorage",
            "config": {"base_dir": str(dagster_home.resolve() / "schedules")},
        },
        "compute_logs": {
            "module": "dp_instance.compute_logs",
            "class": "ThreadedComputeLogManager",
            "config": {"base_dir": str(dagster_home.resolve() / "storage")},
        },
    }
    return yaml.safe_dump(storage, sort_keys=False)


def instance_file_text(dagster_home: Path) -> str:
    """What ``dp init-home`` writes to ``DAGSTER_HOME/dagster.yaml``."""
    return LOCAL_INSTANCE + local_storage(dagster_home) + local_run_queue()


def local_run_queue() -> str:
    """Queue limits that make ``policies.max_concurrent_runs`` real in the embedded default too.
    A run starts when it is submitted if no run is queued and the limits leave room
    (``launch_at_submit``, dp_instance/run_coordinator.py); otherwise it is queued, and the daemon
    looks at the queue every second (Dagster's default is every 5 s)."""
    from dp_sensors.triggers.policy import concurrency_limits_config

    queue = {
        "run_coordinator": {
            # Dagster's queued run coordinator, tagging the UI's Materialize runs with their flow.
            "module": "dp_instance.run_coordinator",
            "class": "FlowRunCoordinator",
            "config": {
                "max_concurrent_runs": 4,
                "tag_concurrency_limits": concurrency_limits_config(),
                "dequeue_interval_seconds": 1,
                "launch_at_submit": True,
            },
        }
    }
    return yaml.safe_dump(queue, sort_keys=False)


#: The lock file in DAGSTER_HOME held while the instance file is written and the storage created.
INIT_LOCK = ".dp-init.lock"
#: How long a starting command waits for another one's first start (creating the SQLite
#: storage takes seconds; longer on a loaded machine).
INIT_WAIT_SECONDS = 300


def prepare_instance(dagster_home: Path) -> Path:
    """Make ``dagster_home`` ready to open: the platform's instance file written when missing
    (never overwritten), the instance's storage created or migrated, under ``INIT_LOCK``."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_file = dagster_home / "dagster.yaml"
    lock = FileLock(dagster_home / INIT_LOCK, timeout=INIT_WAIT_SECONDS)
    try:
        lock.acquire()
    except Timeout:
        raise click.ClickException(
            f"another process has been preparing the Dagster instance in {dagster_home} for "
            f"{INIT_WAIT_SECONDS} s (lock file {lock.lock_file}); if none is running, start again"
        ) from None
    try:
        if not instance_file.exists():
            _write_whole(instance_file, instance_file_text(dagster_home))
        import dagster as dg

        # The first open creates the storage (Dagster's SQLite migrations); later ones find it.
        try:
            with _quiet_connection_retries():
                dg.DagsterInstance.from_config(str(dagster_home)).dispose()
        except Exception as exc:
            if not _unreachable(exc):
                raise
            raise click.ClickException(unreachable_message(dagster_home, exc)) from None
    finally:
        lock.release()
    return instance_file


#: Exceptions (by class name, anywhere in the chain) that mean the storage could not be reached,
#: as SQLAlchemy, the database drivers and dagster-postgres (after its own retries) raise them.
UNREACHABLE = frozenset({"OperationalError", "InterfaceError", "DagsterPostgresException", "DagsterMySQLException"})


@contextmanager
def _quiet_connection_retries() -> Iterator[None]:
    """Without dagster-postgres' warning per retry of a refused connection (five blocks of text
    on the root logger): when the retries fail, ``unreachable_message`` says it in one line."""

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Retrying failed database connection")

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _unreachable(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ in UNREACHABLE or isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unreachable_message(dagster_home: Path, exc: BaseException) -> str:
    """One line: the storage that could not be reached, why, and how to fix it."""
    cause = exc
    while (deeper := cause.__cause__ or cause.__context__) is not None:
        cause = deeper
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    instance_file = dagster_home / "dagster.yaml"
    return (
        f"cannot reach the Dagster run storage: {storage_described(instance_file)}, set in "
        f"{instance_file} ({type(cause).__name__}: {reason}). Start it or correct its settings; "
        "without DAGSTER_HOME, dp uses the embedded default in DP_HOME/dagster"
    )


def storage_described(instance_file: Path) -> str:
    """``PostgreSQL at host:port, database db`` (``env:`` values read from the environment, no
    password), else the storage section's name."""
    try:
        config = yaml.safe_load(instance_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "the run storage"
    section = config.get("run_storage") or config.get("storage") or {}
    postgres = _find(section, "postgres_db")
    if isinstance(postgres, dict):
        host, port, db = (_value(postgres.get(key)) for key in ("hostname", "port", "db_name"))
        return f"PostgreSQL at {host}:{port or 5432}, database {db}"
    url = _value(_find(section, "postgres_url"))
    if url:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        return f"PostgreSQL at {parts.hostname}:{parts.port or 5432}, database {parts.path.lstrip('/')}"
    return f"the {', '.join(section) or 'default'} run storage"


def _find(tree: object, key: str) -> object:
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            if (found := _find(value, key)) is not None:
                return found
    return None


def _value(raw: object) -> str:
    if isinstance(raw, dict) and "env" in raw:
        return os.environ.get(raw["env"], f"${raw['env']} (unset)")
    return "" if raw is None else str(raw)


def ensure_instance_home() -> Path:
    """``prepare_instance`` for ``DAGSTER_HOME``; when it is not set, for the embedded default's
    home (``DP_HOME/dagster``, what ``make run`` uses), which this process then uses as its
    ``DAGSTER_HOME`` — never a ``dagster.yaml`` that happens to be in the working directory (the
    repository's is production's), and never Dagster's ``DagsterHomeNotSetError``."""
    settings = load()
    dagster_home = settings.dagster_home_folder()
    if dagster_home is None:
        dagster_home = settings.dp_home() / "dagster"
        # Dagster finds its instance through the environment (DagsterInstance.get()).
        os.environ["DAGSTER_HOME"] = str(dagster_home)
    prepare_instance(dagster_home)
    return dagster_home


def _write_whole(path: Path, text: str) -> None:
    """Write ``path`` so that a reader that takes no lock (``dagster dev`` started by hand) sees
    no file or the whole file, never a part of it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)


@click.command("init-home")
def init_home() -> None:
    """Create DP_HOME and DAGSTER_HOME with the embedded default's instance settings."""
    settings = load()
    home = settings.dp_home()
    dagster_home = settings.dagster_home_folder() or home / "dagster"
    settings.data_folder().mkdir(parents=True, exist_ok=True)
    # Create the storage now too: a webserver and a daemon starting together on an empty SQLite
    # home would race on its migrations.
    prepare_instance(dagster_home)
    click.echo(f"DP_HOME={home}\nDAGSTER_HOME={dagster_home}")
