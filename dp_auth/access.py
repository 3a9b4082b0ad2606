"""Grants, service tokens and the audit trail, kept in the flow store's database (migration 0004).

Every change made here is checked first (only an admin of the place grants there, an admin of
the workspace makes and revokes tokens; ``*`` admins everywhere) and recorded in the audit trail
in the same transaction, so a change is never made without its record.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dp_auth.permissions import (
    EVERY_WORKSPACE,
    Action,
    Grant,
    Kind,
    Principal,
    Role,
    require,
)
from dp_resources.store import FlowStore
from dp_resources.store.models import AuditEntry, Flow, RoleGrant, ServiceToken, utcnow

TOKEN_PREFIX = "dpt_"
#: ``dpt_<id>_<secret>``: the id finds the row, only the secret's SHA-256 is stored.
TOKEN_RE = re.compile(r"^dpt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")
WORKSPACE_RE = re.compile(r"^(\*|[a-z][a-z0-9_-]{0,63})$")
FLOW_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # the spec's FlowId
AUDIT_ACTIONS = frozenset(
    {"publish", "delete", "restore", "unpublish", "grant", "ungrant", "token_create", "token_revoke", "launch"}
)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    label: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    actor: str
    action: str
    workspace: str
    flow_id: str
    detail: dict[str, Any]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_place(workspace: str, flow: str | None) -> None:
    """Refuse a workspace or flow name that could not exist, naming it."""
    if not WORKSPACE_RE.fullmatch(workspace):
        raise ValueError(f"workspace {workspace[:80]!r}: lower case letters, digits, '-' and '_' (or '*')")
    if flow is not None and (workspace == EVERY_WORKSPACE or not FLOW_RE.fullmatch(flow)):
        raise ValueError(f"flow {flow[:80]!r}: a flow id of one workspace (lower case letters, digits and _)")


def _grant_of(row: RoleGrant) -> Grant:
    return Grant(Kind(row.kind), row.name, row.workspace, Role[row.role], row.flow_id or None)


class AccessStore:
    """Grants, tokens and audit of one flow store."""

    def __init__(self, store: FlowStore):
        self.store = store

    # --- reading -----------------------------------------------------------------------------

    def grants(self, principal: Principal | None = None) -> list[Grant]:
        """Every grant, or only those held by ``principal``'s identities."""
        query = sa.select(RoleGrant).order_by(RoleGrant.workspace, RoleGrant.flow_id, RoleGrant.kind, RoleGrant.name)
        if principal is not None:
            identities = principal.identities()
            if not identities:
                return []
            query = query.where(sa.or_(*[(RoleGrant.kind == k.value) & (RoleGrant.name == n) for k, n in identities]))
        with self.store.session() as session:
            return [_grant_of(row) for row in session.scalars(query)]

    def workspace_of(self, flow_id: str) -> str | None:
        with self.store.engine.connect() as conn:
            return conn.execute(sa.select(Flow.workspace).where(Flow.id == flow_id)).scalar()

    def workspaces_of(self, flow_ids: Iterable[str]) -> dict[str, str]:
        """The workspace of each of ``flow_ids`` that is a flow of the store, in one query."""
        wanted = sorted(set(flow_ids))
        if not wanted:
            return {}
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(Flow.id, Flow.workspace).where(Flow.id.in_(wanted)))
            return {flow_id: workspace for flow_id, workspace in rows}

    def check(self, principal: Principal, action: Action, workspace: str, flow: str | None = None) -> None:
        """Raise :class:`Forbidden` unless ``principal`` may do ``action`` there."""
        if principal.local_admin:
            return
        require(principal, self.grants(principal), action, workspace, flow)

    def check_flow(self, principal: Principal, action: Action, flow_id: str, new_in: str = "default") -> str:
        """Check ``action`` on a stored flow (a new one counts as in ``new_in``); its workspace."""
        workspace = self.workspace_of(flow_id) or new_in
        self.check(principal, action, workspace, flow_id)
        return workspace

    def tokens(self) -> list[TokenInfo]:
        with self.store.session() as session:
            rows = session.scalars(sa.select(ServiceToken).order_by(ServiceToken.created_at))
            return [TokenInfo(r.id, r.label, r.created_by, r.created_at, r.revoked_at) for r in rows]

    def authenticate_token(self, text: str | None) -> Principal | None:
        """The token's principal, or None for anything that is not a live token of this store."""
        match = TOKEN_RE.fullmatch(text or "")
        if match is None:
            return None
        token_id, secret = match.groups()
        with self.store.session() as session:
            row = session.get(ServiceToken, token_id)
            # Compared even when the row is missing or revoked, so timing does not tell which.
            stored = row.secret_sha256 if row is not None else _sha256("")
            if not hmac.compare_digest(stored, _sha256(secret)) or row is None or row.revoked_at is not None:
                return None
        return Principal(token=token_id)

    def audit(self, flow_id: str | None = None, *, workspace: str | None = None, limit: int = 200) -> list[AuditRecord]:
        """The newest ``limit`` entries, oldest first."""
        query = sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if flow_id is not None:
            query = query.where(AuditEntry.flow_id == flow_id)
        if workspace is not None:
            query = query.where(AuditEntry.workspace == workspace)
        with self.store.session() as session:
            rows = list(session.scalars(query))
            return [AuditRecord(r.at, r.actor, r.action, r.workspace, r.flow_id, dict(r.detail or {})) for r in rows][
                ::-1
            ]

    # --- writing -----------------------------------------------------------------------------

    def record(
        self,
        actor: Principal | str,
        action: str,
        *,
        workspace: str = "",
        flow_id: str = "",
        detail: dict[str, Any] | None = None,
        session: Session | None = None,
    ) -> None:
        """Add one audit entry (in ``session``'s transaction when given); ``actor`` is a principal
        or, for callers known only by a label (the receiver's shared token), that label."""
        if action not in AUDIT_ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        entry = AuditEntry(
            at=utcnow(),
            actor=actor if isinstance(actor, str) else actor.label,
            action=action,
            workspace=workspace,
            flow_id=flow_id,
            detail=detail or {},
        )
        if session is not None:
            session.add(entry)
            return
        with self.store.session(write=True) as own:
            own.add(entry)

    def grant(self, by: Principal, kind: Kind, name: str, workspace: str, role: Role, flow: str | None = None) -> Grant:
        """Give (or change) ``name``'s role there; ``by`` must be an admin of the place."""
        check_place(workspace, flow)
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"{kind.value} name {name[:80]!r}: 1 to 256 characters, no control characters")
        if kind is Kind.token and not self._live_token(name):
            raise ValueError(f"no service token '{name[:80]}' (see `dp roles tokens`)")
        self.check(by, Action.grant, workspace, flow)
        with self.store.session(write=True) as session:
            row = session.scalars(self._grant_query(kind, name, workspace, flow)).one_or_none()
            if row is None:
                row = RoleGrant(kind=kind.value, name=name, workspace=workspace, flow_id=flow or "")
                session.add(row)
            row.role, row.granted_by, row.granted_at = role.name, by.label, utcnow()
            detail = {"kind": kind.value, "name": name, "role": role.name}
            self.record(by, "grant", workspace=workspace, flow_id=flow or "", detail=detail, session=session)
        return Grant(kind, name, workspace, role, flow)

    def ungrant(self, by: Principal, kind: Kind, name: str, workspace: str, flow: str | None = None) -> bool:
        check_place(workspace, flow)
        self.check(by, Action.grant, workspace, flow)
        with self.store.session(write=True) as session:
            row = session.scalars(self._grant_query(kind, name, workspace, flow)).one_or_none()
            if row is None:
                return False
            session.delete(row)
            detail = {"kind": kind.value, "name": name, "role": row.role}
            self.record(by, "ungrant", workspace=workspace, flow_id=flow or "", detail=detail, session=session)
            return True

    @staticmethod
    def _grant_query(kind: Kind, name: str, workspace: str, flow: str | None) -> Any:
        return sa.select(RoleGrant).where(
            RoleGrant.kind == kind.value,
            RoleGrant.name == name,
            RoleGrant.workspace == workspace,
            RoleGrant.flow_id == (flow or ""),
        )

    def create_token(self, by: Principal, label: str) -> tuple[str, str]:
        """A new token ``(id, text)``; the text is shown once and never stored. It holds no role
        until an admin of a place grants it one (``dp roles grant token ID ...``). Tokens are
        made and revoked by the platform's admins (``*``)."""
        self.check(by, Action.grant, EVERY_WORKSPACE)
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        with self.store.session(write=True) as session:
            session.add(
                ServiceToken(
                    id=token_id,
                    label=label[:256],
                    secret_sha256=_sha256(secret),
                    created_by=by.label,
                    created_at=utcnow(),
                )
            )
            detail = {"token": token_id, "label": label[:256]}
            self.record(by, "token_create", detail=detail, session=session)
        return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}"

    def revoke_token(self, by: Principal, token_id: str) -> bool:
        """Revoke a token at once (it then authenticates nothing); its grants are removed too."""
        self.check(by, Action.grant, EVERY_WORKSPACE)
        with self.store.session(write=True) as session:
            row = session.get(ServiceToken, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            session.execute(sa.delete(RoleGrant).where(RoleGrant.kind == Kind.token.value, RoleGrant.name == token_id))
            self.record(by, "token_revoke", detail={"token": token_id}, session=session)
            return True

    def _live_token(self, token_id: str) -> bool:
        with self.store.session() as session:
            row = session.get(ServiceToken, token_id)
            return row is not None and row.revoked_at is None
