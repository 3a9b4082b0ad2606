"""``dp validate``, ``publish``, ``list``, ``history``, ``show``, ``diff``, ``delete``, ``restore`` and
``unpublish``: thin commands over ``dp_assets.store_api``."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from dp_assets.spec.loading import SpecLoadError, read_spec_file
from dp_assets.spec.validation import FlowValidationError

if TYPE_CHECKING:
    from dp_assets.store_api import FlowStoreAPI, PublishResult

T = TypeVar("T")


def _api() -> FlowStoreAPI:
    # Imported here: the store (SQLAlchemy) is not needed by `dp validate`.
    from dp_assets.cli.identity import cli_actor
    from dp_assets.store_api import FlowStoreAPI

    api = FlowStoreAPI()
    return api.acting_as(cli_actor(api.access))


def _expand(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            from dp_assets.publishing import spec_files  # with the store: only for folders

            files.extend(spec_files(path))
        else:
            files.append(path)
    return files


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--columns", is_flag=True, help="Also list each node's output columns, as known before a run.")
@click.option(
    "--infer-columns",
    is_flag=True,
    help="Read the columns of file sources that declare none from their files' heads (under DP_DATA_DIR) "
    "and check the nodes downstream against them. Publishing and loading never do.",
)
def validate(paths: tuple[str, ...], columns: bool, infer_columns: bool) -> None:
    """Check spec files (or folders of them); exit 1 listing every error when any is bad.

    Every file is checked whatever the others hold: a file that breaks the checker itself is
    reported as that file's failure (never a traceback that hides the rest)."""
    from dp_assets.catalog import default_catalog
    from dp_assets.source_columns import read_source_columns
    from dp_assets.spec import secret_forms
    from dp_assets.spec.validated_cache import ValidatedSpecs
    from dp_assets.spec.validation import validate_spec
    from dp_settings import current

    catalog = default_catalog()
    cache = ValidatedSpecs.for_home(current().dp_home())  # a version that compiled before is not compiled again
    bad = 0
    for path in _expand(paths):
        try:
            with secret_forms.deprecations() as notes:  # a spec's old secret forms, noted as it is read
                data = read_spec_file(path)
                read, unread = read_source_columns(data, catalog) if infer_columns else ({}, [])
                validated = validate_spec(data, catalog, cache=cache, known_schemas=read)
            click.echo(f"ok    {path}  flow '{validated.id}' version {validated.version}")
            for node_id, schema in validated.schemas.items() if columns else ():
                known = ", ".join(f"{name} ({kind})" for name, kind in schema.items()) if schema else "not known"
                click.echo(f"      {node_id}: {known}{'  (read from its files)' if node_id in read else ''}")
            unread_notes = [f"node '{node}': {why}" for node, why in unread]
            for note in unread_notes + notes + secret_forms.refused_in(validated.raw, catalog):
                click.echo(f"  warning: {note}", err=True)
        except (SpecLoadError, FlowValidationError) as exc:
            bad += 1
            click.echo(f"FAIL  {path}\n{exc}", err=True)
        except Exception as exc:  # noqa: BLE001 - one file's failure must not hide the others
            bad += 1
            click.echo(
                f"FAIL  {path}\n  could not be checked ({type(exc).__name__}: {exc}); please report this spec", err=True
            )
    if bad:
        click.echo(f"{bad} invalid spec(s)", err=True)
        sys.exit(1)


@click.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--workspace", default="default", show_default=True)
@click.option("--message", "-m", default="", help="Why this version exists.")
def publish(targets: tuple[str, ...], workspace: str, message: str) -> None:
    """Validate and store specs as new versions, and publish them.

    TARGETS are spec files or folders of them; or FLOW / FLOW@VERSION to publish a version
    already stored (the newest when no version is named; a prefix will do)."""
    from dp_assets.cli.progress import Progress
    from dp_assets.store_api import FlowNotFound, Forbidden

    steps = _publish_steps(targets)
    api, bad, created = _api(), 0, 0
    with Progress("publishing", total=len(steps)) as progress:
        for target, path in steps:
            progress.advance(0, label=f"publishing {target}")
            if path is None:
                flow, _, version = target.partition("@")
                try:
                    result = api.publish_version(flow, version or None)
                    progress.line(
                        f"{flow}: version {result.version} "
                        + ("published" if result.published else "was already published")
                        + (", restored (it had been deleted)" if result.restored else "")
                    )
                except (FlowNotFound, Forbidden) as exc:
                    bad += 1
                    progress.line(f"FAIL  {target}: {exc}", err=True)
            else:
                try:
                    published = api.publish(path, message=message, workspace=workspace)
                    created += published.created
                    progress.line(_published_line(published))
                except (SpecLoadError, FlowValidationError, Forbidden) as exc:
                    bad += 1
                    progress.line(f"FAIL  {path}\n{exc}", err=True)
            progress.advance()
    if len(steps) > 1:
        click.echo(f"{len(steps)} spec(s): {len(steps) - bad} published ({created} new version(s)), {bad} failed")
    if bad:
        sys.exit(1)


_STORED = re.compile(r"[a-z][a-z0-9_]*(@[0-9a-zA-Z]+)?")


def _publish_steps(targets: tuple[str, ...]) -> list[tuple[str, Path | None]]:
    """Each spec file to publish, and each stored version named FLOW or FLOW@VERSION (no file)."""
    steps: list[tuple[str, Path | None]] = []
    for target in targets:
        if not Path(target).exists() and _STORED.fullmatch(target):
            steps.append((target, None))
        else:
            steps += [(str(path), path) for path in _expand((target,))]
    return steps


def _published_line(result: PublishResult) -> str:
    state = "new version" if result.created else "unchanged"
    return (
        f"{result.flow_id}: {state} {result.version}"
        + (", published" if result.published else "")
        + (", restored (it had been deleted)" if result.restored else "")
    )


@click.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include deleted flows.")
def list_flows(show_all: bool) -> None:
    """Flows in the store: state, published version, versions, last change, and the spec file
    each came from. File changes the store did not take are listed after the table."""
    every = _api().list()
    listings = [entry for entry in every if show_all or entry.info.state != "deleted"]
    for entry in listings:
        info = entry.info
        source = (entry.source or "-") + (" (removed)" if entry.source_removed else "")
        click.echo(
            f"{info.id:32} {info.state:11} {(info.published_version or '-')[:12]:12} "
            f"{info.versions:3} version(s)  {info.updated_at:%Y-%m-%d %H:%M}  {source}"
        )
    if hidden := len(every) - len(listings):
        click.echo(f"({hidden} deleted flow(s) not shown: `dp list --all`)")
    for entry in listings:
        if entry.conflict:
            click.echo(f"CONFLICT {entry.id}: {entry.conflict}", err=True)


@click.command()
@click.argument("flow")
def history(flow: str) -> None:
    """Every stored version of a flow, oldest first; * marks the published one."""
    for v in _call(lambda: _api().history(flow)):
        click.echo(f"{'*' if v.published else ' '} {v.version}  {v.created_at:%Y-%m-%d %H:%M:%S}  {v.message}")


@click.command()
@click.argument("flow")
@click.option("--version", default=None, help="A version or its prefix (default: published).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
def show(flow: str, version: str | None, fmt: str) -> None:
    """Print a stored spec (`dp show FLOW > file.yaml` gives a file that publishes the same version)."""
    click.echo(_call(lambda: _api().spec_text(flow, version, fmt))[1], nl=False)


@click.command()
@click.argument("flow")
@click.argument("v1")
@click.argument("v2")
def diff(flow: str, v1: str, v2: str) -> None:
    """Unified diff between two stored versions of a flow."""
    click.echo(_call(lambda: _api().diff(flow, v1, v2)), nl=False)


@click.command()
@click.argument("flow")
def delete(flow: str) -> None:
    """Retire a flow: it leaves the code location on its next load; its versions, runs and kept
    outputs stay (`dp restore FLOW` brings it back)."""
    changed = _call(lambda: _api().delete(flow))
    click.echo(f"{flow}: deleted" if changed else f"{flow}: already deleted")


@click.command()
@click.argument("flow")
def restore(flow: str) -> None:
    """Bring a deleted flow back, at the version it had published."""
    changed = _call(lambda: _api().restore(flow))
    click.echo(f"{flow}: restored" if changed else f"{flow}: was not deleted")


@click.command()
@click.argument("flow")
def unpublish(flow: str) -> None:
    """Keep a flow stored but stop compiling it (`dp publish FLOW` publishes its newest version again)."""
    changed = _call(lambda: _api().unpublish(flow))
    click.echo(f"{flow}: unpublished" if changed else f"{flow}: had no published version")


def _call(action: Callable[[], T]) -> T:
    from dp_assets.store_api import FlowNotFound, Forbidden

    try:
        return action()
    except (FlowNotFound, Forbidden) as exc:
        raise click.ClickException(str(exc)) from exc
