"""Previews of a draft ("run up to this node") and previews kept as ``dp test`` cases, through the
designer's API over the real store, the platform's node implementations and its sandbox. Each
preview's table is compared with pandas computing the same thing directly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from dp_assets.flowtest import FlowTestRunner
from dp_assets.publishing import import_folder
from dp_designer.app import build_app
from dp_designer.previews import PreviewService
from dp_designer.runs_api import RunsService
from tests.designer.conftest import closed_port

ORDERS = [
    {"order_id": i, "region": region, "amount": amount}
    for i, (region, amount) in enumerate(
        [("EU", 10.0), ("US", 55.5), ("EU", 70.25), ("APAC", 5.0), ("US", 99.0), ("EU", 31.0), ("APAC", 60.0)], 1
    )
]

FLOW = {
    "id": "shop",
    "params": {"min_amount": {"type": "number", "default": 20.0}},
    "nodes": [
        {"id": "orders", "type": "StaticData", "params": {"rows": ORDERS}},
        {
            "id": "big",
            "type": "FilterRows",
            "inputs": ["orders"],
            "params": {"condition": "amount >= params.min_amount"},
        },
        {
            "id": "per_region",
            "type": "GroupAggregate",
            "inputs": ["big"],
            "params": {"by": "region", "agg": {"revenue": ["amount", "sum"], "orders": ["order_id", "count"]}},
        },
        {"id": "report", "type": "FileWriter", "inputs": ["per_region"], "params": {"path": "out/report.csv"}},
        {
            "id": "tell",
            "type": "SendNotification",
            "inputs": ["per_region"],
            "params": {"channel": "webhook", "webhook": "${env:DP_TEST_HOOK}", "message": "{row_count} regions"},
        },
    ],
}


def expected_per_region(orders: list[dict], min_amount: float) -> pd.DataFrame:
    frame = pd.DataFrame(orders)
    frame = frame[frame["amount"] >= min_amount]
    out = frame.groupby("region", as_index=False).agg(revenue=("amount", "sum"), orders=("order_id", "count"))
    return out.sort_values("region").reset_index(drop=True)


def as_frame(view: dict) -> pd.DataFrame:
    assert view["kind"] == "table"
    return pd.DataFrame(view["rows"], columns=[c["name"] for c in view["columns"]])


@pytest.fixture
def flows_root(tmp_path) -> Path:
    root = tmp_path / "flows"
    root.mkdir()
    return root


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("DP_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def previews(store_api, flows_root, data_dir):
    service = PreviewService(store_api.catalog, flows_root)
    yield service
    service.close()


@pytest.fixture
def api(store_api, previews) -> TestClient:
    runs = RunsService(graphql_url=f"http://127.0.0.1:{closed_port()}/graphql")
    app = build_app(store_api, runs, client_dist=None, previews=previews)
    return TestClient(app, raise_server_exceptions=False)


def test_preview_up_to_a_node_on_a_sample_equals_pandas_and_runs_only_its_upstreams(api):
    answer = api.post(
        "/api/flows/shop/preview",
        json={"document": FLOW, "node": "per_region", "sample_rows": 5, "params": {"min_amount": 30}},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] and body["problems"] == [] and body["stand_ins"] == []
    got = as_frame(body["outputs"]["result"]).sort_values("region").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected_per_region(ORDERS[:5], 30), check_dtype=False)
    # The source as the preview saw it: its first 5 rows.
    assert body["sources"]["orders"]["row_count"] == 5
    assert [r["order_id"] for r in body["sources"]["orders"]["rows"]] == [1, 2, 3, 4, 5]


def test_preview_on_the_flows_data_uses_every_row_and_the_params_default(api):
    body = api.post("/api/flows/shop/preview", json={"document": FLOW, "node": "per_region"}).json()
    got = as_frame(body["outputs"]["result"]).sort_values("region").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected_per_region(ORDERS, 20.0), check_dtype=False)
    assert body["sources"]["orders"]["row_count"] == len(ORDERS)


def test_a_preview_never_runs_a_sink(api, data_dir):
    for sink in ("report", "tell"):
        body = api.post("/api/flows/shop/preview", json={"document": FLOW, "node": sink}).json()
        assert body["ok"], body
        assert body["stand_ins"] == [sink]
        # A stand-in's value is what it would have written or sent.
        got = as_frame(body["outputs"]["result"]).sort_values("region").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected_per_region(ORDERS, 20.0), check_dtype=False)
    assert list(data_dir.rglob("*")) == []  # the FileWriter wrote nothing


def test_a_preview_past_its_time_is_a_504_and_the_next_one_still_answers(api, data_dir, monkeypatch):
    """An editor is never left waiting on a preview: past PREVIEW_SECONDS the answer is a 504 that
    says what to do, nothing is written, and the service answers the next preview."""
    import dp_designer.previews as previews_module

    monkeypatch.setattr(previews_module, "PREVIEW_SECONDS", 0.0)
    late = api.post("/api/flows/shop/preview", json={"document": FLOW, "node": "report"})
    assert late.status_code == 504 and "row sample" in late.json()["error"], late.text
    monkeypatch.setattr(previews_module, "PREVIEW_SECONDS", 120.0)
    body = api.post("/api/flows/shop/preview", json={"document": FLOW, "node": "per_region"}).json()
    assert body["ok"], body
    got = as_frame(body["outputs"]["result"]).sort_values("region").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected_per_region(ORDERS, 20.0), check_dtype=False)
    assert list(data_dir.rglob("*")) == []


#: Nodes that never end on their own (DuckDB has no time limit of its own).
ENDLESS_NODES = [
    {"type": "SqlTransform", "params": {"query": "SELECT sum(range) AS s FROM range(1000000000000000)"}},
    {"type": "SqlTransform", "params": {"query": "SELECT count(*) AS n FROM range(100000000) a, range(100000000) b"}},
    {
        "type": "SqlTransform",
        "params": {"query": "SELECT sum(range) AS s FROM range(1000000000000000)"},
        "timeout_seconds": 1e9,  # its own limit is longer than a preview's
    },
]


@pytest.mark.parametrize("endless", ENDLESS_NODES, ids=["range", "cross-join", "own-limit-longer"])
def test_a_preview_that_never_ends_frees_the_previews_of_every_flow(api, monkeypatch, endless):
    """Previews run one at a time: a node that never ends used to hold the one preview thread
    for good, so every later preview of every flow answered 504 until the designer restarted.
    Each node of a preview is held to PREVIEW_SECONDS (its own limit when smaller), so the next
    preview runs once that has passed."""
    import time

    import dp_designer.previews as previews_module

    monkeypatch.setattr(previews_module, "PREVIEW_SECONDS", 3.0)
    stuck = {"id": "stuck", "nodes": [*FLOW["nodes"][:1], {"id": "spin", "inputs": ["orders"], **endless}]}
    late = api.post("/api/flows/stuck/preview", json={"document": stuck, "node": "spin"})
    assert late.status_code == 504, late.text
    started = time.monotonic()
    answer = api.post("/api/flows/shop/preview", json={"document": FLOW, "node": "per_region"})
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    assert time.monotonic() - started < 30


@settings(max_examples=50, deadline=None)
@given(
    own=st.none() | st.floats(min_value=1e-3, max_value=1e12) | st.integers(1, 10**12) | st.just("{{ params.t }}"),
    limit=st.floats(min_value=0.5, max_value=3600),
)
def test_every_previewed_node_is_held_to_the_previews_limit(own, limit):
    """Any node's own ``timeout_seconds`` (none, shorter, longer, a template): the preview's copy
    has a limit, never past the preview's, its own when shorter; the flow's spec is not changed."""
    from dp_designer.previews import time_limited

    node = {"id": "n", "type": "StaticData", "params": {}, **({} if own is None else {"timeout_seconds": own})}
    raw = {"id": "f", "nodes": [node]}
    (held,) = time_limited(raw, limit)["nodes"]
    assert 0 < held["timeout_seconds"] <= limit
    if isinstance(own, int | float) and own < limit:
        assert held["timeout_seconds"] == own
    assert raw["nodes"][0] is node and node.get("timeout_seconds") == own


def test_preview_of_the_saved_draft_and_of_a_failing_node(api):
    broken = {**FLOW, "nodes": [*FLOW["nodes"][:1], {**FLOW["nodes"][1], "params": {"condition": "amount / 0 > 1"}}]}
    assert api.put("/api/flows/shop/draft", json={"document": FLOW}).status_code == 200
    assert api.post("/api/flows/shop/preview", json={"node": "big"}).json()["ok"]  # the saved draft
    body = api.post("/api/flows/shop/preview", json={"document": broken, "node": "big"}).json()
    if not body["ok"]:  # a division by zero is inf in pandas: either way the answer is a 200, not a 500
        assert body["problems"] and "big" in " ".join(body["problems"])


def test_preview_refusals_name_what_is_wrong(api):
    unknown = api.post("/api/flows/shop/preview", json={"document": FLOW, "node": "nope"})
    assert unknown.status_code == 422 and "no node 'nope'" in unknown.json()["error"]
    invalid = {**FLOW, "nodes": [*FLOW["nodes"][:1], {**FLOW["nodes"][1], "params": {"condition": "no_such > 1"}}]}
    answer = api.post("/api/flows/shop/preview", json={"document": invalid, "node": "big"})
    assert answer.status_code == 422 and answer.json()["errors"][0]["node"] == "big"
    assert (
        api.post("/api/flows/shop/preview", json={"document": FLOW, "node": "big", "sample_rows": 0}).status_code == 422
    )
    assert api.post("/api/flows/other/preview", json={"document": FLOW, "node": "big"}).status_code == 422
    assert api.post("/api/flows/ghost/preview", json={"node": "big"}).status_code == 404
    params = api.post("/api/flows/shop/preview", json={"document": FLOW, "node": "big", "params": {"min_amount": "x"}})
    assert params.status_code == 200 and not params.json()["ok"] and "params" in params.json()["problems"][0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.fixed_dictionaries(
        {"node": st.text(max_size=80)},
        optional={
            "sample_rows": st.one_of(st.integers(-5, 200_000), st.floats(allow_nan=False, allow_infinity=False)),
            "params": st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=3),
            "name": st.text(max_size=120),
            "extra": st.none(),
        },
    )
)
def test_any_preview_body_is_answered_without_a_server_error(api, body):
    """Invariant: whatever the body, a preview or test-case request answers 2xx or 4xx with a message."""
    for route in ("preview", "preview/test-case"):
        answer = api.post(f"/api/flows/shop/{route}", json={"document": FLOW, **body})
        assert answer.status_code < 500, answer.text
        if answer.status_code >= 400:
            assert answer.json()["error"]


def test_a_preview_kept_as_a_test_case_passes_dp_test_beside_the_spec_file(api, store_api, flows_root):
    spec_file = flows_root / "shop.yaml"
    spec_file.write_text(yaml.safe_dump(FLOW, sort_keys=False), encoding="utf-8")
    tests = flows_root / "tests"
    tests.mkdir()
    # A hand-written test file: its comment and its case stay as they are.
    (tests / "shop.yaml").write_text(
        "# hand-written\nflow: shop\ncases:\n  - name: all rows\n    expect: {per_region: {rows: 3}}\n",
        encoding="utf-8",
    )
    import_folder(store_api.store, flows_root, store_api.catalog)

    request = {"node": "per_region", "sample_rows": 4, "params": {"min_amount": 5}, "name": "first four"}
    answer = api.post("/api/flows/shop/preview/test-case", json=request)
    assert answer.status_code == 201, answer.text
    written = Path(answer.json()["file"])
    assert written == tests / "shop.yaml"
    text = written.read_text(encoding="utf-8")
    assert text.startswith("# hand-written\nflow: shop\ncases:\n  - name: all rows\n")
    case = answer.json()["case"]
    assert case["fixtures"]["orders"]["rows"] == ORDERS[:4]
    assert set(case["sinks"]) == {"report", "tell"}

    with FlowTestRunner(flows_root=flows_root) as runner:
        results = runner.run_file(spec_file, written)
    assert [(r.case, r.passed, r.problems) for r in results] == [("all rows", True, []), ("first four", True, [])]

    again = api.post("/api/flows/shop/preview/test-case", json=request)
    assert again.status_code == 409 and "first four" in again.json()["error"]
    assert written.read_text(encoding="utf-8") == text  # a refused write leaves the file whole


def test_a_test_case_of_a_flow_without_a_spec_file_is_only_in_the_answer(api, flows_root):
    request = {"document": FLOW, "node": "big", "sample_rows": 3, "name": "three rows"}
    answer = api.post("/api/flows/shop/preview/test-case", json=request)
    assert answer.status_code == 200, answer.text
    assert answer.json()["file"] is None and "no spec file" in answer.json()["note"]
    assert "name: three rows" in answer.json()["yaml"]
    assert list(flows_root.rglob("*")) == []
    too_big = api.post("/api/flows/shop/preview/test-case", json={**request, "sample_rows": 5000, "name": "x"})
    assert too_big.status_code == 200  # 7 rows: under the limit of a case's fixture


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_sample_reads_only_the_first_rows_of_a_file(api, data_dir, engine):
    """A row sample is pushed into the source's read: a CSV whose declared columns fix its types
    is read up to the sample (a broken line further on is never reached, where the whole read
    fails naming the file), and a Parquet source (which DuckDB reads itself in a duckdb flow) is
    cut to the sample too; the rows are the first rows of the file, as pandas reads them."""
    orders = pd.DataFrame(
        {
            "order_id": range(1, 2001),
            "region": ["EU", "US", "APAC", "EU"] * 500,
            "amount": [float(n % 97) for n in range(2000)],
        }
    )
    csv = data_dir / "orders.csv"
    csv.write_text(orders.to_csv(index=False) + '2001,"EU,never closed\n')
    orders.to_parquet(data_dir / "orders.parquet", row_group_size=100)
    declared = {"order_id": "integer", "region": "string", "amount": "float"}
    for source in ({"path": "orders.csv", "columns": declared}, {"path": "orders.parquet"}):
        flow = {
            "id": "files",
            "policies": {"engine": engine},
            "nodes": [
                {"id": "orders", "type": "FileInput", "params": source},
                {"id": "big", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "amount >= 40"}},
            ],
        }
        sampled = api.post("/api/flows/files/preview", json={"document": flow, "node": "big", "sample_rows": 300})
        assert sampled.status_code == 200, sampled.text
        body = sampled.json()
        assert body["ok"], body["problems"]
        assert body["sources"]["orders"]["row_count"] == 300
        first = orders.head(300)
        assert body["outputs"]["result"]["row_count"] == int((first["amount"] >= 40).sum())
    whole = api.post(
        "/api/flows/files/preview",
        json={
            "document": {
                **flow,
                "nodes": [
                    {**flow["nodes"][0], "params": {"path": "orders.csv", "columns": declared}},
                    flow["nodes"][1],
                ],
            },
            "node": "big",
        },
    )
    assert not whole.json()["ok"] and "orders.csv" in str(whole.json()["problems"]), whole.text
