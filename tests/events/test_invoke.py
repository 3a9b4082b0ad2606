"""``POST /flows/{flow_id}/invoke``, ``GET /runs/{run_id}/result`` and ``dp invoke`` against a real
``dagster dev`` (as ``make run`` starts it) and the real receiver under uvicorn.

The answer's rows are compared with the same operation done directly in pandas; every body a
client can send gets a 2xx or 4xx answer (Hypothesis), never a 5xx or a hang.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dp_assets.catalog import default_catalog
from dp_assets.cli.home import prepare_instance
from dp_assets.invoke_results import result_nodes
from dp_assets.publishing import publish_spec
from dp_resources.store import FlowStore
from dp_sensors.webhook.app import MAX_IDEMPOTENCY_KEY
from dp_sensors.webhook.launches import launches_table
from dp_settings import load
from tests.support.dagster_processes import DagsterPlatform
from tests.support.processes import wait_for
from tests.support.receiver import platform_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TOKEN = "invoke-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = [
    {"region": "EU", "amount": 3},
    {"region": "US", "amount": 10},
    {"region": "EU", "amount": 7},
    {"region": "APAC", "amount": 1},
    {"region": "US", "amount": 4},
]
PRICE_API = {  # five nodes, the shape the bench's invoke workload uses
    "id": "price_api",
    "params": {"min_amount": {"type": "number", "required": True}},
    "nodes": [
        {"id": "rows", "type": "StaticData", "params": {"rows": ROWS}},
        {
            "id": "valid",
            "type": "FilterRows",
            "inputs": ["rows"],
            "params": {"condition": "amount >= params.min_amount"},
        },
        {
            "id": "totals",
            "type": "GroupAggregate",
            "inputs": ["valid"],
            "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
        },
        {"id": "ranked", "type": "SortData", "inputs": ["totals"], "params": {"by": "total", "ascending": False}},
        {"id": "shown", "type": "DisplayResults", "inputs": ["ranked"], "params": {"n": 10}},
    ],
}
MARKED_API = {
    "id": "marked_api",
    "nodes": [
        {"id": "rows", "type": "StaticData", "params": {"rows": ROWS}, "result": True},
        {
            "id": "count",
            "type": "GroupAggregate",
            "inputs": ["rows"],
            "params": {"by": "region", "agg": {"n": ["amount", "count"]}},
        },
        {"id": "shown", "type": "DisplayResults", "inputs": ["count"]},
    ],
}
#: Republished by a test with another result node: kept apart from the flows other tests invoke.
VERSIONED_API = {**MARKED_API, "id": "versioned_api"}
BROKEN_API = {
    "id": "broken_api",
    "nodes": [
        {"id": "orders", "type": "FileInput", "params": {"path": "data/never_came.csv"}},
        {"id": "shown", "type": "DisplayResults", "inputs": ["orders"]},
    ],
}


def expected_totals(min_amount: float) -> list[dict[str, Any]]:
    frame = pd.DataFrame(ROWS)
    frame = frame[frame["amount"] >= min_amount]
    totals = frame.groupby("region", as_index=False).agg(total=("amount", "sum"))
    totals = totals.sort_values("total", ascending=False)
    return json.loads(totals.to_json(orient="records"))


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[DagsterPlatform]:
    root = tmp_path_factory.mktemp("invoke")
    flows = root / "flows"
    flows.mkdir()
    for spec in (PRICE_API, MARKED_API, VERSIONED_API, BROKEN_API):
        (flows / f"{spec['id']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    platform = DagsterPlatform(root=root, flows=flows)
    prepare_instance(platform.dagster_home)  # what `make run` does with `dp init-home`
    try:
        platform.start_dev()
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def receiver(platform: DagsterPlatform) -> Iterator[str]:
    """The receiver as ``dp webhook serve`` builds it, on the platform's store and webserver."""
    settings = load({**platform.env, "DP_WEBHOOK_TOKEN": TOKEN, "DP_INVOKE_MAX_WAIT_SECONDS": "300"})
    with platform_receiver(platform, settings) as url:
        yield url


def invoke(receiver: str, flow_id: str, body: Any, *, headers: dict | None = None, query: str = "") -> httpx.Response:
    return httpx.post(
        f"{receiver}/flows/{flow_id}/invoke{query}",
        json=body,
        headers={**AUTH, **(headers or {})},
        timeout=600,
    )


def test_invoke_answers_with_the_display_results_rows(receiver, platform):
    response = invoke(receiver, "price_api", {"params": {"min_amount": 4}})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "SUCCESS" and answer["flow_id"] == "price_api"
    assert list(answer["result"]) == ["shown"]
    shown = answer["result"]["shown"]
    assert shown["rows"] == expected_totals(4)
    assert shown["columns"] == ["region", "total"] and shown["truncated"] is False
    assert answer["run_url"] == f"{platform.url}/runs/{answer['run_id']}"
    with platform.instance() as instance:
        run = instance.get_run_by_id(answer["run_id"])
    assert run is not None and run.tags["dp/trigger"] == "invoke"


def test_nodes_marked_result_make_the_answer(receiver):
    response = invoke(receiver, "marked_api", {})
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert list(result) == ["rows"]
    assert result["rows"]["rows"] == json.loads(pd.DataFrame(ROWS).to_json(orient="records"))


def test_a_result_is_read_as_the_run_s_flow_version_has_it(receiver, platform):
    """A flow published again after a run, with another result node: the run's result is still
    the nodes its own version marked (the run's ``dp/flow_version`` tag), not the new ones."""
    first = invoke(receiver, "versioned_api", {})
    assert first.status_code == 200, first.text
    run_id = first.json()["run_id"]
    with platform.instance() as instance:
        ran = instance.get_run_by_id(run_id).tags["dp/flow_version"]
    store = FlowStore(platform.store_url)
    nodes = [{**node, "result": node["id"] == "count"} for node in VERSIONED_API["nodes"]]
    validated, _ = publish_spec(store, {**VERSIONED_API, "nodes": nodes}, default_catalog())
    assert validated.version != ran and store.get("versioned_api")[0] == validated.version

    later = httpx.get(f"{receiver}/runs/{run_id}/result", headers=AUTH, timeout=60)
    assert later.status_code == 200, later.text
    assert later.json()["result"] == first.json()["result"]
    assert list(later.json()["result"]) == ["rows"]


def test_a_failed_run_answers_422_naming_the_node(receiver):
    response = invoke(receiver, "broken_api", {})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["status"] == "FAILURE"
    assert answer["error"].startswith("flow 'broken_api', node 'orders' (FileInput) failed: "), answer
    assert "never_came.csv" in answer["error"] and "Traceback" not in answer["error"]
    assert "result" not in answer


def test_past_the_timeout_202_then_the_result_url(receiver):
    response = invoke(receiver, "price_api", {"params": {"min_amount": 0}}, query="?timeout=0")
    assert response.status_code == 202, response.text
    pending = response.json()
    assert response.headers["location"] == pending["result_url"] == f"/runs/{pending['run_id']}/result"

    def finished() -> httpx.Response | None:
        got = httpx.get(f"{receiver}{pending['result_url']}", headers=AUTH, timeout=60)
        return got if got.status_code != 202 else None

    later = wait_for("the invoked run to finish", finished, timeout=600)
    assert later.status_code == 200, later.text
    assert later.json()["result"]["shown"]["rows"] == expected_totals(0)
    assert later.json()["run_id"] == pending["run_id"]


def test_an_idempotency_key_gives_one_run_and_the_same_answer(receiver):
    key = {"Idempotency-Key": f"order-{uuid.uuid4().hex}"}
    first = invoke(receiver, "price_api", {"params": {"min_amount": 5}}, headers=key)
    again = invoke(receiver, "price_api", {"params": {"min_amount": 5}}, headers=key)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json()["run_id"] == first.json()["run_id"]
    assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
    assert again.json()["result"] == first.json()["result"]
    other = invoke(receiver, "price_api", {"params": {"min_amount": 6}}, headers=key)
    assert other.status_code == 409, other.text


def test_a_partition_for_a_flow_without_partitions_is_refused_before_running(receiver, platform):
    """ "partition" in an invoke reaches Dagster as `dp launch --partition` does: price_api has no
    partitions, so the answer is a 422 saying so, and no run is made."""
    before = _launches_kept(platform)
    response = invoke(receiver, "price_api", {"params": {"min_amount": 4}, "partition": "2026-01-01"})
    assert response.status_code == 422, response.text
    assert "flow 'price_api' has no partitions" in response.json()["detail"]
    assert _launches_kept(platform) == before


def test_token_flow_and_run_are_checked(receiver):
    assert (
        invoke(receiver, "price_api", {"params": {"min_amount": 1}}, headers={"Authorization": "Bearer no"}).status_code
        == 401
    )
    assert invoke(receiver, "no_such_flow", {}).status_code == 404
    assert httpx.get(f"{receiver}/runs/{uuid.uuid4()}/result", headers=AUTH).status_code == 404
    assert httpx.get(f"{receiver}/runs/{uuid.uuid4()}/result").status_code == 401
    assert httpx.get(f"{receiver}/runs/..%2f..%2fetc/result", headers=AUTH).status_code in (401, 404)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {"params": st.dictionaries(st.sampled_from(["min_amount", "other"]), JSON, max_size=2)},
        optional={"timeout_seconds": JSON},
    ).map(lambda value: json.dumps(value).encode()),
)
QUERIES = st.sampled_from(["", "?timeout=0", "?timeout=-1", "?timeout=abc", "?timeout=nan", "?timeout=1e999"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, query=QUERIES, key=st.none() | st.text(max_size=300))
def test_any_body_gets_a_2xx_or_4xx_answer(receiver, body, query, key):
    """Invariant: whatever a client sends, the answer is 2xx or 4xx JSON (never 5xx, never a hang:
    the client's own timeout would raise). Bodies that happen to be valid run with ?timeout=0."""
    headers = {**AUTH, "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key.encode("utf-8")  # type: ignore[assignment]  # raw bytes on the wire
    query = query or "?timeout=0"
    try:
        response = httpx.post(f"{receiver}/flows/price_api/invoke{query}", content=body, headers=headers, timeout=120)
    except httpx.LocalProtocolError:  # a header httpx itself refuses to send (e.g. a newline)
        return
    assert 200 <= response.status_code < 500, (response.status_code, response.text)
    assert "detail" in response.json() or "run_id" in response.json()


def _launches_kept(platform: DagsterPlatform) -> int:
    """Rows in the receiver's launch ledger: one per launch it started."""
    engine = sa.create_engine(f"sqlite:///{platform.root / 'launches.db'}")
    try:
        with engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(launches_table)).scalar_one()
    finally:
        engine.dispose()


def _not_a_wait(text: str) -> bool:
    try:
        seconds = float(text)
    except ValueError:
        return True
    return not math.isfinite(seconds) or seconds < 0


PRINTABLE = st.text(st.characters(codec="utf-8"), max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(timeout=PRINTABLE.filter(_not_a_wait))
def test_a_timeout_that_is_not_seconds_is_refused_before_launching(receiver, platform, timeout):
    """Invariant: a ?timeout= that is not a finite number >= 0 is a 422 naming ?timeout=, and no
    run is launched (the ledger gains no row)."""
    before = _launches_kept(platform)
    response = httpx.post(
        f"{receiver}/flows/price_api/invoke",
        params={"timeout": timeout},
        json={"params": {"min_amount": 1}},
        headers=AUTH,
        timeout=60,
    )
    assert response.status_code == 422, (response.status_code, response.text)
    assert "?timeout=" in response.json()["detail"]
    assert _launches_kept(platform) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flow_id=PRINTABLE.filter(lambda text: text not in {"price_api", "marked_api", "broken_api"}))
def test_any_other_flow_id_is_refused_before_launching(receiver, platform, flow_id):
    """Invariant: a path naming no published flow (any text, percent-encoded) is a 4xx JSON answer
    with ``detail`` and launches nothing."""
    before = _launches_kept(platform)
    response = httpx.post(
        f"{receiver}/flows/{quote(flow_id, safe='')}/invoke?timeout=0",
        json={"params": {"min_amount": 1}},
        headers=AUTH,
        timeout=60,
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.headers.get("content-type", "").startswith("application/json"):
        assert "detail" in response.json()
    assert _launches_kept(platform) == before


ASCII = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
BAD_KEYS = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=MAX_IDEMPOTENCY_KEY + 1, max_size=400),
    st.tuples(
        ASCII, st.characters(min_codepoint=0x01, max_codepoint=0x1F).filter(lambda c: c not in "\t\r\n"), ASCII
    ).map("".join),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=BAD_KEYS)
def test_a_bad_idempotency_key_is_refused_before_launching(receiver, platform, key):
    """Invariant: an Idempotency-Key that is too long or holds a control character is a 4xx
    (the receiver's 400, or the HTTP parser's own), and no run is launched."""
    before = _launches_kept(platform)
    try:
        response = httpx.post(
            f"{receiver}/flows/price_api/invoke?timeout=0",
            json={"params": {"min_amount": 1}},
            headers={**AUTH, "Idempotency-Key": key.encode("latin-1")},
            timeout=60,
        )
    except httpx.LocalProtocolError:  # a header httpx itself refuses to send
        return
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.headers.get("content-type", "").startswith("application/json"):
        assert "Idempotency-Key" in response.json()["detail"]
    assert _launches_kept(platform) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run_id=PRINTABLE, authorised=st.booleans())
def test_any_run_id_in_the_result_path_is_a_4xx(receiver, run_id, authorised):
    """Invariant: ``GET /runs/{any text}/result`` for no run of ours is 401 without the token and
    404 with it (a 4xx from the router for paths it cannot route), never a 5xx."""
    response = httpx.get(
        f"{receiver}/runs/{quote(run_id, safe='')}/result", headers=AUTH if authorised else {}, timeout=60
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.json()["detail"] != "Not Found":  # the router's JSON 404 for a path it cannot route
        assert response.status_code == (404 if authorised else 401), response.text


def _dp_invoke(platform: DagsterPlatform, *args: str) -> subprocess.CompletedProcess:
    env = {**platform.env, "DP_DAGSTER_GRAPHQL_URL": platform.graphql_url}
    return subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", "invoke", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=700,
    )


def test_dp_invoke_prints_the_result(platform):
    done = _dp_invoke(platform, "price_api", "--param", "min_amount=3", "--timeout", "600")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["result"]["shown"]["rows"] == expected_totals(3)


def test_dp_invoke_names_the_failing_node(platform):
    done = _dp_invoke(platform, "broken_api", "--timeout", "600")
    assert done.returncode == 1, done.stdout
    assert "node 'orders' (FileInput) failed" in done.stderr and "Traceback" not in done.stderr


def test_dp_invoke_refuses_a_bad_param_without_a_traceback(platform):
    done = _dp_invoke(platform, "price_api", "--param", "nonsense")
    assert done.returncode == 2 and "KEY=VALUE" in done.stderr and "Traceback" not in done.stderr


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": st.sampled_from("abcde"),
                "type": st.sampled_from(["StaticData", "DisplayResults"]),
                "result": st.booleans(),
                "inputs": st.lists(st.sampled_from("abcde"), max_size=2),
            }
        ),
        max_size=6,
    )
)
def test_result_nodes_are_the_marked_else_the_shown_else_the_ends(nodes):
    chosen = result_nodes({"nodes": nodes})
    marked = [n["id"] for n in nodes if n["result"]]
    shown = [n["id"] for n in nodes if n["type"] == "DisplayResults"]
    assert chosen == (marked or shown or [n["id"] for n in nodes if all(n["id"] not in m["inputs"] for m in nodes)])
