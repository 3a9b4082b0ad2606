"""The designer's JSON API over the real flow store (SQLite and PostgreSQL): what the canvas
relies on — catalog, checks as you draw, drafts, publish, history, diff, restore, listing."""

from __future__ import annotations

import copy

import pandas as pd

from dp_assets.catalog.schema import schema_of
from dp_assets.spec.loading import spec_version
from tests.designer.conftest import SALES


def with_layout(spec, **positions):
    return {**spec, "layout": {node: {"x": x, "y": y} for node, (x, y) in positions.items()}}


def test_catalog_groups_every_node_type_with_its_schema_and_docs(client, store_api):
    body = client.get("/api/catalog").json()
    types = {t["name"]: t for g in body["groups"] for t in g["types"]}
    assert set(types) == set(store_api.catalog)
    assert [g["name"] for g in body["groups"]][:3] == ["source", "transform", "sink"]
    join = types["JoinMerge"]
    assert join["inputs"]["names"] == ["left", "right"]  # distinct handles on the canvas
    assert join["params_schema"] == store_api.catalog["JoinMerge"].params_model.model_json_schema()
    assert "`how`" in join["docs"]
    assert body["flow_schema"]["title"] == "dp-platform flow spec"


def test_validate_maps_errors_to_node_field_and_edge_and_gives_column_schemas(client):
    good = client.post("/api/validate", json={"document": with_layout(SALES, orders=(0, 0))}).json()
    assert good["valid"] and good["version"] == spec_version(SALES)  # the layout is not the spec
    assert good["schemas"]["total"] == {"region": "string", "total": "float"}

    bad = copy.deepcopy(SALES)
    bad["nodes"][1]["params"]["agg"] = {"total": ["amont", "sum"]}
    check = client.post("/api/validate", json={"document": bad}).json()
    assert not check["valid"]
    [error] = check["errors"]
    assert (error["node"], error["field"]) == ("total", "params.agg.total")
    assert "amont" in error["message"]
    assert error["edges"] == [{"source": "orders", "target": "total"}]


def test_a_file_source_without_declared_columns_shows_its_files_columns_and_a_typo_downstream(
    client, tmp_path, monkeypatch
):
    """As ``dp validate --infer-columns``: the canvas labels the source's edge with the columns
    its file has, and a misspelt column downstream is an error on that edge while drawing."""
    monkeypatch.setenv("DP_DATA_DIR", str(tmp_path))
    frame = pd.DataFrame({"region": ["EU", "US"], "amount": [3.0, 4.5]})
    frame.to_parquet(tmp_path / "orders.parquet", index=False)
    flow = {
        "id": "from_file",
        "nodes": [
            {"id": "orders", "type": "FileInput", "params": {"path": "orders.parquet"}},
            {"id": "big", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "amount > 3"}},
        ],
    }
    good = client.post("/api/validate", json={"document": flow}).json()
    assert good["valid"] and good["read_from_files"] == ["orders"] and good["notes"] == []
    assert good["schemas"]["orders"] == schema_of(pd.read_parquet(tmp_path / "orders.parquet"))
    assert good["version"] == spec_version(flow)  # the same version as published: the spec alone

    flow["nodes"][1]["params"]["condition"] = "amont > 3"
    saved = client.put("/api/flows/from_file/draft", json={"document": flow}).json()["check"]
    [error] = saved["errors"]
    assert (error["node"], error["field"]) == ("big", "params.condition") and "amont" in error["message"]
    assert error["edges"] == [{"source": "orders", "target": "big"}]

    flow["nodes"][0]["params"]["path"] = "not_yet.parquet"  # drawn before the file exists
    check = client.post("/api/validate", json={"document": flow}).json()
    assert check["valid"] and check["read_from_files"] == []
    [note] = check["notes"]
    assert note["node"] == "orders" and "not_yet.parquet" in note["message"]


def test_a_draft_is_stored_never_published_and_opens_with_its_layout(client, store_api):
    broken = {"id": "sales", "nodes": [{"id": "orders", "type": "NoSuchNode"}], "layout": {"orders": {"x": 5}}}
    saved = client.put("/api/flows/sales/draft", json={"document": broken})
    assert saved.status_code == 200, saved.text
    assert saved.json()["check"]["errors"][0]["node"] == "orders"
    assert store_api.store.published_specs() == []  # a draft is never compiled
    opened = client.get("/api/flows/sales").json()
    assert opened["stored"] is None
    assert opened["draft"]["document"] == broken
    listed = client.get("/api/flows").json()["flows"]
    assert [(f["id"], f["state"], f["draft"]) for f in listed] == [("sales", "draft", True)]


def test_publish_history_diff_and_restore_as_a_new_draft(client, store_api):
    first = client.post(
        "/api/flows/sales/publish",
        json={"document": with_layout(SALES, orders=(0, 0), total=(200, 0)), "message": "first"},
        headers={"X-Forwarded-User": "ana"},
    )
    assert first.status_code == 200, first.text
    v1 = first.json()["version"]
    assert v1 == spec_version(SALES)  # positions do not change the version
    assert first.json()["reloaded"] is False  # no Dagster here to load the code location again

    moved = client.post(
        "/api/flows/sales/publish", json={"document": with_layout(SALES, orders=(50, 50)), "message": "moved"}
    ).json()
    assert moved["version"] == v1 and not moved["created"]  # only positions changed: same version

    second = copy.deepcopy(SALES)
    second["nodes"][1]["params"]["by"] = ["region"]
    second["nodes"].append(
        {"id": "eu", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "amount > 1"}}
    )
    client.put("/api/flows/sales/draft", json={"document": second})
    v2 = client.post("/api/flows/sales/publish", json={"message": "second"}).json()["version"]
    assert client.get("/api/flows/sales").json()["draft"] is None  # published: the draft is gone

    history = client.get("/api/flows/sales/history").json()["versions"]
    assert [(h["version"], h["message"], h["author"], h["published"]) for h in history] == [
        (v1, "first", "ana", False),
        (v2, "second", None, True),
    ]
    diff = client.get(f"/api/flows/sales/diff?from={v1}&to={v2}").json()
    assert diff["nodes"] == {"added": ["eu"], "removed": [], "changed": [{"id": "total", "fields": ["params.by"]}]}
    assert f"sales@{v1}" in diff["yaml"] and "+- id: eu" in diff["yaml"]

    restored = client.post("/api/flows/sales/restore", json={"version": v1[:8]})
    assert restored.status_code == 201
    assert restored.json()["document"]["layout"] == {"orders": {"x": 50, "y": 50}}
    assert store_api.info("sales").published_version == v2  # restoring publishes nothing
    opened = client.get("/api/flows/sales").json()
    assert opened["draft"]["base_version"] == v1
    assert spec_version({k: v for k, v in opened["draft"]["document"].items() if k != "layout"}) == v1


def test_publishing_an_invalid_document_stores_nothing_and_names_node_and_field(client, store_api):
    bad = copy.deepcopy(SALES)
    bad["nodes"][1]["inputs"] = ["nowhere"]
    answer = client.post("/api/flows/sales/publish", json={"document": bad})
    assert answer.status_code == 422
    assert any(e["node"] == "total" and e["field"] == "inputs[0]" for e in answer.json()["errors"])
    assert store_api.list() == []


def test_listing_shows_versions_state_and_last_run_without_dagster(client):
    client.post("/api/flows/sales/publish", json={"document": SALES})
    [row] = client.get("/api/flows").json()["flows"]
    assert row["state"] == "published" and row["latest_version"] == row["published_version"]
    assert row["last_run_status"] is None and row["errors"] == []


def test_launch_without_dagster_is_a_502_naming_the_webserver(client):
    client.post("/api/flows/sales/publish", json={"document": SALES})
    answer = client.post("/api/flows/sales/runs", json={"params": {}})
    assert answer.status_code == 502
    assert "cannot reach the Dagster webserver" in answer.json()["error"]


def test_a_partitioned_flow_is_launched_with_its_partition(client):
    """A partitioned flow's job takes a partition (Dagster refuses its params without one): the
    launch names the missing field before anything reaches Dagster; with one, the launch goes on
    (to the webserver, down here)."""
    daily = {**SALES, "id": "daily", "partitions": {"type": "time", "cron": "0 0 * * *", "start": "2024-01-01"}}
    assert client.post("/api/flows/daily/publish", json={"document": daily}).status_code == 200
    missing = client.post("/api/flows/daily/runs", json={"params": {}})
    assert missing.status_code == 422 and "'partition'" in missing.json()["error"]
    assert "daily" in missing.json()["error"]
    empty = client.post("/api/flows/daily/runs", json={"params": {}, "partition": ""})
    assert empty.status_code == 422  # a key is never empty
    given = client.post("/api/flows/daily/runs", json={"params": {}, "partition": "2024-01-02"})
    assert given.status_code == 502


def test_refusals_are_4xx_with_a_message(client):
    assert client.get("/api/flows/NOT-an-id").status_code == 404
    assert client.get("/api/flows/missing").status_code == 404
    assert (
        client.put("/api/flows/sales/draft", content=b"{", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert client.put("/api/flows/sales/draft", json={"document": {"id": "other"}}).status_code == 422
    assert client.post("/api/flows/sales/publish", json={}).status_code == 409  # no draft to publish
    assert client.get("/api/flows/sales/diff").status_code == 400
    assert client.get("/api/flows/sales/runs/not%20a%20run").status_code == 404


def test_openapi_document_lists_every_route_with_its_body(client):
    doc = client.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    publish = doc["paths"]["/api/flows/{flow_id}/publish"]["post"]
    assert publish["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PublishBody")
    assert "message" in doc["components"]["schemas"]["PublishBody"]["properties"]
