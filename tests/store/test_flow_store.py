"""Flow store round trips on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from dp_assets.catalog import default_catalog
from dp_assets.publishing import publish_spec
from dp_assets.spec.validation import FlowValidationError
from dp_resources.store import FlowNotFound

SPEC = {"id": "stored", "nodes": [{"id": "a", "type": "StaticData", "params": {"rows": [{"x": 1}]}}]}


def test_round_trip_and_versions(store):
    catalog = default_catalog()
    v1, first = publish_spec(store, SPEC, catalog, message="first")
    assert first.created and first.published
    _, again = publish_spec(store, dict(reversed(list(SPEC.items()))), catalog)
    assert not again.created and not again.published  # unchanged spec: no new version

    changed = {**SPEC, "description": "now described"}
    v2, second = publish_spec(store, changed, catalog, message="second")
    assert second.created and v2.version != v1.version

    assert store.get("stored") == (v2.version, v2.raw)
    assert store.get("stored", v1.version[:6]) == (v1.version, v1.raw)
    history = store.history("stored")
    assert [(h.version, h.message, h.published) for h in history] == [
        (v1.version, "first", False),
        (v2.version, "second", True),
    ]
    assert store.published_specs() == [("stored", v2.version, v2.raw)]

    store.publish("stored", v1.version)  # roll back: the newer version is kept
    assert store.get("stored")[0] == v1.version
    assert [h.version for h in store.history("stored")] == [v1.version, v2.version]
    assert store.list_flows()[0].versions == 2


def test_invalid_spec_is_never_stored(store):
    with pytest.raises(FlowValidationError):
        publish_spec(store, {**SPEC, "nodes": [{"id": "a", "type": "Nope"}]}, default_catalog())
    assert store.list_flows() == []
    with pytest.raises(FlowNotFound, match="no flow 'stored'"):
        store.get("stored")


def test_upgrade_is_idempotent_and_concurrent_saves_agree(store):
    store.upgrade()
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(publish_spec(store, SPEC, default_catalog())[1]))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1
    assert len(store.history("stored")) == 1
