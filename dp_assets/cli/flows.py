"""``dp validate``, ``publish``, ``list``, ``history``, ``show`` and ``diff``."""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

import click
import yaml

from dp_assets.catalog import default_catalog
from dp_assets.publishing import publish_spec, spec_files
from dp_assets.spec.loading import SpecLoadError, read_spec_file
from dp_assets.spec.validation import FlowValidationError, validate_spec
from dp_resources import settings
from dp_resources.store import FlowNotFound, FlowStore


def _store() -> FlowStore:
    store = FlowStore(settings.store_url())
    store.upgrade()
    return store


def _expand(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files.extend(spec_files(path) if path.is_dir() else [path])
    return files


@click.command()
@click.argument("paths", nargs=-1, required=True)
def validate(paths: tuple[str, ...]) -> None:
    """Check spec files (or folders of them); exit 1 listing every error when any is bad.

    Every file is checked whatever the others hold: a file that breaks the checker itself is
    reported as that file's failure (never a traceback that hides the rest)."""
    catalog = default_catalog()
    bad = 0
    for path in _expand(paths):
        try:
            validated = validate_spec(read_spec_file(path), catalog)
            click.echo(f"ok    {path}  flow '{validated.id}' version {validated.version}")
        except (SpecLoadError, FlowValidationError) as exc:
            bad += 1
            click.echo(f"FAIL  {path}\n{exc}", err=True)
        except Exception as exc:  # noqa: BLE001 - one file's failure must not hide the others
            bad += 1
            click.echo(f"FAIL  {path}\n  could not be checked ({type(exc).__name__}: {exc}); "
                       "please report this spec", err=True)
    if bad:
        click.echo(f"{bad} invalid spec(s)", err=True)
        sys.exit(1)


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--workspace", default="default", show_default=True)
@click.option("--message", "-m", default="", help="Why this version exists.")
def publish(paths: tuple[str, ...], workspace: str, message: str) -> None:
    """Validate and store specs as new versions, and publish them."""
    store, catalog, bad = _store(), default_catalog(), 0
    for path in _expand(paths):
        try:
            validated, result = publish_spec(store, read_spec_file(path), catalog,
                                             workspace=workspace, message=message)
        except (SpecLoadError, FlowValidationError) as exc:
            bad += 1
            click.echo(f"FAIL  {path}\n{exc}", err=True)
            continue
        state = "new version" if result.created else "unchanged"
        click.echo(f"{validated.id}: {state} {result.version}" + (", published" if result.published else ""))
    if bad:
        sys.exit(1)


@click.command("list")
def list_flows() -> None:
    """Flows in the store with their published version."""
    for info in _store().list_flows():
        click.echo(f"{info.id:32} {info.workspace:12} {info.published_version or '-':18} "
                   f"{info.versions} version(s)  {info.updated_at:%Y-%m-%d %H:%M}")


@click.command()
@click.argument("flow")
def history(flow: str) -> None:
    """Every stored version of a flow, oldest first; * marks the published one."""
    try:
        for v in _store().history(flow):
            click.echo(f"{'*' if v.published else ' '} {v.version}  {v.created_at:%Y-%m-%d %H:%M:%S}  {v.message}")
    except FlowNotFound as exc:
        raise click.ClickException(str(exc)) from exc


def _spec_text(flow: str, version: str | None, fmt: str) -> tuple[str, str]:
    try:
        found, spec = _store().get(flow, version)
    except FlowNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    text = json.dumps(spec, indent=2, sort_keys=True) if fmt == "json" else yaml.safe_dump(spec, sort_keys=False)
    return found, text


@click.command()
@click.argument("flow")
@click.option("--version", default=None, help="A version or its prefix (default: published).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
def show(flow: str, version: str | None, fmt: str) -> None:
    """Print a stored spec."""
    click.echo(_spec_text(flow, version, fmt)[1], nl=False)


@click.command()
@click.argument("flow")
@click.argument("v1")
@click.argument("v2")
def diff(flow: str, v1: str, v2: str) -> None:
    """Unified diff between two stored versions of a flow."""
    a_version, a = _spec_text(flow, v1, "yaml")
    b_version, b = _spec_text(flow, v2, "yaml")
    lines = difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                 fromfile=f"{flow}@{a_version}", tofile=f"{flow}@{b_version}")
    click.echo("".join(lines), nl=False)
