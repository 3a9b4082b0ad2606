"""The permission check: a pure function of who asks, what they hold, and what they touch.

Roles are ordered: ``viewer`` < ``runner`` < ``editor`` < ``admin``; each includes the ones
below it. A grant gives one identity (a user, a group, or a service token) a role on a whole
workspace, on one flow of a workspace, or on every workspace (``*``: the platform's admins).

Which grants count for a flow: the most specific level at which any of the caller's identities
holds a grant wins outright (flow, then workspace, then ``*``), and within that level the
highest role. So a per-flow grant is an *override*: it can lift a workspace viewer to editor on
one flow, or hold a workspace editor to viewer on a sensitive one. A grant never reaches another
flow or another workspace. A revoked or unknown token holds nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

#: The workspace of a grant that holds on every workspace.
EVERY_WORKSPACE = "*"


class Role(enum.IntEnum):
    viewer = 1  # see flows, runs, kept outputs and logs
    runner = 2  # launch with params, re-run, cancel
    editor = 3  # save drafts, publish, delete, restore
    admin = 4  # grant roles, make and revoke service tokens

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown role {name!r}: choose one of {', '.join(r.name for r in cls)}") from None


class Action(enum.Enum):
    """What a request does to a flow, and the least role that may do it."""

    view = Role.viewer
    run = Role.runner
    edit = Role.editor
    grant = Role.admin

    @property
    def needs(self) -> Role:
        return Role(self.value)


class Kind(enum.Enum):
    user = "user"
    group = "group"
    token = "token"


@dataclass(frozen=True)
class Grant:
    kind: Kind
    name: str
    workspace: str
    role: Role
    flow: str | None = None  # None: the whole workspace

    @property
    def level(self) -> int:
        """How specific the grant is: 2 a flow, 1 a workspace, 0 every workspace."""
        if self.flow is not None:
            return 2
        return 0 if self.workspace == EVERY_WORKSPACE else 1

    def covers(self, workspace: str, flow: str | None) -> bool:
        if self.flow is not None:
            return self.workspace == workspace and self.flow == flow
        return self.workspace in (workspace, EVERY_WORKSPACE)


@dataclass(frozen=True)
class Principal:
    """Who asks: a user with their groups, or a service token (by its id)."""

    user: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    token: str | None = None
    #: The embedded default: one local admin, no login (docs/security.md).
    local_admin: bool = False

    @property
    def label(self) -> str:
        """How the audit trail names the caller."""
        if self.local_admin:
            return "local-admin"
        if self.token is not None:
            return f"token:{self.token}"
        return f"user:{self.user}"

    def identities(self) -> set[tuple[Kind, str]]:
        found: set[tuple[Kind, str]] = set()
        if self.token is not None:
            # A token acts with its own roles only, never with its maker's.
            found.add((Kind.token, self.token))
            return found
        if self.user is not None:
            found.add((Kind.user, self.user))
            found.update((Kind.group, group) for group in self.groups)
        return found


LOCAL_ADMIN = Principal(local_admin=True)


def effective_role(
    principal: Principal, grants: Iterable[Grant], workspace: str, flow: str | None = None
) -> Role | None:
    """The role ``principal`` holds on ``flow`` of ``workspace`` (the workspace itself when
    ``flow`` is None), or None."""
    if principal.local_admin:
        return Role.admin
    mine = principal.identities()
    best: tuple[int, Role] | None = None
    for grant in grants:
        if (grant.kind, grant.name) not in mine or not grant.covers(workspace, flow):
            continue
        candidate = (grant.level, grant.role)
        if best is None or candidate > best:
            best = candidate
    return best[1] if best else None


def allows(
    principal: Principal, grants: Iterable[Grant], action: Action, workspace: str, flow: str | None = None
) -> bool:
    role = effective_role(principal, grants, workspace, flow)
    return role is not None and role >= action.needs


class Forbidden(Exception):
    """The caller may not do this; the message names who, what and where (never a secret)."""

    def __init__(self, principal: Principal, action: Action, workspace: str, flow: str | None):
        where = f"flow '{flow}' of workspace '{workspace}'" if flow else f"workspace '{workspace}'"
        super().__init__(f"{principal.label} may not {action.name} {where} (needs role {action.needs.name})")
        self.action, self.workspace, self.flow = action, workspace, flow


def require(
    principal: Principal, grants: Iterable[Grant], action: Action, workspace: str, flow: str | None = None
) -> None:
    if not allows(principal, grants, action, workspace, flow):
        raise Forbidden(principal, action, workspace, flow)
