"""Roles in the designer: who the caller is, and the grants an admin lists, gives and takes back.

The same rules as ``dp roles`` (:class:`dp_auth.access.AccessStore`): only an admin of a place
grants there and sees its grants, ``*`` admins everywhere; each change is audited with the
caller as actor. Without roles (the embedded default) the caller is the local admin.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from dp_auth.access import AccessStore
from dp_auth.permissions import Action, Grant, Kind, Principal, Role, allows
from dp_designer.http import ApiError, read_body
from dp_designer.identity import caller

KindName = Literal["user", "group", "token"]
RoleName = Literal["viewer", "runner", "editor", "admin"]


class PlaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: KindName = Field(description="Who holds the grant: a user, a group, or a service token (its id).")
    name: str = Field(min_length=1, max_length=256, description="The user's or group's name, or the token's id.")
    workspace: str = Field(description="The workspace, or '*' for every workspace.")
    flow: str | None = Field(default=None, description="One flow of the workspace; unset: the whole workspace.")


class GrantBody(PlaceBody):
    role: RoleName = Field(description="viewer < runner < editor < admin; each includes the ones below.")


def _grant_json(grant: Grant) -> dict[str, Any]:
    return {
        "kind": grant.kind.value,
        "name": grant.name,
        "workspace": grant.workspace,
        "flow": grant.flow,
        "role": grant.role.name,
    }


def _access(request: Request) -> AccessStore:
    return request.app.state.store_api.access


def _held(access: AccessStore, principal: Principal) -> list[Grant]:
    """The caller's grants; the local admin holds none (it may do anything, unread)."""
    return [] if principal.local_admin else access.grants(principal)


def _me(access: AccessStore, principal: Principal) -> dict[str, Any]:
    held = _held(access, principal)
    return {
        "label": principal.label,
        "user": principal.user,
        "groups": sorted(principal.groups),
        "token": principal.token,
        "local_admin": principal.local_admin,
        "grants": [_grant_json(g) for g in held],
    }


async def me(request: Request) -> JSONResponse:
    """Who the designer takes the caller for, and the grants the caller holds."""
    principal = caller(request)
    return JSONResponse(await run_in_threadpool(_me, _access(request), principal))


def _administered(access: AccessStore, principal: Principal) -> list[dict[str, Any]]:
    held = _held(access, principal)
    return [
        _grant_json(grant)
        for grant in access.grants()
        if principal.local_admin or allows(principal, held, Action.grant, grant.workspace, grant.flow)
    ]


async def list_grants(request: Request) -> JSONResponse:
    """The grants of the places the caller administers (every grant for a ``*`` admin)."""
    principal = caller(request)
    return JSONResponse({"grants": await run_in_threadpool(_administered, _access(request), principal)})


async def grant(request: Request) -> JSONResponse:
    """Give (or change) a role; the caller must be an admin of the place (403 otherwise)."""
    body = await read_body(request, GrantBody)
    access, principal = _access(request), caller(request)
    try:
        given = await run_in_threadpool(
            access.grant, principal, Kind(body.kind), body.name, body.workspace, Role[body.role], body.flow
        )
    except ValueError as exc:  # a place or name that could not exist, an unknown token
        raise ApiError(422, str(exc)) from None
    return JSONResponse(_grant_json(given))


async def revoke(request: Request) -> JSONResponse:
    """Take a grant back; the caller must be an admin of the place (403 otherwise)."""
    body = await read_body(request, PlaceBody)
    access, principal = _access(request), caller(request)
    try:
        removed = await run_in_threadpool(
            access.ungrant, principal, Kind(body.kind), body.name, body.workspace, body.flow
        )
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    return JSONResponse({"removed": removed})
