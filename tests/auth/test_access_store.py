"""Grants, service tokens and the audit trail in the flow store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from dp_auth.access import AccessStore
from dp_auth.permissions import LOCAL_ADMIN, Action, Forbidden, Kind, Principal, Role
from dp_resources.store.models import ServiceToken
from tests.fuzzing import fuzz_settings


def test_grants_are_checked_stored_replaced_and_audited(store):
    access = AccessStore(store)
    ann = Principal(user="ann", groups=frozenset({"analysts"}))
    with pytest.raises(Forbidden):
        access.check(ann, Action.view, "sales", "daily")

    access.grant(LOCAL_ADMIN, Kind.group, "analysts", "sales", Role.viewer)
    access.grant(LOCAL_ADMIN, Kind.user, "ann", "sales", Role.editor, flow="daily")
    access.check(ann, Action.edit, "sales", "daily")  # the flow's override lifts her
    access.check(ann, Action.view, "sales", "weekly")
    with pytest.raises(Forbidden, match="may not edit flow 'weekly'"):
        access.check(ann, Action.edit, "sales", "weekly")
    with pytest.raises(Forbidden):
        access.check(ann, Action.view, "hr", "daily")  # same flow id, another workspace

    # a second grant to the same identity and place replaces the first
    access.grant(LOCAL_ADMIN, Kind.user, "ann", "sales", Role.viewer, flow="daily")
    with pytest.raises(Forbidden):
        access.check(ann, Action.edit, "sales", "daily")
    assert len(access.grants(ann)) == 2

    # an editor is no admin: she may not grant, and nothing is written when she tries
    with pytest.raises(Forbidden, match="needs role admin"):
        access.grant(ann, Kind.user, "ann", "sales", Role.admin)
    assert access.ungrant(LOCAL_ADMIN, Kind.user, "ann", "sales", flow="daily")
    assert not access.ungrant(LOCAL_ADMIN, Kind.user, "ann", "sales", flow="daily")

    trail = access.audit()
    assert [(e.action, e.actor, e.workspace, e.flow_id, e.detail.get("role")) for e in trail] == [
        ("grant", "local-admin", "sales", "", "viewer"),
        ("grant", "local-admin", "sales", "daily", "editor"),
        ("grant", "local-admin", "sales", "daily", "viewer"),
        ("ungrant", "local-admin", "sales", "daily", "viewer"),
    ]
    assert [e.action for e in access.audit("daily")] == ["grant", "grant", "ungrant"]


def test_a_workspace_admin_grants_only_in_that_workspace(store):
    access = AccessStore(store)
    access.grant(LOCAL_ADMIN, Kind.user, "boss", "sales", Role.admin)
    boss = Principal(user="boss")
    access.grant(boss, Kind.user, "ann", "sales", Role.runner)
    access.grant(boss, Kind.user, "ann", "sales", Role.editor, flow="daily")
    with pytest.raises(Forbidden, match="workspace 'hr'"):
        access.grant(boss, Kind.user, "ann", "hr", Role.viewer)
    with pytest.raises(Forbidden, match=r"workspace '\*'"):
        access.grant(boss, Kind.user, "boss", "*", Role.admin)  # no climbing to platform admin
    with pytest.raises(Forbidden):
        access.create_token(boss, "ci")  # tokens are the platform admins'


def test_tokens_are_hashed_shown_once_scoped_and_revocable(store):
    access = AccessStore(store)
    token_id, text = access.create_token(LOCAL_ADMIN, "nightly loader")
    principal = access.authenticate_token(text)
    assert principal == Principal(token=token_id)
    with store.session() as session:
        row = session.get(ServiceToken, token_id)
        # The secret is what follows "dpt_<16-character id>_"; it may itself hold "_".
        secret = text[len("dpt_") + 17 :]
        assert len(secret) >= 32 and secret not in row.secret_sha256 and len(row.secret_sha256) == 64
        dumped = " ".join(str(v) for v in session.execute(sa.select(ServiceToken.__table__)).one())
    assert text not in dumped and secret not in dumped

    with pytest.raises(Forbidden):
        access.check(principal, Action.view, "sales", "daily")  # a new token holds nothing
    access.grant(LOCAL_ADMIN, Kind.token, token_id, "sales", Role.runner, flow="daily")
    access.check(principal, Action.run, "sales", "daily")
    with pytest.raises(Forbidden):
        access.check(principal, Action.run, "sales", "weekly")
    with pytest.raises(Forbidden):
        access.check(principal, Action.run, "hr", "daily")
    with pytest.raises(Forbidden):
        access.check(principal, Action.edit, "sales", "daily")

    assert access.revoke_token(LOCAL_ADMIN, token_id)
    assert access.authenticate_token(text) is None
    assert access.grants(principal) == []
    assert not access.revoke_token(LOCAL_ADMIN, token_id)
    with pytest.raises(ValueError, match="no service token"):
        access.grant(LOCAL_ADMIN, Kind.token, token_id, "sales", Role.viewer)
    assert [e.action for e in access.audit()] == ["token_create", "grant", "token_revoke"]
    assert all(text not in str(e) for e in access.audit())


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_no_text_but_a_live_token_authenticates(store):
    """Any header value is no principal: text of any shape, well-formed tokens never made, a
    real token's id with another secret, the real token changed by one character, a revoked one."""
    access = AccessStore(store)
    token_id, real = access.create_token(LOCAL_ADMIN, "real")
    revoked_id, revoked = access.create_token(LOCAL_ADMIN, "old")
    access.revoke_token(LOCAL_ADMIN, revoked_id)

    @fuzz_settings(150)
    @given(
        text=st.text(max_size=120)
        | st.from_regex(r"dpt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", fullmatch=True)
        | st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True).map(lambda s: f"dpt_{token_id}_{s}")
        | st.tuples(st.integers(0, len(real) - 1), st.characters()).map(
            lambda edit: real[: edit[0]] + edit[1] + real[edit[0] + 1 :]
        )
        | st.just(revoked)
    )
    def check(text: str) -> None:
        assert access.authenticate_token(text) == (Principal(token=token_id) if text == real else None)

    check()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_bad_names_are_refused_naming_them(store):
    access = AccessStore(store)
    with pytest.raises(ValueError, match="workspace 'Sales!'"):
        access.grant(LOCAL_ADMIN, Kind.user, "ann", "Sales!", Role.viewer)
    with pytest.raises(ValueError, match="flow 'x-y'"):
        access.grant(LOCAL_ADMIN, Kind.user, "ann", "sales", Role.viewer, flow="x-y")
    with pytest.raises(ValueError, match="user name"):
        access.grant(LOCAL_ADMIN, Kind.user, "a\x00b", "sales", Role.viewer)
    assert access.grants() == [] and access.audit() == []
