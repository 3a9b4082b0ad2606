"""Any body on any write route of the designer's API is answered with 2xx or a 4xx carrying a
message — never a 500 — and a refused write changes nothing that was stored."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.designer.conftest import SALES
from tests.fuzzing import fuzz_settings

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
NODE_KEYS = st.sampled_from(["id", "type", "inputs", "params", "on_error", "description", "position"])


@st.composite
def mutated_specs(draw):
    """The example flow with a few values replaced by arbitrary JSON: near-valid documents reach
    deep into validation, where arbitrary ones stop at the first check."""
    spec = copy.deepcopy(SALES)
    for _ in range(draw(st.integers(0, 3))):
        node = draw(st.sampled_from(spec["nodes"]))
        node[draw(NODE_KEYS)] = draw(JSON)
    if draw(st.booleans()):
        spec["layout"] = draw(JSON)
    if draw(st.booleans()):
        spec[draw(st.sampled_from(["params", "edges", "triggers", "policies", "id"]))] = draw(JSON)
    return spec


DOCUMENTS = mutated_specs() | JSON
ROUTES = {
    ("POST", "/api/validate"): st.fixed_dictionaries({"document": DOCUMENTS}),
    ("PUT", "/api/flows/sales/draft"): st.fixed_dictionaries({"document": DOCUMENTS}, optional={"base_version": JSON}),
    ("POST", "/api/flows/sales/publish"): st.fixed_dictionaries({}, optional={"document": DOCUMENTS, "message": JSON}),
    ("POST", "/api/flows/sales/restore"): st.fixed_dictionaries({"version": JSON}),
    ("POST", "/api/flows/sales/runs"): st.fixed_dictionaries({}, optional={"params": JSON, "partition": JSON}),
}


@st.composite
def requests(draw):
    route = draw(st.sampled_from(sorted(ROUTES)))
    body = draw(ROUTES[route] | JSON)
    return route, body


@fuzz_settings(150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=requests())
def test_every_body_gets_an_answer_not_a_500(client, store_api, request):
    (method, path), body = request
    before = store_api.store.published_specs()
    answer = client.request(method, path, json=body)
    # 502: the launch route's "Dagster is not running here" (the test runs none), after the body passed
    upstream_down = path.endswith("/runs") and answer.status_code == 502
    assert answer.status_code < 500 or upstream_down, (answer.status_code, answer.text[:500])
    if answer.status_code >= 400:
        assert answer.json()["error"]
        assert store_api.store.published_specs() == before  # a refused write stored nothing


def _nested(depth: int, container: str) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"k": value} if container == "object" else [value]
    return value


@fuzz_settings(40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(0, 70), container=st.sampled_from(["object", "list"]))
def test_the_designer_takes_any_document_as_deep_as_a_spec_may_be(client, store_api, depth, container):
    """A value nested to any depth in a StaticData row: the designer's check gives the same
    verdict as the spec's own (``dp publish``), and a document the spec takes is saved. The
    designer used to refuse every body deeper than the receiver's 32 levels, so a flow published
    with ``dp`` opened in the designer and could never be saved, checked or published from it."""
    from dp_assets.spec.validation import FlowValidationError, validate_spec

    spec = copy.deepcopy(SALES)
    spec["nodes"][0]["params"]["rows"][0]["nested"] = _nested(depth, container)
    try:
        validate_spec(spec, store_api.catalog, check_compiles=False)
        accepted = True
    except FlowValidationError:
        accepted = False
    answer = client.post("/api/validate", json={"document": spec})
    saved = client.put("/api/flows/sales/draft", json={"document": spec})
    if accepted:
        assert answer.status_code == 200 and answer.json()["valid"], (depth, answer.text[:300])
        assert saved.status_code == 200, (depth, saved.status_code, saved.text[:200])
    else:  # refused by the spec's own check, or (deeper still) by the body's bound: a 4xx naming it
        refused = answer.status_code in (400, 422) or not answer.json()["valid"]
        assert refused and "deeper" in answer.text, (depth, answer.status_code, answer.text[:300])
