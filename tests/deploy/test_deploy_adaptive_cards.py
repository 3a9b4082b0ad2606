"""The shipped Adaptive Card pipeline on the production stack, its steps on Celery workers (issue 8).

One stack (``deploy_stack.py``: gRPC code server, webserver, daemon, two single-slot Celery workers
over a Redis of its own (``PrivateRedis``, so that no other test session's workers share its
queue), Dagster's storage in PostgreSQL) loads ``flows/adaptive_cards/card_pipeline.yaml`` as
shipped. The stack runs every flow on Celery (``DP_EXECUTOR=celery``) and the spec has a step per
node (``policies: {steps: node}``), so each node is a Celery task. Its outside world is the one of
the in-process example test (``tests/examples/t2a_stub.py``): the T2A-style stub API on loopback,
which HTTP nodes may reach because the stack allows it (``DP_HTTP_ALLOWED_NETWORKS``), and the
example's tables (``data/setup.sql``) in the stack's fresh sink database (``DP_DB_CARDS_URL``).

A run launched through GraphQL, with the stub's URL as the ``t2a_url`` param, succeeds with every
step executed by a worker; the material, gscm and card tables equal what plain pandas makes of
the stub's data; the organisation that T2A keeps failing (JP20) and its user are recorded as
failed items, listed by ``dp retry-failed --dry-run`` from the production instance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterRunStatus
from deploy_flows import step_key
from deploy_services import PrivateRedis
from deploy_stack import Stack, load_problems

from dp_assets.spec.loading import read_spec_file
from tests.support.processes import PYTHON

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from t2a_stub import (
    ANSWERING,
    FLOW,
    SPEC,
    T2A,
    TOKEN,
    create_tables,
    expected_cards,
    expected_gscm,
    expected_material,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def t2a() -> Iterator[T2A]:
    stub = T2A()
    yield stub
    stub.service.close()


@pytest.fixture(scope="module")
def spec() -> dict:
    """The shipped spec, read as the platform reads it (YAML 1.1's `on:` stays a string key)."""
    return read_spec_file(SPEC)


@pytest.fixture(scope="module")
def stack(private_redis: PrivateRedis, stack_factory, spec: dict) -> Stack:
    return stack_factory.start(
        [spec],
        broker_url=private_redis.url(0),
        backend_url=private_redis.url(1),
        workers=2,
        sink_connections=("sink", "cards"),  # the spec's `connection: cards`, in a fresh database
        extra_env={"DP_HTTP_ALLOWED_NETWORKS": "127.0.0.1/32", "DP_SECRET_T2A_TOKEN": TOKEN},
    )


@pytest.fixture(scope="module")
def cards_db(stack: Stack) -> Iterator[sa.Engine]:
    engine = sa.create_engine(stack.env["DP_DB_CARDS_URL"])
    create_tables(engine)
    yield engine
    engine.dispose()


def materialized(stack: Stack, run_id: str) -> dict[str, dict]:
    """``{node id: {metadata key: plain value}}`` of the run's materialisations."""
    found = {}
    for record in stack.events_of(run_id, DagsterEventType.ASSET_MATERIALIZATION):
        event = record.dagster_event.event_specific_data.materialization
        found[event.asset_key.path[-1]] = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
    return found


def test_adaptive_cards_on_celery_workers(stack: Stack, cards_db: sa.Engine, t2a: T2A, spec: dict) -> None:
    """A GraphQL launch of the shipped flow runs each node on a Celery worker against the T2A stub
    and PostgreSQL; tables equal pandas; the failed organisation and user are recorded."""
    assert load_problems(stack) == ""
    # A partitioned flow takes its params per step (what `dp launch --partition` sends).
    params = {"t2a_url": t2a.service.url}
    run_config = {"ops": {step_key(FLOW, node["id"]): {"config": {"params": params}} for node in spec["nodes"]}}
    run_id = stack.launch(FLOW, run_config, {"dagster/partition": "2026-01-01-12:00"})
    run = stack.wait_run(run_id, bound_seconds=300)
    assert run.status == DagsterRunStatus.SUCCESS, stack.describe(run_id)  # failed items do not fail it

    # Every node ran as its own step on one of the two workers (named in the event log).
    executions = stack.step_executions(run_id)
    nodes = [node["id"] for node in spec["nodes"]]
    assert sorted(e.step_key for e in executions) == sorted(step_key(FLOW, n) for n in nodes), stack.timeline(run_id)
    assert {e.worker_name for e in executions} <= {"worker1", "worker2"}
    assert all(e.pid for e in executions), "each step reached a worker's pool process"

    # Stage 1: one call per active organisation; KR10 retried after its 503; JP20 1 + 3 times.
    assert t2a.calls == {"DE30": 1, "JP20": 4, "KR10": 2, "US40": 1}
    material = pd.read_sql("SELECT * FROM material ORDER BY sales_org, material", cards_db)
    pd.testing.assert_frame_equal(material, expected_material(ANSWERING), check_dtype=False)
    gscm = pd.read_sql("SELECT * FROM gscm ORDER BY sales_org, material", cards_db)
    pd.testing.assert_frame_equal(gscm, expected_gscm(ANSWERING), check_dtype=False)

    # Stage 2: one card per user of an answering organisation, upserted.
    users = pd.read_sql("SELECT * FROM card_users", cards_db)
    saved = pd.read_sql("SELECT * FROM adaptive_cards ORDER BY user_id", cards_db)
    pd.testing.assert_frame_equal(saved.drop(columns="card_json"), expected_cards(users, ANSWERING), check_dtype=False)
    card = json.loads(saved.set_index("user_id").loc["u001", "card_json"])
    assert card["body"][0]["text"] == "Kim Minji: 1 shortage(s) in KR10"

    # The failed organisation and user, on the run and as `dp retry-failed` lists them.
    stored = materialized(stack, run_id)
    assert stored["t2a"]["items"] == 4 and [i["sales_org"] for i in stored["t2a"]["failed_items"]] == ["JP20"]
    assert stored["cards"]["items"] == 6 and [i["user_id"] for i in stored["cards"]["failed_items"]] == ["u003"]
    listed = subprocess.run(
        [PYTHON, "-m", "dp_assets.cli", "retry-failed", run_id, "--dry-run"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted((e["for_each"], e.get("sales_org") or e.get("user_id")) for e in lines) == [
        ("cards", "u003"),
        ("t2a", "JP20"),
    ]
