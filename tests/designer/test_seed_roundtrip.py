"""Every example flow under flows/ opened in the designer and saved unchanged keeps its
content-hash version: through the real API over the real store, as the client does it (open,
lay out the nodes, save the draft, publish). Dropped files and the past-runs list are here too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dp_assets.publishing import import_folder, spec_files
from dp_assets.spec.loading import read_spec_file

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def as_javascript_sends_it(value):
    """What JSON.stringify gives back for a value the browser parsed: one number type, so an
    integral float (``20.0``) comes back as an integer (``20``)."""
    if isinstance(value, dict):
        return {k: as_javascript_sends_it(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_javascript_sends_it(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


SEEDS = sorted(spec_files(FLOWS))


def test_the_seed_examples_are_found():
    assert len(SEEDS) >= 8, SEEDS


def test_every_seed_example_round_trips_through_the_designer_without_changing_its_version(client, store_api):
    report = import_folder(store_api.store, FLOWS, store_api.catalog)
    assert report.problems == {}
    for path in SEEDS:
        flow_id = read_spec_file(path)["id"]
        opened = client.get(f"/api/flows/{flow_id}").json()
        version, document = opened["stored"]["version"], opened["stored"]["document"]
        # The client lays out a flow without positions when it opens it: positions are no change.
        laid_out = {**document, "layout": {n["id"]: {"x": 10 * i, "y": 0} for i, n in enumerate(document["nodes"])}}
        laid_out = as_javascript_sends_it(laid_out)
        checked = client.post("/api/validate", json={"document": laid_out, "base_version": version}).json()
        assert checked["version"] == version, path
        saved = client.put(f"/api/flows/{flow_id}/draft", json={"document": laid_out, "base_version": version})
        assert saved.status_code == 200, (path, saved.text)
        assert saved.json()["check"]["version"] == version, path
        published = client.post(
            f"/api/flows/{flow_id}/publish", json={"document": laid_out, "message": "opened and saved"}
        )
        assert published.status_code == 200, (path, published.text)
        assert published.json()["version"] == version and not published.json()["created"], path
        assert [v["version"] for v in client.get(f"/api/flows/{flow_id}/history").json()["versions"]] == [version]


def test_a_float_the_browser_sent_as_an_integer_is_a_float_again_where_unchanged(client, store_api):
    spec = {
        "id": "floats",
        "params": {"min_amount": {"type": "number", "default": 20.0}},
        "nodes": [{"id": "rows", "type": "StaticData", "params": {"rows": [{"a": 1.0, "b": 2.5}, {"a": 3.0, "b": 4}]}}],
    }
    version = store_api.publish(spec).version
    sent = as_javascript_sends_it(spec)
    assert client.post("/api/validate", json={"document": sent, "base_version": version}).json()["version"] == version
    # a value the user changed is taken as sent, the others keep their type
    sent["nodes"][0]["params"]["rows"][0]["a"] = 7
    changed = client.post("/api/validate", json={"document": sent, "base_version": version}).json()
    expected = json.loads(json.dumps(spec))
    expected["nodes"][0]["params"]["rows"][0]["a"] = 7
    from dp_assets.spec.loading import spec_version

    assert changed["version"] == spec_version(expected)


@st.composite
def json_values(draw):
    return draw(
        st.recursive(
            st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6) | st.text(max_size=4),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
            max_leaves=25,
        )
    )


@settings(max_examples=300, deadline=None)
@given(reference=json_values(), edit=json_values())
def test_keeping_the_reference_numbers_restores_every_unchanged_float(reference, edit):
    """Invariants: the browser's copy of a value gets back exactly the value (same canonical
    JSON, so the same version); and a value that differs from the reference stays as sent
    (equal in value: nothing the user typed is lost)."""
    from dp_assets.spec.loading import canonical_json
    from dp_designer.numbers import with_reference_numbers

    restored = with_reference_numbers(as_javascript_sends_it(reference), reference)
    assert canonical_json({"v": restored}) == canonical_json({"v": reference})
    kept = with_reference_numbers(edit, reference)
    assert kept == edit


@pytest.mark.parametrize("path", [FLOWS / "customer_orders.json", FLOWS / "maxdp" / "sales_dashboard.json"])
def test_a_dropped_export_reads_as_the_spec_loader_reads_it_with_its_positions(client, path):
    text = path.read_text(encoding="utf-8")
    answer = client.post("/api/import", json={"text": text, "filename": path.name})
    assert answer.status_code == 200, answer.text
    document = answer.json()["document"]
    layout = document.pop("layout")
    assert document == read_spec_file(path)
    raw_positions = {n["id"]: n["position"] for n in json.loads(text)["nodes"] if "position" in n}
    assert layout == {k: {"x": round(v["x"]), "y": round(v["y"])} for k, v in raw_positions.items()}
    assert answer.json()["positions"] is bool(raw_positions)


def test_a_dropped_file_that_is_no_spec_is_a_422_naming_the_file(client):
    for text in ("[1, 2]", "nodes: {a: 1", "{" * 500, ""):
        answer = client.post("/api/import", json={"text": text, "filename": "mine.json"})
        assert answer.status_code == 422, (text[:20], answer.text)
        assert "mine.json" in answer.json()["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
            max_leaves=20,
        ).map(lambda v: json.dumps({"nodes": v} if not isinstance(v, dict) else v)),
    )
)
def test_any_dropped_text_is_a_document_or_a_4xx(client, text):
    """Invariant: any text is read as a document with a layout of numeric positions, or refused
    with a 4xx and a message; never a 5xx."""
    answer = client.post("/api/import", json={"text": text, "filename": "dropped.yaml"})
    # 422 for text that is no spec; 400 for a body the receiver's JSON rules refuse (a NUL).
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, answer.text
    if answer.status_code == 200:
        layout = answer.json()["document"]["layout"]
        assert all(isinstance(p["x"], int | float) and isinstance(p["y"], int | float) for p in layout.values())
    else:
        assert answer.json()["error"]


def test_past_runs_without_dagster_are_a_502_naming_the_webserver(client):
    answer = client.get("/api/flows/sales/runs")
    assert answer.status_code == 502 and "cannot reach" in answer.json()["error"]
