"""``dp schema``, ``dp nodes`` and ``dp docs``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dp_assets.catalog import default_catalog
from dp_assets.docs_gen import (
    NODES_DOC,
    SETTINGS_DOC,
    params_table,
    render_nodes_markdown,
    render_settings_markdown,
)
from dp_assets.spec.model import flow_json_schema
from dp_settings import REPO_ROOT


@click.command()
def schema() -> None:
    """Print the JSON Schema of a flow spec (for editors)."""
    click.echo(json.dumps(flow_json_schema(default_catalog()), indent=2))


@click.command()
@click.argument("name", required=False)
def nodes(name: str | None) -> None:
    """The node catalog; with NAME, that node type's params."""
    catalog = default_catalog()
    if name:
        if name not in catalog:
            raise click.ClickException(f"no node type '{name}'; `dp nodes` lists them")
        node_type = catalog[name]
        click.echo(f"{name} ({node_type.category}): {node_type.description}\n")
        click.echo(f"inputs: {node_type.inputs.describe()}; outputs: {', '.join(node_type.outputs)}\n")
        click.echo("\n".join(params_table(node_type.params_model)))
        return
    for type_name, node_type in catalog.items():
        summary = node_type.description.splitlines()[0] if node_type.description else ""
        click.echo(f"{type_name:22} {node_type.category:10} {summary}")


@click.command()
@click.option("--check", is_flag=True, help="Exit 1 when the generated docs are stale.")
def docs(check: bool) -> None:
    """Regenerate docs/nodes.md from the params models and docs/settings.md from the settings."""
    from dp_assets.catalog.examples import NODE_EXAMPLES

    documents = {
        NODES_DOC: render_nodes_markdown(default_catalog(), NODE_EXAMPLES),
        SETTINGS_DOC: render_settings_markdown(),
    }
    for name, text in documents.items():
        target = Path(REPO_ROOT) / name
        if check:
            if not target.exists() or target.read_text() != text:
                raise click.ClickException(f"{name} is stale: run `make docs`")
            continue
        target.write_text(text)
        click.echo(f"wrote {target}")
