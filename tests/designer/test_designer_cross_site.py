"""A page on another site cannot change anything through the designer's API (reliability S3).

A browser sends a "simple" cross-site request without asking the server first (no CORS
preflight): GET, HEAD or POST with no ``Content-Type`` or with ``text/plain``,
``application/x-www-form-urlencoded`` or ``multipart/form-data``. ``fetch(url, {method: 'POST',
mode: 'no-cors', body: new Blob([json])})`` sends a JSON text with no ``Content-Type`` at all.
The embedded designer (``dp designer`` on 127.0.0.1, every caller the local admin) would take
such a body as JSON: any page its user opens could publish a flow, grant a role or launch a run.
So every route that takes a body requires ``Content-Type: application/json`` (415 otherwise),
which a browser sends cross-site only after a preflight the designer never answers with CORS.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from dp_designer.app import API_ROUTES
from tests.designer.conftest import SALES
from tests.fuzzing import fuzz_settings

#: What each body route takes when the caller means it (so only the media type is wrong).
GOOD_BODIES = {
    "/api/validate": {"document": SALES},
    "/api/import": {"text": json.dumps(SALES)},
    "/api/flows/{flow_id}/draft": {"document": SALES},
    "/api/flows/{flow_id}/publish": {"document": {**SALES, "description": "changed cross-site"}},
    "/api/flows/{flow_id}/restore": {"version": "0"},
    "/api/flows/{flow_id}/runs": {"params": {}},
    "/api/flows/{flow_id}/preview": {"document": SALES, "node": "total"},
    "/api/flows/{flow_id}/preview/test-case": {"document": SALES, "node": "total", "name": "case"},
    "/api/roles": {"kind": "user", "name": "mallory", "workspace": "*", "role": "admin"},
    "/api/roles/revoke": {"kind": "user", "name": "mallory", "workspace": "*"},
}
BODY_ROUTES = sorted((path, method) for method, path, _, body in API_ROUTES if body is not None)
#: The media types a browser may send cross-site without a preflight (None: no header at all).
SIMPLE_TYPES = st.sampled_from(
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
).flatmap(lambda kind: st.just(kind) if kind is None else st.sampled_from([kind, f"{kind};charset=UTF-8"]))


def _state(store_api) -> tuple:
    access = store_api.access
    return (store_api.store.published_specs(), store_api.draft("sales"), access.grants(), len(access.audit()))


def test_every_body_route_has_a_good_body_here():
    """A route added with a body gets a case here (the property below covers it then)."""
    assert {path for path, _ in BODY_ROUTES} == set(GOOD_BODIES)


@fuzz_settings(60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(BODY_ROUTES), content_type=SIMPLE_TYPES)
@example(route=("/api/flows/{flow_id}/publish", "POST"), content_type=None)
@example(route=("/api/roles", "POST"), content_type=None)
def test_S3_a_body_a_browser_sends_cross_site_without_preflight_changes_nothing(client, store_api, route, content_type):
    """Any body route, its good body, a media type a browser sends without a preflight: 415, and
    no version, draft, grant or audit row is written. (A browser preflights a PUT whatever its
    type; the route answers the same, so a route's method is no reason to read a body.)"""
    path, method = route
    store_api.publish(SALES)  # a flow to reach: a no-op after the first example
    before = _state(store_api)
    headers = {"origin": "https://evil.example"} | ({"content-type": content_type} if content_type else {})
    body = json.dumps(GOOD_BODIES[path]).encode()
    answer = client.request(method, path.replace("{flow_id}", "sales"), content=body, headers=headers)
    assert answer.status_code == 415, (method, path, content_type, answer.status_code, answer.text[:300])
    assert "application/json" in answer.json()["error"]
    assert _state(store_api) == before


def test_S3_the_same_body_as_json_still_publishes(client, store_api):
    """The control: the designer's own client sends ``application/json`` and is served."""
    store_api.publish(SALES)
    answer = client.post("/api/flows/sales/publish", json=GOOD_BODIES["/api/flows/{flow_id}/publish"])
    assert answer.status_code < 300, answer.text
    assert {flow: spec["description"] for flow, _, spec in store_api.store.published_specs()} == {
        "sales": "changed cross-site"
    }
