"""The designer's API with roles on: each role's can and can't, signed identities, tokens.

In process (Starlette's TestClient) over the real flow store; launches go to a Dagster that is
not running, so a launch the roles allow answers 502 (it got past the check) and one they
refuse answers 403 before anything is sent.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from dp_assets.catalog import default_catalog
from dp_assets.store_api import FlowStoreAPI
from dp_auth.identity import IDENTITY_HEADER, sign_identity, verify_identity
from dp_auth.permissions import LOCAL_ADMIN, Forbidden, Kind, Principal, Role
from dp_designer.app import build_app
from dp_designer.identity import DesignerAuth
from dp_designer.runs_api import RunsService
from tests.designer.conftest import SALES, closed_port
from tests.fuzzing import fuzz_settings

KEY = b"k" * 32
HR = {**SALES, "id": "payroll", "description": "hr only"}


@pytest.fixture
def stack(store):
    api = FlowStoreAPI(store, default_catalog())
    api.publish(SALES, workspace="sales")
    api.publish(HR, workspace="hr")
    access = api.access
    access.grant(LOCAL_ADMIN, Kind.group, "analysts", "sales", Role.viewer)
    access.grant(LOCAL_ADMIN, Kind.user, "rita", "sales", Role.runner)
    access.grant(LOCAL_ADMIN, Kind.user, "ed", "sales", Role.editor)
    runs = RunsService(graphql_url=f"http://127.0.0.1:{closed_port()}/graphql")
    app = build_app(api, runs, client_dist=None, auth=DesignerAuth(access, KEY))
    return TestClient(app, raise_server_exceptions=False), api


def as_user(user: str, *groups: str) -> dict[str, str]:
    return {IDENTITY_HEADER: sign_identity(KEY, user, groups)}


def _publish(client, headers, description):
    body = {"document": {**SALES, "description": description}, "message": description}
    return client.post("/api/flows/sales/publish", json=body, headers=headers)


def test_each_role_through_the_designer_api(stack):
    client, api = stack
    viewer, runner, editor = as_user("vic", "analysts"), as_user("rita"), as_user("ed")

    # no identity, a forged one, an unsigned one: 401, nothing shown
    assert client.get("/api/flows").status_code == 401
    forged = sign_identity(b"another key" * 3, "ed")
    assert client.get("/api/flows", headers={IDENTITY_HEADER: forged}).status_code == 401
    assert client.get("/api/flows", headers={"x-forwarded-user": "ed"}).status_code == 401
    for method, path in [("GET", "/api/catalog"), ("POST", "/api/validate"), ("POST", "/api/import")]:
        assert client.request(method, path, json={}).status_code == 401, path

    # every role sees the sales flow and not hr's; a direct read of hr's flow is refused
    for who in (viewer, runner, editor):
        listed = client.get("/api/flows", headers=who)
        assert [row["id"] for row in listed.json()["flows"]] == ["sales"]
        assert client.get("/api/flows/sales", headers=who).status_code == 200
        refused = client.get("/api/flows/payroll", headers=who)
        assert refused.status_code == 403 and "may not view flow 'payroll' of workspace 'hr'" in refused.json()["error"]
        assert client.get("/api/flows/payroll/history", headers=who).status_code == 403
        assert client.get("/api/flows/payroll/runs", headers=who).status_code == 403

    # a viewer may not launch, save a draft or publish
    assert client.post("/api/flows/sales/runs", json={"params": {}}, headers=viewer).status_code == 403
    assert client.put("/api/flows/sales/draft", json={"document": SALES}, headers=viewer).status_code == 403
    assert _publish(client, viewer, "by a viewer").status_code == 403
    preview = {"node": "total", "document": SALES}
    assert client.post("/api/flows/sales/preview", json=preview, headers=viewer).status_code == 403
    # a runner launches (past the check: Dagster is not running here) but may not publish
    assert client.post("/api/flows/sales/runs", json={"params": {}}, headers=runner).status_code == 502
    assert _publish(client, runner, "by a runner").status_code == 403
    # an editor publishes; the version's author is the signed-in user, not a header they send
    published = _publish(client, {**editor, "x-forwarded-user": "someone else"}, "by ed")
    assert published.status_code == 200, published.text
    assert api.history("sales")[-1].author == "ed"
    # an editor of sales is nobody in hr: publishing hr's flow is refused, even as "sales"
    body = {"document": {**HR, "description": "moved"}}
    assert client.post("/api/flows/payroll/publish", json=body, headers=editor).status_code == 403
    assert api.get("payroll")[1]["description"] == "hr only"

    entries = client.get("/api/flows/sales/audit", headers=viewer).json()["entries"]
    # rita's launch failed (no Dagster here): only what happened is recorded
    assert [(e["actor"], e["action"]) for e in entries] == [("local-admin", "publish"), ("user:ed", "publish")]
    assert client.get("/api/flows/payroll/audit", headers=viewer).status_code == 403
    trail = [(e.actor, e.action, e.flow_id) for e in api.access.audit()]
    assert ("user:ed", "publish", "sales") in trail
    assert not any(actor in ("user:vic", "user:rita") and action == "publish" for actor, action, _ in trail)


def test_service_tokens_at_the_designer(stack):
    client, api = stack
    token_id, text = api.access.create_token(LOCAL_ADMIN, "ci")
    api.access.grant(LOCAL_ADMIN, Kind.token, token_id, "sales", Role.editor, flow="sales")
    bearer = {"authorization": f"Bearer {text}"}
    assert _publish(client, bearer, "by ci").status_code == 200
    assert [row["id"] for row in client.get("/api/flows", headers=bearer).json()["flows"]] == ["sales"]
    api.access.revoke_token(LOCAL_ADMIN, token_id)
    assert client.get("/api/flows", headers=bearer).status_code == 401
    assert _publish(client, bearer, "after revoke").status_code == 401


def test_without_roles_the_designer_is_the_local_admins(store):
    """The embedded default: no login, everything allowed, the proxy's user header is the author."""
    api = FlowStoreAPI(store, default_catalog())
    runs = RunsService(graphql_url=f"http://127.0.0.1:{closed_port()}/graphql")
    client = TestClient(build_app(api, runs, client_dist=None), raise_server_exceptions=False)
    body = {"document": SALES, "message": "first"}
    assert client.post("/api/flows/sales/publish", json=body, headers={"x-forwarded-user": "ann"}).status_code == 200
    assert api.history("sales")[-1].author == "ann"
    assert [e.actor for e in api.access.audit()] == ["local-admin"]


@fuzz_settings(200)
@given(
    user=st.text(min_size=1, max_size=40),
    groups=st.lists(st.text(max_size=20), max_size=4),
    cut=st.integers(0, 400),
    char=st.characters(),
)
def test_a_signed_identity_holds_only_unchanged_and_in_time(user, groups, cut, char):
    value = sign_identity(KEY, user, groups, now=1000.0, ttl=60)
    assert verify_identity(KEY, value, now=1030.0) == Principal(user=user, groups=frozenset(groups))
    assert verify_identity(KEY, value, now=1061.0) is None  # expired
    assert verify_identity(b"x" * 32, value, now=1030.0) is None  # another key
    position = cut % len(value)
    changed = value[:position] + char + value[position + 1 :]
    if changed != value:
        assert verify_identity(KEY, changed, now=1030.0) is None
    assert verify_identity(KEY, value[:position], now=1030.0) is None


def test_the_key_is_required_with_roles_on(store):
    with pytest.raises(ValueError, match="DP_AUTH_IDENTITY_KEY"):
        DesignerAuth(FlowStoreAPI(store, default_catalog()).access, b"")


def _grant_reads(store, action):
    """How many statements reading the grants or the flows' workspaces ``action`` runs."""
    import sqlalchemy as sa

    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        if "dp_role_grants" in statement or statement.lstrip().upper().startswith("SELECT DP_FLOWS.WORKSPACE"):
            seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", note)
    try:
        action()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", note)
    return len(seen)


def test_listing_flows_reads_the_grants_once_however_many_flows(stack):
    """The list runs several checks per flow (view, history, spec): the caller's grants are read
    once per request, not once per check, so the listing's grant reads do not grow with flows."""
    client, api = stack
    viewer = as_user("vic", "analysts")

    def listed():
        answer = client.get("/api/flows", headers=viewer)
        assert answer.status_code == 200
        return [row["id"] for row in answer.json()["flows"]]

    few = _grant_reads(api.store, listed)
    for n in range(6):
        api.publish({**SALES, "id": f"sales_{n}"}, workspace="sales")
        api.put_draft(f"draft_{n}", {**SALES, "id": f"draft_{n}"})  # drafts of new flows: checked too
    api.publish({**HR, "id": "payroll_2"}, workspace="hr")
    many = _grant_reads(api.store, listed)
    assert listed() == ["sales", *(f"sales_{n}" for n in range(6))]
    assert many == few <= 2


def test_a_service_token_the_proxy_names_is_that_token_and_nothing_more():
    """The proxy names a service token it authenticated to the designer by its id, signed; the
    header is no user, and changing it names nobody."""
    from dp_auth.identity import sign_principal

    value = sign_principal(KEY, Principal(token="0123456789abcdef"), now=1000.0)
    assert verify_identity(KEY, value, now=1030.0) == Principal(token="0123456789abcdef")
    assert verify_identity(KEY, value[:-1] + ("A" if value[-1] != "A" else "B"), now=1030.0) is None
    with pytest.raises(ValueError, match="only a user or a service token"):
        sign_principal(KEY, LOCAL_ADMIN)


def test_roles_in_the_designer_for_admins_only(stack):
    """An admin of a workspace lists, gives and takes back its grants (audited, as the admin);
    anyone else is refused; an admin of sales sees nothing of hr's grants and cannot grant there."""
    client, api = stack
    api.access.grant(LOCAL_ADMIN, Kind.user, "ada", "sales", Role.admin)
    api.access.grant(LOCAL_ADMIN, Kind.user, "hal", "hr", Role.viewer)
    ada, ed = as_user("ada"), as_user("ed")

    me = client.get("/api/me", headers=as_user("vic", "analysts")).json()
    assert (me["label"], me["groups"]) == ("user:vic", ["analysts"])
    assert me["grants"] == [{"kind": "group", "name": "analysts", "workspace": "sales", "flow": None, "role": "viewer"}]

    listed = client.get("/api/roles", headers=ada).json()["grants"]
    assert {(g["name"], g["workspace"]) for g in listed} == {
        ("analysts", "sales"),
        ("rita", "sales"),
        ("ed", "sales"),
        ("ada", "sales"),
    }
    assert client.get("/api/roles", headers=ed).json()["grants"] == []  # an editor administers nothing

    body = {"kind": "user", "name": "vic", "workspace": "sales", "flow": "sales", "role": "editor"}
    refused = client.post("/api/roles", json=body, headers=ed)
    assert refused.status_code == 403 and "may not grant" in refused.json()["error"]
    assert client.post("/api/roles", json={**body, "workspace": "hr", "flow": None}, headers=ada).status_code == 403
    assert client.post("/api/roles", json={**body, "role": "owner"}, headers=ada).status_code == 422
    assert client.post("/api/roles", json={**body, "workspace": "Not A Place"}, headers=ada).status_code == 422
    given = client.post("/api/roles", json=body, headers=ada)
    assert given.status_code == 200, given.text
    # vic may now publish the sales flow (the per-flow override lifts her)
    assert _publish(client, as_user("vic", "analysts"), "by vic").status_code == 200

    place = {key: body[key] for key in ("kind", "name", "workspace", "flow")}
    assert client.post("/api/roles/revoke", json=place, headers=ed).status_code == 403
    assert client.post("/api/roles/revoke", json=place, headers=ada).json() == {"removed": True}
    assert client.post("/api/roles/revoke", json=place, headers=ada).json() == {"removed": False}
    assert _publish(client, as_user("vic", "analysts"), "again").status_code == 403
    changes = [
        (e.actor, e.action, e.detail.get("name")) for e in api.access.audit() if e.action in ("grant", "ungrant")
    ]
    assert changes[-2:] == [("user:ada", "grant", "vic"), ("user:ada", "ungrant", "vic")]


def test_a_change_is_checked_against_the_store_not_an_earlier_read(store):
    """One ``dp`` command (or request) that lists, publishes a new flow in a workspace, then reads
    it: the read is checked in the flow's workspace, not in the default one the listing implied."""
    api = FlowStoreAPI(store, default_catalog())
    api.access.grant(LOCAL_ADMIN, Kind.user, "ed", "sales", Role.editor)
    ed = api.acting_as(Principal(user="ed"))
    assert ed.list() == []
    ed.publish(SALES, workspace="sales")
    assert ed.info("sales").workspace == "sales"
    assert [e.workspace for e in api.access.audit() if e.action == "publish"] == ["sales"]
    # the same command goes on: a stored flow's workspace is the store's, never the one it names
    ed.publish({**SALES, "description": "again"}, workspace="default")
    assert ed.info("sales").workspace == "sales"
    viewer = api.acting_as(Principal(user="vic"))
    assert viewer.list() == []
    with pytest.raises(Forbidden):
        viewer.info("sales")
