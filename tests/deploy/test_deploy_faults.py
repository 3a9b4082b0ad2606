"""Fault tests on the production stack with the platform's compiled flows (F2, F4-F7, F10).

One stack for the module (code server for ``dp_assets.definitions``, webserver, daemon, whose
warm run launcher forks the run workers, two Celery workers) on servers of its own, so that outages and a lowered connection limit touch no
other test: a private PostgreSQL cluster (Dagster's storage, the flow store, the sink tables) and
a private Redis (broker db 0, results db 1; append-only file). Monitoring polls every 2 s.
The tests run in file order, the most destructive (PostgreSQL outages) last; each starts when
no run of an earlier one is still going.

What "clear state" means here: every run ends SUCCESS, FAILURE or CANCELED, never stays STARTED;
a failed run is followed by a retry (the run-retry daemon, or a re-execution from failure) that
succeeds; the sink's rows (an append, the flows' one side effect) are written exactly once.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa
from conftest import StackFactory
from dagster import DagsterEventType, DagsterRun, DagsterRunStatus
from deploy_flows import expected_combined, fan_out_spec, step_key
from deploy_services import PrivatePostgres, PrivateRedis
from deploy_stack import NOT_FINISHED, Stack

from dp_instance.warm_launcher import WORKER_TAG
from tests.support.processes import pid_alive, process_tree, wait_for
from tests.support.warm import ready_template

pytestmark = [pytest.mark.e2e, pytest.mark.fault, pytest.mark.postgres]

WIDTH = 2
ROUNDS = 300_000
LONG_ROUNDS = 6_000_000  # a few seconds of one core
ENDLESS_ROUNDS = 400_000_000  # would run for minutes (stopped by its node timeout at 18 s)
LONGEST_STEP = 20
TUNING = {"grace_seconds": 4, "redelivery_margin_seconds": 2, "restore_interval_seconds": 1}
#: F5: the connection limit of the private server (PostgreSQL's default is 100).
PRIVATE_PG_MAX_CONNECTIONS = 30  # read by the private_pg fixture (tests/deploy/conftest.py)
#: F2/F4: the run limit of the ``timed`` flow (``policies.timeout_seconds`` -> dagster/max_runtime).
RUN_LIMIT_SECONDS = 50
SMALL_FLOWS = [f"small_{c}" for c in "abcde"]


@pytest.fixture(scope="module")
def stack(
    private_pg: PrivatePostgres,
    private_redis: PrivateRedis,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    # A factory of its own, closed here: its databases live on private_pg, which must outlive it.
    factory = StackFactory(private_pg.url, tmp_path_factory.mktemp("fault_stacks"), request)
    specs = [
        fan_out_spec("slow", WIDTH, rounds=ROUNDS, long_rounds=LONG_ROUNDS, long_timeout_seconds=18),
        fan_out_spec(
            "timed",
            WIDTH,
            rounds=ROUNDS,
            long_rounds=LONG_ROUNDS,
            long_timeout_seconds=18,
            policies={"timeout_seconds": RUN_LIMIT_SECONDS},
        ),
        *(fan_out_spec(name, 1, rounds=ROUNDS, steps="flow") for name in SMALL_FLOWS),
    ]
    try:
        yield factory.start(
            specs,
            broker_url=private_redis.url(0),
            backend_url=private_redis.url(1),
            workers=2,
            longest_step_seconds=LONGEST_STEP,
            tuning=TUNING,
        )
    finally:
        factory.close()


# --- helpers ----------------------------------------------------------------------------------


def _table() -> str:
    return f"sink_{int(time.time() * 1000)}"


def _settled(stack: Stack) -> None:
    """Wait until no run of an earlier test is still queued or going."""
    stack.wait_for(
        "earlier runs finished",
        lambda: not [r for r in stack.runs() if r.status in NOT_FINISHED],
        bound_seconds=300,
    )


def _sink_rows(stack: Stack, table: str) -> list[dict] | None:
    """The sink table's rows sorted, or None when the sink never ran (no table)."""
    engine = sa.create_engine(stack.env["DP_DB_SINK_URL"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return None
            rows = conn.execute(sa.text(f'SELECT k, total, salt FROM "{table}"')).mappings()
            return sorted((dict(r) for r in rows), key=lambda r: (r["salt"], r["k"]))
    finally:
        engine.dispose()


def _computing(stack: Stack, run_id: str, step: str):
    """The step's execution once its node code runs (input loaded, node child started)."""

    def ready():
        starts = [e for e in stack.step_executions(run_id) if e.step_key == step and e.pid]
        inputs = [r for r in stack.events_of(run_id, DagsterEventType.STEP_INPUT) if r.step_key == step]
        if starts and inputs and len(process_tree(starts[-1].pid)) > 1:
            return starts[-1]
        return None

    return stack.wait_for(f"{step} computing on a worker", ready)


def _chain(stack: Stack, run_id: str, bound_seconds: float = 300) -> list[DagsterRun]:
    """The run and, when it failed, the retries that followed it, each waited until finished."""
    chain = [stack.wait_run(run_id, bound_seconds=bound_seconds)]
    while chain[-1].status == DagsterRunStatus.FAILURE:
        failed = chain[-1].run_id
        retry = wait_for(
            f"a retry of failed run {failed}",
            functools.partial(stack.retry_of, failed),
            timeout=120,
            every=0.3,
            on_timeout=functools.partial(_why_no_retry, stack, failed),
        )
        chain.append(stack.wait_run(retry.run_id, bound_seconds=bound_seconds))
    return chain


def _why_no_retry(stack: Stack, run_id: str) -> str:
    """What the run-retry daemon (Dagster's EventLogConsumerDaemon) had to go on: the run's retry
    tags, the storage ids of its RUN_FAILURE events and the daemon's cursor past which it reads
    them (a retry missed in CI after the 25 s outage, with nothing in the daemon's log)."""
    keys = {f"EVENT_LOG_CONSUMER_CURSOR-{kind.value}" for kind in (DagsterEventType.RUN_FAILURE,)}
    with stack.instance() as instance:
        run = instance.get_run_by_id(run_id)
        failures = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records
        cursors = instance.daemon_cursor_storage.get_cursor_values(keys)
    tags = {k: v for k, v in (run.tags if run else {}).items() if "retr" in k or "fail" in k}
    found = f"retry tags {tags}; RUN_FAILURE storage ids {[r.storage_id for r in failures]}; daemon cursors {cursors}"
    return f"{found}\n{stack.logs()}"


def _messages(stack: Stack, run_id: str) -> str:
    return "\n".join(
        f"{r.user_message} {r.dagster_event.message if r.dagster_event else ''}" for r in stack.records(run_id)
    )


def _warm_worker(stack: Stack, run_id: str) -> dict:
    """The run's warm worker tag (dp_instance.warm_launcher): pid, start time, template pid."""
    with stack.instance() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and WORKER_TAG in run.tags, f"run {run_id} has no warm worker"
        return json.loads(run.tags[WORKER_TAG])


def _no_run_left_going(stack: Stack) -> None:
    assert [(r.run_id, r.status) for r in stack.runs() if r.status in NOT_FINISHED] == []


# --- F10: terminate -----------------------------------------------------------------------------


def test_F10_terminate_stops_the_running_step(stack: Stack, private_redis: PrivateRedis) -> None:
    """F10: ``terminateRun`` through GraphQL while a step computes. The executor revokes the step
    with ``terminate=True``: the pool process gets SIGTERM, Dagster ends the step as interrupted,
    and the node's own processes (its timeout child, the sandbox) are gone. The step never
    finished, its message is not redelivered, nothing downstream ran, the run is CANCELED."""
    _settled(stack)
    table = _table()
    run_id = stack.launch("slow", {"table": table, "long_rounds": ENDLESS_ROUNDS})
    step = _computing(stack, run_id, step_key("slow", "burn_0"))
    node_processes = process_tree(step.pid) - {step.pid}
    assert node_processes, "the node runs in processes of its own (timeout child, sandbox)"

    assert stack.terminate(run_id) == "TerminateRunSuccess"
    run = stack.wait_run(run_id, bound_seconds=120)
    assert run.status == DagsterRunStatus.CANCELED, stack.describe(run_id)
    stack.wait_for("the node's processes gone", lambda: not any(map(pid_alive, node_processes)))

    ends = [
        r
        for r in stack.records(run_id)
        if r.step_key == step.step_key
        and r.dagster_event
        and r.dagster_event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE)
    ]
    assert [r.dagster_event.event_type for r in ends] == [DagsterEventType.STEP_FAILURE]
    error = ends[0].dagster_event.step_failure_data.error
    assert "DagsterExecutionInterruptedError" in error.to_string(), "stopped, not timed out"
    assert not (stack.outputs / run_id / "slow" / "burn_0.arrow").exists()
    assert _sink_rows(stack, table) is None, "nothing downstream of the stopped step ran"
    broker = redis.Redis.from_url(private_redis.url(0))
    try:
        stack.wait_for(
            "the broker holding no message of the run",
            lambda: broker.hlen("unacked") == 0 and broker.llen("dagster") == 0,
            bound_seconds=60,
        )
    finally:
        broker.close()
    _no_run_left_going(stack)


# --- F2: the run worker dies ---------------------------------------------------------------------


def test_F2_run_worker_killed_run_fails_and_retry_completes(stack: Stack) -> None:
    """F2: ``kill -9`` of the run worker mid-run. The run is failed (by run monitoring, which
    asks the warm run launcher whether the worker lives; by the code server for a run it
    started itself; or at the latest once the flow's ``policies.timeout_seconds`` has passed);
    the run-retry daemon re-executes it from failure; the retry succeeds with the right result,
    written once."""
    _settled(stack)
    table = _table()
    run_id = stack.launch("timed", {"table": table, "long_rounds": LONG_ROUNDS})
    _computing(stack, run_id, step_key("timed", "burn_0"))
    worker_pid = stack.run_worker_pid(run_id)
    os.kill(worker_pid, signal.SIGKILL)

    chain = _chain(stack, run_id)
    assert [r.status for r in chain] == [DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS], stack.describe(run_id)
    messages = _messages(stack, run_id)
    # The warm launcher's health check (run monitoring, every 2 s here) or the code server's
    # orphan check for a worker of its own fails the run at once; max runtime is the backstop.
    assert "warm run worker" in messages or "Run execution process" in messages or "maximum runtime" in messages, (
        messages
    )
    retry = chain[-1]
    assert retry.tags.get("dagster/parent_run_id") == run_id
    assert _sink_rows(stack, table) == expected_combined(WIDTH, ROUNDS, LONG_ROUNDS)
    _no_run_left_going(stack)


def test_F2_template_and_run_worker_killed_monitoring_fails_run(stack: Stack) -> None:
    """F2 (no process left to notice): the run worker and the warm template it was forked from
    both die (``kill -9``). Run monitoring's health check (the worker's pid and start time) fails
    the run; the run-retry daemon re-executes it, which starts a new template (the retry itself
    starts cold while it loads); the retry succeeds, the sink written once."""
    _settled(stack)
    # A run launched before the location's template is ready starts cold, not from a template.
    stack.wait_for("a ready warm template", lambda: ready_template(stack.home), bound_seconds=300)
    table = _table()
    run_id = stack.launch("timed", {"table": table, "long_rounds": LONG_ROUNDS})
    _computing(stack, run_id, step_key("timed", "burn_0"))
    worker_pid = stack.run_worker_pid(run_id)
    template_pid = _warm_worker(stack, run_id)["template"]
    assert template_pid > 0, "the run started cold, not from the template"  # os.kill(0) would hit this test
    os.kill(template_pid, signal.SIGKILL)
    os.kill(worker_pid, signal.SIGKILL)

    chain = _chain(stack, run_id)
    assert [r.status for r in chain] == [DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS], stack.describe(run_id)
    assert f"the warm run worker (pid {worker_pid}) is gone" in _messages(stack, run_id)
    # The retry starts cold while a new template loads, or warm from the new one.
    assert json.loads(chain[-1].tags[WORKER_TAG])["template"] != template_pid
    assert _sink_rows(stack, table) == expected_combined(WIDTH, ROUNDS, LONG_ROUNDS)
    _no_run_left_going(stack)


# --- F6 and F7: the broker -------------------------------------------------------------------------


def test_F6_broker_down_at_launch_fails_fast_then_retry_succeeds(stack: Stack, private_redis: PrivateRedis) -> None:
    """F6: with the broker down a launched run fails within 30 s of starting (publishing retries
    are short); once the broker is back, a re-execution from failure succeeds."""
    _settled(stack)
    table = _table()
    private_redis.stop()
    try:
        # No automatic retry here: it would start at once, while the broker is still down.
        run_id = stack.launch("slow", {"table": table}, tags={"dagster/max_retries": "0"})
        run = stack.wait_run(run_id, bound_seconds=180)
    finally:
        private_redis.start()
    assert run.status == DagsterRunStatus.FAILURE, stack.describe(run_id)
    started = stack.events_of(run_id, DagsterEventType.RUN_START)[0].timestamp
    failed = stack.events_of(run_id, DagsterEventType.RUN_FAILURE)[0].timestamp
    assert failed - started <= 30, stack.timeline(run_id)
    assert _sink_rows(stack, table) is None

    # The workers reconnect on their own; the retry's steps wait in the queue until they do.
    retry_id = stack.reexecute(run_id)
    retry = stack.wait_run(retry_id)
    assert retry.status == DagsterRunStatus.SUCCESS, stack.describe(retry_id)
    assert _sink_rows(stack, table) == expected_combined(WIDTH, ROUNDS, LONG_ROUNDS)
    _no_run_left_going(stack)


def test_F7_broker_restart_mid_step_finishes_without_duplicates(stack: Stack, private_redis: PrivateRedis) -> None:
    """F7: Redis restarts (append-only file kept) while a step computes. The run finishes, or
    fails and its retry succeeds; the sink's rows are appended exactly once."""
    _settled(stack)
    table = _table()
    run_id = stack.launch("slow", {"table": table, "long_rounds": LONG_ROUNDS})
    _computing(stack, run_id, step_key("slow", "burn_0"))
    private_redis.restart(down_seconds=2)

    chain = _chain(stack, run_id)
    assert chain[-1].status == DagsterRunStatus.SUCCESS, stack.describe(run_id)
    print(f"F7: {' -> '.join(r.status.value for r in chain)}")
    assert _sink_rows(stack, table) == expected_combined(WIDTH, ROUNDS, LONG_ROUNDS)
    _no_run_left_going(stack)


# --- F5: the connection budget ---------------------------------------------------------------------


class _Sampler(threading.Thread):
    """Calls ``fn`` every ``interval`` seconds until stopped; keeps results and errors."""

    def __init__(self, fn, interval: float) -> None:
        super().__init__(daemon=True)
        self.fn, self.interval = fn, interval
        self.values: list = []
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.values.append(self.fn())
            except Exception as exc:  # noqa: BLE001 - recorded, asserted on by the test
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.halt.wait(self.interval)


def test_F5_ten_runs_and_ui_polling_within_connection_budget(
    stack: Stack, private_pg: PrivatePostgres, record_property
) -> None:
    """F5: 10 concurrent runs (5 flows, 2 runs each, within the queue's limits) while a UI-like
    client polls GraphQL, on a server with max_connections lowered to 30: every run succeeds,
    no process is refused ("too many clients"), and the peak number of connections is kept."""
    _settled(stack)
    ui_query = (
        "{ runsOrError(limit: 20) { ... on Runs { results { runId status stats { "
        "... on RunStatsSnapshot { stepsSucceeded } } } } } }"
    )
    # AUTOCOMMIT: pg_stat_activity is a snapshot per transaction.
    sampling = sa.create_engine(private_pg.url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT").connect()
    peak = _Sampler(lambda: private_pg.connections_by_application(sampling), 0.05)
    ui = _Sampler(lambda: stack.graphql(ui_query), 0.5)
    peak.start()
    ui.start()
    try:
        tables = {}
        run_ids = []
        for name in SMALL_FLOWS:
            for copy in range(2):
                tables[(name, copy)] = table = f"{_table()}_{name}_{copy}"
                run_ids.append(stack.launch(name, {"table": table}))
        runs = [stack.wait_run(run_id, bound_seconds=600) for run_id in run_ids]
    finally:
        peak.halt.set()
        ui.halt.set()
        peak.join()
        ui.join()
        sampling.close()
    busiest = max(peak.values, key=lambda by_app: sum(by_app.values()))
    highest = sum(busiest.values())
    record_property("F5_peak_connections", highest)
    print(f"F5: peak {highest} connections of max_connections={PRIVATE_PG_MAX_CONNECTIONS}: {busiest}")

    assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * 10, stack.logs()
    for table in tables.values():
        assert _sink_rows(stack, table) == expected_combined(1, ROUNDS)
    refused = re.compile(r"too many clients|remaining connection slots", re.IGNORECASE)
    assert not refused.search(private_pg.log_text())
    assert not refused.search(stack.logs(chars=10**7))
    assert not [e for e in ui.errors if refused.search(e)], ui.errors
    assert highest < PRIVATE_PG_MAX_CONNECTIONS


# --- F4: PostgreSQL outages (last: the most destructive) -------------------------------------------


def _outage(private_pg: PrivatePostgres, seconds: float) -> None:
    private_pg.stop()
    try:
        time.sleep(seconds)
    finally:
        private_pg.start()  # waits until it accepts connections


def test_F4_postgres_down_3s_run_succeeds(stack: Stack, private_pg: PrivatePostgres) -> None:
    """F4 (3 s): PostgreSQL stops for 3 s while a step computes; the run still succeeds
    (dagster-postgres retries a connection for about 6 s)."""
    _settled(stack)
    table = _table()
    run_id = stack.launch("slow", {"table": table, "long_rounds": LONG_ROUNDS})
    _computing(stack, run_id, step_key("slow", "burn_0"))
    _outage(private_pg, 3)

    run = stack.wait_run(run_id)
    assert run.status == DagsterRunStatus.SUCCESS, stack.describe(run_id)
    assert _sink_rows(stack, table) == expected_combined(WIDTH, ROUNDS, LONG_ROUNDS)
    _no_run_left_going(stack)


def test_F4_postgres_down_25s_run_fails_then_retry_succeeds(stack: Stack, private_pg: PrivatePostgres) -> None:
    """F4 (25 s): PostgreSQL stops for 25 s while a step computes. The run does not survive it
    (or survives: then nothing is to retry); a failed run is retried after recovery and the
    retry succeeds; no run is left STARTED; the sink's rows are written once."""
    _settled(stack)
    table = _table()
    # A launch right after the 3 s outage: the webserver holds no connection that it killed
    # (``--db-pool-recycle 0``; with the default pool the launch fails or leaves a run behind).
    run_id = stack.launch("timed", {"table": table, "long_rounds": LONG_ROUNDS})
    _computing(stack, run_id, step_key("timed", "burn_0"))
    _outage(private_pg, 25)

    chain = _chain(stack, run_id)
    print(f"F4 (25 s): {' -> '.join(r.status.value for r in chain)}")
    assert chain[-1].status == DagsterRunStatus.SUCCESS, stack.describe(run_id)
    assert _sink_rows(stack, table) == expected_combined(WIDTH, ROUNDS, LONG_ROUNDS)
    for process in ("code-server", "webserver", "daemon", "worker1", "worker2"):
        assert stack.processes[process].alive(), f"{process} did not survive the outage"
    _no_run_left_going(stack)
