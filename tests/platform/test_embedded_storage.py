"""The embedded default's SQLite storage (``dp init-home``'s instance, dp_instance/embedded_storage.py)
keeps its connections open between operations. What a user relies on still holds: every event of a
run is stored and visible to another process (the UI) while the writer keeps its connections; a
forked child (a node's time limit) that uses the storage gets connections of its own and leaves the
parent's working; processes running flows at the same time on one home all succeed; the files stay
sound.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.event_log.base import EventLogCursor
from storage_probes import counted, sensor_tick

from dp_assets.catalog import default_catalog
from dp_assets.cli.home import init_home
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec
from dp_instance.embedded_storage import EmbeddedEventLogStorage, EmbeddedRunStorage, EmbeddedScheduleStorage
from dp_io import RunScopedIOManager

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "id": "embedded",
    "nodes": [
        {"id": "numbers", "type": "StaticData", "params": {"rows": [{"x": 1}, {"x": 2}, {"x": 3}]}},
        {
            "id": "doubled",
            "type": "AddModifyColumn",
            "inputs": ["numbers"],
            "params": {"column": "y", "expression": "x * 2"},
        },
        {
            "id": "limited",
            "type": "FilterRows",
            "inputs": ["doubled"],
            "timeout_seconds": 30,
            "params": {"condition": "y > 2"},
        },
    ],
}
ASSETS = [dg.AssetKey(["embedded", n["id"]]) for n in SPEC["nodes"]]


@pytest.fixture
def home(dp_home: Path) -> Path:
    """DAGSTER_HOME as `dp init-home` leaves it: its instance file, the storage created."""
    result = CliRunner().invoke(init_home)
    assert result.exit_code == 0, result.output
    return dp_home / "dagster"


def _job(outputs: Path) -> dg.JobDefinition:
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(SPEC, default_catalog()), default_catalog()),
        dg.Definitions(resources={"io_manager": RunScopedIOManager(base_url=str(outputs))}),
    )
    return defs.resolve_job_def("embedded")


def _materialized_runs(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    records = instance.fetch_materializations(key, limit=100).records
    return {r.run_id for r in records}


def test_the_instance_of_init_home_uses_the_embedded_storage(home):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, EmbeddedRunStorage)
        assert isinstance(instance.event_log_storage, EmbeddedEventLogStorage)


def test_runs_are_stored_and_seen_by_another_process_while_connections_stay_open(home, dp_home):
    job = _job(dp_home / "outputs")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        results = [job.execute_in_process(instance=instance) for _ in range(2)]
        assert all(r.success for r in results)
        run_ids = {r.run_id for r in results}
        # The node with a time limit ran in a forked child; the parent went on writing after it.
        limited = results[-1].output_for_node("embedded__step", "limited")
        pd.testing.assert_frame_equal(limited.reset_index(drop=True), pd.DataFrame({"x": [2, 3], "y": [4, 6]}))
        # Another process reads the files while this one still holds its pooled connections.
        seen = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "import dagster as dg, sys\n"
                    "with dg.DagsterInstance.from_config(sys.argv[1]) as i:\n"
                    "    runs = i.get_runs()\n"
                    "    print(sorted(r.run_id for r in runs if r.is_success))\n"
                    "    key = dg.AssetKey(['embedded', 'limited'])\n"
                    "    print(len(i.fetch_materializations(key, limit=100).records))\n"
                ),
                str(home),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.splitlines()
        assert seen[0] == str(sorted(run_ids))
        assert seen[1] == "2"
        for key in ASSETS:
            assert _materialized_runs(instance, key) == run_ids


def test_a_forked_child_gets_its_own_connections_and_the_parent_keeps_its_own(home, dp_home):
    job = _job(dp_home / "outputs")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        first = job.execute_in_process(instance=instance)
        parents = _connection_ids(instance)
        pid = os.fork()
        if pid == 0:  # the child writes and reads through the inherited storage objects
            code = 1
            try:
                assert not _connection_ids(instance) & parents, "the child used the parent's connections"
                instance.report_engine_event("from the forked child", dagster_run=instance.get_run_by_id(first.run_id))
                events = instance.all_logs(first.run_id)
                code = 0 if any(e.message == "from the forked child" for e in events) else 2
            except BaseException:  # noqa: BLE001 - shown in the test's output
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        second = job.execute_in_process(instance=instance)
        assert second.success
        messages = [e.message for e in instance.all_logs(first.run_id)]
        assert messages.count("from the forked child") == 1
        for key in ASSETS:
            assert _materialized_runs(instance, key) == {first.run_id, second.run_id}
    for name in ("runs.db", "events/events.db"):  # after every connection closed
        with sqlite3.connect(home / "history" / name) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_ui_event_stream_wakes_on_events_another_process_writes(home, dp_home):
    """The UI follows a run through ``watch``: events a run worker writes reach it while it runs."""
    job = _job(dp_home / "outputs")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_id = job.execute_in_process(instance=instance).run_id
        storage = instance.event_log_storage
        cursor = str(EventLogCursor.from_storage_id(storage.get_records_for_run(run_id).records[-1].storage_id))
        received: list[str] = []

        def follow(entry: Any, _cursor: str) -> None:
            received.append(entry.message)

        storage.watch(run_id, cursor, follow)
        try:
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    (
                        "import dagster as dg, sys\n"
                        "with dg.DagsterInstance.from_config(sys.argv[1]) as i:\n"
                        "    i.report_engine_event('written by a worker', dagster_run=i.get_run_by_id(sys.argv[2]))\n"
                    ),
                    str(home),
                    run_id,
                ],
                check=True,
                cwd=ROOT,
                capture_output=True,
            )
            deadline = time.monotonic() + 30
            while "written by a worker" not in received and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            storage.end_watch(run_id, follow)
        assert received == ["written by a worker"]


def _connection_ids(instance: dg.DagsterInstance) -> set[int]:
    """The SQLite connections the storage hands out now (a pool keeps them between operations)."""
    ids = set()
    with instance.run_storage.connect() as a, instance.event_log_storage._connect() as b:
        ids |= {id(a.connection.dbapi_connection), id(b.connection.dbapi_connection)}
    return ids


RUNNER = """
import sys
import time
from pathlib import Path
sys.path[:0] = [sys.argv[3], str(Path(sys.argv[3]).parent)]  # this folder and tests/
import dagster as dg
from test_embedded_storage import _job
job = _job(Path(sys.argv[2]))
with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    ok = [job.execute_in_process(instance=instance, raise_on_error=False).success for _ in range(3)]
print(sum(ok))
"""


def test_processes_running_flows_at_once_on_one_home_all_succeed(home, dp_home):
    here = str(Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(home), str(dp_home / "outputs"), here],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    outcomes = [p.communicate(timeout=300) for p in procs]
    errors = "\n".join(line for _, err in outcomes for line in err.splitlines() if " DEBUG " not in line)
    assert [out.split()[-1:] for out, _ in outcomes] == [["3"]] * 2, errors[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 6 and all(r.is_success for r in runs)
        for key in ASSETS:
            assert len(_materialized_runs(instance, key)) == 6


def test_a_runs_asset_events_open_no_connection_and_read_no_schema(home, dp_home, monkeypatch):
    """Dagster's SQLite storage checks, for every asset event, that a table exists (on a connection
    it opens for that) and reads the asset-key table's columns, and reads the runs table's columns
    on every change of a run's status; the schema only changes by a migration, so the embedded
    storage asks once."""
    job = _job(dp_home / "outputs")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert job.execute_in_process(instance=instance).success  # the first run may ask
        with counted(monkeypatch, sqlite3.dbapi2) as (opened, schema_reads):
            second = job.execute_in_process(instance=instance)
        assert second.success
        assert (len(opened), schema_reads) == (0, [])
        for key in ASSETS:  # and the events are all there
            assert second.run_id in _materialized_runs(instance, key)
            tags = instance.fetch_materializations(key, limit=1).records[0].asset_materialization.tags
            assert "dagster/data_version" in tags


def test_a_sensor_tick_opens_no_connection_and_reads_no_schema(home, monkeypatch):
    """Dagster's SQLite schedule storage opens a connection for every operation of a tick and
    lists the tables to learn whether a migration ran; the embedded one keeps both."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.schedule_storage, EmbeddedScheduleStorage)
        sensor_tick(instance.schedule_storage)
        with counted(monkeypatch, sqlite3.dbapi2) as (opened, schema_reads):
            ticks = sensor_tick(instance.schedule_storage)
        assert (len(opened), schema_reads) == (0, [])
        assert [t.status for t in ticks] == [TickStatus.SKIPPED, TickStatus.SKIPPED]
    # Another process (the UI) sees the ticks the daemon's process wrote.
    with dg.DagsterInstance.from_config(str(home)) as other:
        assert len(other.schedule_storage.get_ticks("origin", "selector")) == 2


def test_what_a_migration_adds_is_seen_after_it_was_missing(home):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        events, runs = instance.event_log_storage, instance.run_storage
        assert events.has_table("asset_event_tags")
        assert not events.has_table("added_by_a_migration")
        assert not runs.has_built_index("added_by_a_migration")
        with events._connect() as conn:
            conn.exec_driver_sql("CREATE TABLE added_by_a_migration (id INTEGER)")
        runs.mark_index_built("added_by_a_migration")
        assert events.has_table("added_by_a_migration")
        assert runs.has_built_index("added_by_a_migration")


def _alembic_heads(dagster_home: Path) -> dict[str, list[str]]:
    """The Alembic revision rows of every SQLite database under ``dagster_home``."""
    heads = {}
    for path in sorted(dagster_home.rglob("*.db")):
        with sqlite3.connect(path) as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
                heads[str(path.relative_to(dagster_home))] = [
                    row[0] for row in conn.execute("SELECT version_num FROM alembic_version")
                ]
    return heads


@pytest.mark.parametrize("command", [["runs", "list"], ["init-home"]])
def test_two_first_starts_at_once_on_an_empty_dagster_home(dp_home, command):
    """Instance first start (issue 16): two `dp` commands that open the instance, at once, on a
    DAGSTER_HOME without the platform's instance file. Both succeed; the file is the platform's;
    the run storage has a single Alembic head (no database two); a run then succeeds."""
    from dp_assets.cli.home import instance_file_text

    dagster_home = dp_home / "dagster"
    assert not any(dagster_home.iterdir())
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dp_assets.cli", *command],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [(p.communicate(timeout=300), p.returncode) for p in procs]
    assert [code for _, code in outcomes] == [0, 0], [err[-2000:] for (_, err), _ in outcomes]

    assert (dagster_home / "dagster.yaml").read_text() == instance_file_text(dagster_home)
    heads = _alembic_heads(dagster_home)  # (Dagster leaves the consolidated event log unstamped)
    assert len(heads["history/runs.db"]) == 1 and all(len(rows) <= 1 for rows in heads.values()), heads
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert isinstance(instance.run_storage, EmbeddedRunStorage)
        assert _job(dp_home / "outputs").execute_in_process(instance=instance).success


def test_a_users_instance_file_is_never_overwritten(dp_home):
    """Instance first start: an existing dagster.yaml is the user's (or production's) and stays."""
    from dp_assets.cli.home import prepare_instance

    dagster_home = dp_home / "dagster"
    own = "telemetry:\n  enabled: false\n"
    (dagster_home / "dagster.yaml").write_text(own)
    prepare_instance(dagster_home)
    assert (dagster_home / "dagster.yaml").read_text() == own


def _opens_the_instance(command: Any) -> bool:
    """Whether a command's callback, or a function of its module that the callback names, opens
    a Dagster instance (a source-level tripwire for INSTANCE_COMMANDS)."""
    import inspect

    import click

    if isinstance(command, click.Group):
        return any(_opens_the_instance(sub) for sub in command.commands.values())
    callback = inspect.unwrap(command.callback)
    module = sys.modules[callback.__module__]
    named = [getattr(module, name) for name in callback.__code__.co_names if callable(getattr(module, name, None))]
    sources = [inspect.getsource(callback)] + [
        inspect.getsource(fn) for fn in named if inspect.isfunction(fn) and fn.__module__ == module.__name__
    ]
    return any("DagsterInstance" in source for source in sources)


def test_every_command_that_opens_the_instance_prepares_it_first():
    """Instance first start: each `dp` command that opens the instance is in INSTANCE_COMMANDS
    (its instance file and storage are created first, under a lock), or is `init-home` itself."""
    import click

    from dp_assets.cli import COMMANDS, INSTANCE_COMMANDS, main

    context = click.Context(main)
    opening = {name for name in COMMANDS if _opens_the_instance(main.get_command(context, name))}
    assert {"status", "runs", "init-home"} <= opening  # the tripwire itself works
    assert opening - {"init-home"} <= INSTANCE_COMMANDS, sorted(opening - INSTANCE_COMMANDS)


FIRST_OPEN = """
import sys, time
import dagster as dg
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    instance.get_runs(limit=1)
    instance.all_instigator_state()
"""


def test_four_dagster_native_first_opens_at_once_leave_one_alembic_head(dp_home):
    """Instance first start (issue 16), without `dp`: the platform's instance file is in place but
    no database exists yet, and four processes open the instance through Dagster's own API at the
    same moment (as `dagster dev` and first runs do). The storages create and migrate each SQLite
    database under a file lock: every process succeeds, each database has one Alembic head, and a
    run then succeeds."""
    from dp_assets.cli.home import instance_file_text

    dagster_home = dp_home / "dagster"
    (dagster_home / "dagster.yaml").write_text(instance_file_text(dagster_home))
    start = time.time() + 3  # every interpreter has imported Dagster by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_OPEN, str(dagster_home), str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(p.communicate(timeout=300), p.returncode) for p in procs]
    assert [code for _, code in outcomes] == [0] * 4, [err[-2000:] for (_, err), _ in outcomes]
    heads = _alembic_heads(dagster_home)
    assert len(heads["history/runs.db"]) == 1 and all(len(rows) <= 1 for rows in heads.values()), heads
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert _job(dp_home / "outputs").execute_in_process(instance=instance).success
