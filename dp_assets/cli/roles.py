"""``dp roles`` (grants and service tokens) and ``dp audit`` (who did what)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import click

from dp_auth.access import AccessStore
from dp_auth.permissions import EVERY_WORKSPACE, Forbidden, Kind, Principal, Role

T = TypeVar("T")
KINDS = click.Choice([k.value for k in Kind])
ROLES = click.Choice([r.name for r in Role])


def _access() -> tuple[AccessStore, Principal]:
    from dp_assets.cli.identity import cli_actor
    from dp_resources.store import FlowStore
    from dp_settings import current

    store = FlowStore(current().store_url())
    store.upgrade()
    access = AccessStore(store)
    return access, cli_actor(access)


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except (Forbidden, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def roles() -> None:
    """Roles per workspace and flow, and service tokens (docs/security.md, "Roles")."""


@roles.command("list")
@click.option("--workspace", default=None, help="Only grants on this workspace.")
def list_grants(workspace: str | None) -> None:
    """Every grant: workspace, flow (- for the whole workspace), identity and role."""
    access, _ = _access()
    for grant in access.grants():
        if workspace is None or grant.workspace == workspace:
            click.echo(
                f"{grant.workspace:16} {grant.flow or '-':24} {grant.kind.value}:{grant.name:24} {grant.role.name}"
            )


@roles.command("grant")
@click.argument("kind", type=KINDS)
@click.argument("name")
@click.argument("role", type=ROLES)
@click.option("--workspace", default="default", show_default=True, help="The workspace, or '*' for every one.")
@click.option("--flow", default=None, help="Only this flow of the workspace (an override).")
def grant(kind: str, name: str, role: str, workspace: str, flow: str | None) -> None:
    """Give KIND (user, group or token) NAME the ROLE on a workspace or one of its flows."""
    access, actor = _access()
    made = _call(lambda: access.grant(actor, Kind(kind), name, workspace, Role[role], flow))
    click.echo(f"{made.kind.value}:{made.name} is {made.role.name} on {_place(made.workspace, made.flow)}")


@roles.command("revoke")
@click.argument("kind", type=KINDS)
@click.argument("name")
@click.option("--workspace", default="default", show_default=True)
@click.option("--flow", default=None)
def revoke(kind: str, name: str, workspace: str, flow: str | None) -> None:
    """Take KIND NAME's grant on a workspace (or one of its flows) away."""
    access, actor = _access()
    removed = _call(lambda: access.ungrant(actor, Kind(kind), name, workspace, flow))
    where = _place(workspace, flow)
    click.echo(f"{kind}:{name} holds no grant on {where} now" if removed else f"{kind}:{name} had no grant on {where}")


@roles.command("token-create")
@click.argument("label")
def token_create(label: str) -> None:
    """Make a service token (printed once, stored hashed); it holds no role until granted one."""
    access, actor = _access()
    token_id, text = _call(lambda: access.create_token(actor, label))
    click.echo(f"token {token_id} ({label}); give it roles with `dp roles grant token {token_id} ROLE ...`", err=True)
    click.echo(text)


@roles.command("token-revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a service token at once: it authenticates nothing after, its grants are gone."""
    access, actor = _access()
    revoked = _call(lambda: access.revoke_token(actor, token_id))
    click.echo(f"token {token_id}: revoked" if revoked else f"token {token_id}: no live token of that id")


@roles.command("tokens")
def tokens() -> None:
    """Every service token: id, state, who made it and when, label (never the secret)."""
    access, _ = _access()
    for info in access.tokens():
        state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "live"
        click.echo(f"{info.id}  {state:22} {info.created_by:24} {info.created_at:%Y-%m-%d %H:%M}  {info.label}")


def _place(workspace: str, flow: str | None) -> str:
    if flow:
        return f"flow '{flow}' of workspace '{workspace}'"
    return "every workspace" if workspace == EVERY_WORKSPACE else f"workspace '{workspace}'"


@click.command()
@click.option("--flow", default=None, help="Only this flow's entries.")
@click.option("--workspace", default=None, help="Only this workspace's entries.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit(flow: str | None, workspace: str | None, limit: int, as_json: bool) -> None:
    """Who published, deleted, restored, launched and changed roles: the newest entries, oldest first."""
    access, _ = _access()
    for entry in access.audit(flow, workspace=workspace, limit=limit):
        if as_json:
            row = {
                "at": entry.at.isoformat(),
                "actor": entry.actor,
                "action": entry.action,
                "workspace": entry.workspace,
                "flow": entry.flow_id,
                "detail": entry.detail,
            }
            click.echo(json.dumps(row, sort_keys=True))
        else:
            what = " ".join(f"{k}={v}" for k, v in sorted(entry.detail.items()))
            where = entry.flow_id or entry.workspace or "-"
            click.echo(f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.actor:28} {entry.action:13} {where:24} {what}")
