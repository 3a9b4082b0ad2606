"""``POST /flows/{flow_id}/runs``: one run per Idempotency-Key (reliability test E2).

A real uvicorn server on loopback, real httpx clients in threads, the launch ledger on SQLite
and on the real PostgreSQL, and a launcher that records every call.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from dp_sensors.events.sql import SqlEventBus
from dp_sensors.webhook import IDEMPOTENCY_TAG, LaunchLedger, LaunchRejected, create_app
from dp_sensors.webhook.launches import request_hash

SQL_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
TOKEN = "launch-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AUDIT_TOKEN = "audit-only-secret"  # a per-flow token: opens the flow "audit" alone


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: str
    limit: int = 10


class RecordingLauncher:
    """Records each launch; ``hold`` keeps the first launch busy so that repeats pile up on it."""

    def __init__(self, hold: float = 0.0, failures: list[BaseException] | None = None) -> None:
        self.calls: list[tuple[str, dict, dict]] = []
        self.hold = hold
        self.failures = list(failures or [])
        self._lock = threading.Lock()

    def __call__(self, flow_id: str, params: dict, tags: dict) -> str:
        with self._lock:
            self.calls.append((flow_id, params, tags))
            failure = self.failures.pop(0) if self.failures else None
        time.sleep(self.hold)  # widens the race window; nothing asserts on time
        if failure is not None:
            raise failure
        return f"run-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=SQL_BACKENDS)
def ledger(request: pytest.FixtureRequest) -> Iterator[LaunchLedger]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_schema_url")
    instance = LaunchLedger(url)
    instance.ensure_schema()
    yield instance
    instance.close()


@pytest.fixture
def serve_launches(
    ledger: LaunchLedger, sqlite_url: str, start_server: Callable[..., str]
) -> Iterator[Callable[..., httpx.Client]]:
    """Start the receiver with a launcher; returns a client factory for its base URL."""
    bus = SqlEventBus(sqlite_url)
    bus.ensure_schema()
    clients: list[httpx.Client] = []

    def start(launcher: RecordingLauncher, **options) -> Callable[[], httpx.Client]:
        app = create_app(
            catalog={"report": ReportParams, "audit": ReportParams}.get,
            bus=bus,
            ledger=ledger,
            launcher=launcher,
            environ={"DP_WEBHOOK_TOKEN": TOKEN, "DP_WEBHOOK_TOKEN_AUDIT": AUDIT_TOKEN},
            **options,
        )
        base_url = start_server(app)

        def client() -> httpx.Client:
            clients.append(httpx.Client(base_url=base_url, timeout=120))
            return clients[-1]

        return client

    yield start
    for client in clients:
        client.close()
    bus.close()


def launch(client: httpx.Client, key: str | None, params: dict) -> httpx.Response:
    headers = dict(AUTH) if key is None else {**AUTH, "Idempotency-Key": key}
    return client.post("/flows/report/runs", json={"params": params}, headers=headers)


def test_concurrent_repeats_launch_one_run_E2(serve_launches) -> None:
    """E2: 20 concurrent requests with one key: one launch, and every caller gets its run id."""
    launcher = RecordingLauncher(hold=0.3)
    new_client = serve_launches(launcher)
    callers = 20
    barrier = threading.Barrier(callers)
    responses: list[httpx.Response] = []
    errors: list[BaseException] = []

    def call() -> None:
        client = new_client()
        try:
            barrier.wait()
            responses.append(launch(client, "nightly-2024-01-01", {"day": "2024-01-01"}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(launcher.calls) == 1
    flow_id, params, tags = launcher.calls[0]
    assert (flow_id, params) == ("report", {"day": "2024-01-01"})
    assert tags[IDEMPOTENCY_TAG] == "nightly-2024-01-01"
    assert sorted(r.status_code for r in responses) == [200] * (callers - 1) + [201]
    run_ids = {r.json()["run_id"] for r in responses}
    assert len(run_ids) == 1
    assert sum(r.json()["replayed"] for r in responses) == callers - 1
    later = launch(new_client(), "nightly-2024-01-01", {"day": "2024-01-01"})
    assert later.status_code == 200 and later.json()["run_id"] in run_ids
    assert len(launcher.calls) == 1


def test_a_reused_key_with_another_body_is_a_conflict_E2(serve_launches) -> None:
    launcher = RecordingLauncher()
    client = serve_launches(launcher)()
    first = launch(client, "k1", {"day": "2024-01-01"})
    assert first.status_code == 201
    conflict = launch(client, "k1", {"day": "2024-01-02"})
    assert conflict.status_code == 409 and "k1" in conflict.json()["detail"]
    other = launch(client, "k2", {"day": "2024-01-02"})
    assert other.status_code == 201 and other.json()["run_id"] != first.json()["run_id"]
    assert len(launcher.calls) == 2


REFUSED = [
    ("no-token", {}, {"params": {"day": "d"}}, "report", 401),
    ("unknown-flow", {**AUTH, "Idempotency-Key": "k"}, {"params": {"day": "d"}}, "nope", 404),
    ("no-key", AUTH, {"params": {"day": "d"}}, "report", 400),
    ("key-too-long", {**AUTH, "Idempotency-Key": "k" * 300}, {"params": {"day": "d"}}, "report", 400),
    ("wrong-type", {**AUTH, "Idempotency-Key": "k"}, {"params": {"day": "d", "limit": "x"}}, "report", 422),
    ("unknown-param", {**AUTH, "Idempotency-Key": "k"}, {"params": {"day": "d", "x": 1}}, "report", 422),
    ("unknown-envelope-key", {**AUTH, "Idempotency-Key": "k"}, {"params": {"day": "d"}, "x": 1}, "report", 422),
]


@pytest.mark.parametrize(("headers", "body", "flow", "status"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_launches_launch_nothing(serve_launches, ledger, headers, body, flow, status):
    launcher = RecordingLauncher()
    client = serve_launches(launcher)()
    response = client.post(f"/flows/{flow}/runs", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert launcher.calls == []
    assert ledger.get("k", "report") is None


def test_a_failed_launch_releases_the_key_for_a_retry_E2(serve_launches, ledger) -> None:
    launcher = RecordingLauncher(failures=[ConnectionError("dagster is down")])
    client = serve_launches(launcher)()
    failed = launch(client, "retry-me", {"day": "d"})
    assert failed.status_code == 502 and "dagster is down" in failed.json()["detail"]
    assert ledger.get("retry-me", "report") is None
    retried = launch(client, "retry-me", {"day": "d"})
    assert retried.status_code == 201
    assert ledger.get("retry-me", "report").run_id == retried.json()["run_id"]
    assert len(launcher.calls) == 2


def test_a_rejected_launch_is_422_and_releases_the_key(serve_launches, ledger) -> None:
    launcher = RecordingLauncher(failures=[LaunchRejected("invalid run config: limit")])
    client = serve_launches(launcher)()
    response = launch(client, "bad", {"day": "d"})
    assert response.status_code == 422 and "invalid run config" in response.json()["detail"]
    assert ledger.get("bad", "report") is None


def test_a_dead_owners_reservation_is_taken_over_E2(serve_launches, ledger) -> None:
    """A receiver that died between recording the key and launching does not block it forever."""
    stale = LaunchLedger(ledger._engine, lease_seconds=-1)
    hashed = request_hash("report", {"day": "d"})
    assert stale.reserve("orphan", "report", hashed, owner="dead").won
    launcher = RecordingLauncher()
    client = serve_launches(launcher)()
    response = launch(client, "orphan", {"day": "d"})
    assert response.status_code == 201, response.text
    assert len(launcher.calls) == 1
    assert ledger.get("orphan", "report").run_id == response.json()["run_id"]


def test_a_launch_still_in_progress_answers_503_E2(serve_launches, ledger) -> None:
    """A live reservation without a run id yet: the caller is told to retry with the same key."""
    hashed = request_hash("report", {"day": "d"})
    assert ledger.reserve("busy", "report", hashed, owner="alive").won
    launcher = RecordingLauncher()
    client = serve_launches(launcher, launch_wait_seconds=0.2)()
    response = launch(client, "busy", {"day": "d"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert launcher.calls == []
    assert ledger.complete("busy", "report", "alive", "run-from-owner")
    done = launch(client, "busy", {"day": "d"})
    assert done.status_code == 200 and done.json()["run_id"] == "run-from-owner"


# --- keys are scoped per flow (issue 16) -------------------------------------------------------


def launch_audit(client: httpx.Client, key: str, params: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {AUDIT_TOKEN}", "Idempotency-Key": key}
    return client.post("/flows/audit/runs", json={"params": params}, headers=headers)


def test_one_key_for_two_flows_is_two_runs_E2(serve_launches, ledger) -> None:
    """E2 per flow: the same key sent for two flows launches each once; neither caller learns
    of the other's use (no 409 naming it) and repeats stay one run per flow."""
    launcher = RecordingLauncher()
    client = serve_launches(launcher)()
    report = launch(client, "shared-key", {"day": "2024-01-01"})
    audit = launch_audit(client, "shared-key", {"day": "1999-12-31"})
    assert report.status_code == 201 and audit.status_code == 201, audit.text
    assert report.json()["run_id"] != audit.json()["run_id"]
    assert "report" not in audit.text
    assert launch(client, "shared-key", {"day": "2024-01-01"}).json()["run_id"] == (report.json()["run_id"])
    assert launch_audit(client, "shared-key", {"day": "1999-12-31"}).json()["run_id"] == (audit.json()["run_id"])
    assert [call[0] for call in launcher.calls] == ["report", "audit"]
    assert ledger.get("shared-key", "report").run_id == report.json()["run_id"]
    assert ledger.get("shared-key", "audit").run_id == audit.json()["run_id"]


def test_a_launch_in_progress_does_not_block_another_flows_key_E2(serve_launches, ledger) -> None:
    """A live reservation of flow "report" does not make flow "audit" wait (no 503) or fail."""
    assert ledger.reserve("busy", "report", request_hash("report", {"day": "d"}), "alive").won
    launcher = RecordingLauncher()
    client = serve_launches(launcher, launch_wait_seconds=0.2)()
    response = launch_audit(client, "busy", {"day": "d"})
    assert response.status_code == 201, response.text
    assert launcher.calls[0][0] == "audit"
    assert launch(client, "busy", {"day": "d"}).status_code == 503  # report's own key: waits


def test_a_ledger_of_the_old_layout_is_migrated_to_per_flow_keys(ledger) -> None:
    """A dp_launches table keyed by the key alone (before issue 16) keeps its rows and gains
    the per-flow key on ensure_schema()."""
    import sqlalchemy as sa

    engine = ledger._engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE dp_launches"))
        conn.execute(
            sa.text(
                "CREATE TABLE dp_launches (idempotency_key VARCHAR(255) NOT NULL, flow_id VARCHAR(64) "
                "NOT NULL, request_hash VARCHAR(64) NOT NULL, run_id VARCHAR(64), owner VARCHAR(32) "
                "NOT NULL, created_at TIMESTAMP NOT NULL, lease_expires_at TIMESTAMP NOT NULL, "
                "launched_at TIMESTAMP, CONSTRAINT pk_dp_launches PRIMARY KEY (idempotency_key))"
            )
        )
    old = LaunchLedger(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO dp_launches VALUES ('k', 'report', 'h', 'run-old', 'o', "
                "'2024-01-01 00:00:00', '2024-01-01 00:05:00', '2024-01-01 00:00:01')"
            )
        )
    old.ensure_schema()
    old.ensure_schema()  # idempotent
    assert sa.inspect(engine).get_pk_constraint("dp_launches")["constrained_columns"] == ["flow_id", "idempotency_key"]
    assert old.get("k", "report").run_id == "run-old"
    assert old.reserve("k", "audit", "h2", "new-owner").won
