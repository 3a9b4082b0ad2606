"""The production stack on real services: a flow launched through GraphQL runs on two workers.

Processes as in docker-compose.yml (code server, webserver, daemon, two Celery workers), the
repository's dagster.yaml on a fresh PostgreSQL database, Redis as broker and result backend.
This is the harness of the Celery fault tests (F1, F2, F4-F7, F10), shown working on the
throwaway location ``deploy_celery_location.py``.
"""

from __future__ import annotations

import pickle

import pytest
import sqlalchemy as sa
from dagster import DagsterRunStatus

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

WIDTH = 4


@pytest.mark.parametrize("broker", ["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def test_fan_out_runs_on_both_workers(
    broker: str, celery_stack, fresh_postgres_url: str, request: pytest.FixtureRequest
) -> None:
    """A GraphQL launch succeeds; its steps ran on both workers; its outputs are kept under the
    run's id; the run and every event are rows in PostgreSQL. Redis, then RabbitMQ as broker
    (results stay in Redis)."""
    urls = {}
    if broker == "rabbitmq":
        urls["broker_url"] = request.getfixturevalue("rabbitmq_vhost_url")
    stack = celery_stack(
        workers=2, extra_env={"DP_TEST_WIDTH": str(WIDTH), "DP_TEST_STEP_SECONDS": "2"}, **urls
    )
    run_id = stack.launch("fan_out")
    run = stack.wait_run(run_id)
    assert run.status == DagsterRunStatus.SUCCESS, stack.logs()

    workers = stack.celery_workers_of(run_id)
    steps = {"start", "collect", *(f"work_{i}" for i in range(WIDTH))}
    assert set(workers) == steps
    assert {node.split("@", 1)[0] for node in workers.values()} == {"worker1", "worker2"}

    collected = pickle.loads(
        (stack.home.parent / "outputs" / run_id / "collect" / "result").read_bytes()
    )
    assert [part["index"] for part in collected] == list(range(WIDTH))

    with stack.instance() as instance:
        events = len(instance.all_logs(run_id))
    engine = sa.create_engine(fresh_postgres_url)
    try:
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM runs WHERE run_id = :r"), {"r": run_id}
            ).scalar_one()
            rows = conn.execute(
                sa.text("SELECT count(*) FROM event_logs WHERE run_id = :r"), {"r": run_id}
            ).scalar_one()
    finally:
        engine.dispose()
    assert status == "SUCCESS"
    assert rows == events > 0
