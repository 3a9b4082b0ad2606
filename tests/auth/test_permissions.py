"""The permission check's promises, over any set of grants (Hypothesis).

Each property is one a user relies on: a higher role never loses a right, a flow's override
never reaches another flow or workspace, a token acts with its own grants only, a principal
with no matching grant can do nothing, and the local admin (the embedded default) can do all.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_auth.permissions import (
    EVERY_WORKSPACE,
    LOCAL_ADMIN,
    Action,
    Forbidden,
    Grant,
    Kind,
    Principal,
    Role,
    allows,
    effective_role,
    require,
)
from tests.fuzzing import fuzz_settings

WORKSPACES = ["sales", "hr", "ops"]
FLOWS = ["daily", "payroll", "report"]
USERS = ["ann", "bob", "cy"]
GROUPS = ["analysts", "admins", "ops"]
TOKENS = ["0123456789abcdef", "fedcba9876543210"]

roles = st.sampled_from(list(Role))
actions = st.sampled_from(list(Action))
workspaces = st.sampled_from(WORKSPACES)
flows = st.none() | st.sampled_from(FLOWS)


@st.composite
def grants(draw) -> Grant:
    kind = draw(st.sampled_from(list(Kind)))
    name = draw(st.sampled_from({Kind.user: USERS, Kind.group: GROUPS, Kind.token: TOKENS}[kind]))
    workspace = draw(st.sampled_from([*WORKSPACES, EVERY_WORKSPACE]))
    flow = None if workspace == EVERY_WORKSPACE else draw(flows)
    return Grant(kind, name, workspace, draw(roles), flow)


principals = st.one_of(
    st.builds(Principal, user=st.sampled_from(USERS), groups=st.frozensets(st.sampled_from(GROUPS), max_size=2)),
    st.builds(Principal, token=st.sampled_from(TOKENS)),
)
grant_sets = st.lists(grants(), max_size=8)


@fuzz_settings(300)
@given(principal=principals, held=grant_sets, index=st.integers(0, 7), workspace=workspaces, flow=flows)
def test_raising_a_role_never_takes_a_right_away(principal, held, index, workspace, flow):
    if not held:
        return
    index %= len(held)
    raised = [*held]
    raised[index] = replace(held[index], role=Role(min(held[index].role + 1, Role.admin)))
    for action in Action:
        if allows(principal, held, action, workspace, flow):
            assert allows(principal, raised, action, workspace, flow)


@fuzz_settings(300)
@given(principal=principals, role=roles, action=actions)
def test_each_role_includes_the_ones_below(principal, role, action):
    (kind, name), *_ = sorted(principal.identities(), key=lambda i: i[0].value)
    granted = [Grant(kind, name, "sales", role)]
    assert allows(principal, granted, action, "sales") == (role >= action.needs)


@fuzz_settings(300)
@given(principal=principals, held=grant_sets, override=grants(), workspace=workspaces, flow=flows)
def test_a_flow_grant_never_reaches_another_flow_or_workspace(principal, held, override, workspace, flow):
    """Adding a grant on one flow changes nothing anywhere else."""
    if override.flow is None or (override.workspace, override.flow) == (workspace, flow):
        return
    assert effective_role(principal, [*held, override], workspace, flow) == effective_role(
        principal, held, workspace, flow
    )


@fuzz_settings(300)
@given(principal=principals, held=grant_sets, other=grants(), workspace=workspaces, flow=flows)
def test_a_workspace_grant_never_reaches_another_workspace(principal, held, other, workspace, flow):
    if other.flow is not None or other.workspace in (workspace, EVERY_WORKSPACE):
        return
    assert effective_role(principal, [*held, other], workspace, flow) == effective_role(
        principal, held, workspace, flow
    )


@fuzz_settings(300)
@given(
    user=st.sampled_from(USERS),
    groups=st.frozensets(st.sampled_from(GROUPS)),
    token=st.sampled_from(TOKENS),
    held=grant_sets,
    workspace=workspaces,
    flow=flows,
)
def test_a_token_acts_with_its_own_grants_only(user, groups, token, held, workspace, flow):
    """A token grants nothing its own grants do not (whoever made it), and the user's grants
    never depend on a token's."""
    as_token = Principal(token=token)
    own = [g for g in held if g.kind is Kind.token and g.name == token]
    assert effective_role(as_token, held, workspace, flow) == effective_role(as_token, own, workspace, flow)
    person = Principal(user=user, groups=groups)
    not_tokens = [g for g in held if g.kind is not Kind.token]
    assert effective_role(person, held, workspace, flow) == effective_role(person, not_tokens, workspace, flow)


@fuzz_settings(300)
@given(principal=principals, held=grant_sets, workspace=workspaces, flow=flows, action=actions)
def test_without_a_matching_grant_nothing_is_allowed(principal, held, workspace, flow, action):
    mine = principal.identities()
    others = [g for g in held if (g.kind, g.name) not in mine]
    assert not allows(principal, others, action, workspace, flow)
    assert not allows(Principal(), held, action, workspace, flow)  # no identity at all


@fuzz_settings(200)
@given(held=grant_sets, workspace=workspaces, flow=flows, action=actions)
def test_the_local_admin_may_do_everything(held, workspace, flow, action):
    assert allows(LOCAL_ADMIN, held, action, workspace, flow)


@fuzz_settings(300)
@given(principal=principals, held=grant_sets, workspace=workspaces, flow=st.sampled_from(FLOWS), role=roles)
def test_a_flow_override_decides_for_that_flow(principal, held, workspace, flow, role):
    """A grant on the flow to one of the caller's identities wins over any workspace grant,
    lower or higher: an override can hold an editor to viewer on a sensitive flow."""
    (kind, name), *_ = sorted(principal.identities(), key=lambda i: i[0].value)
    without_flow_grants = [g for g in held if g.flow is None]
    result = effective_role(
        principal, [*without_flow_grants, Grant(kind, name, workspace, role, flow)], workspace, flow
    )
    assert result == role


def test_the_refusal_names_who_what_and_where():
    viewer = Principal(user="ann")
    held = [Grant(Kind.user, "ann", "sales", Role.viewer)]
    require(viewer, held, Action.view, "sales", "daily")
    with pytest.raises(
        Forbidden, match=r"user:ann may not run flow 'daily' of workspace 'sales' \(needs role runner\)"
    ):
        require(viewer, held, Action.run, "sales", "daily")
    with pytest.raises(Forbidden, match="workspace 'hr'"):
        require(viewer, held, Action.view, "hr")


def test_roles_parse_by_name_and_refuse_others():
    assert Role.parse("runner") is Role.runner
    with pytest.raises(ValueError, match="unknown role 'owner': choose one of viewer, runner, editor, admin"):
        Role.parse("owner")
