"""Every param a spec can write is documented: each field of each node type's params model, and of
the models nested in them (a WindowFunctions function, a pagination, a tool's auth), appears with a
description in docs/nodes.md and in `dp nodes NAME`."""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from dp_assets.catalog import default_catalog
from dp_assets.catalog.examples import NODE_EXAMPLES
from dp_assets.docs_gen import render_nodes_markdown


def nested_models(annotation: typing.Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from nested_models(arg)


def fields_of(model: type[BaseModel]) -> Iterator[tuple[str, str, str]]:
    """(model name, field name as written in a spec, description) of a model and the models in it."""
    queue, seen = [model], set()
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        for name, info in current.model_fields.items():
            yield current.__name__, info.alias or name, info.description or ""
            queue += list(nested_models(info.annotation))


def section(text: str, type_name: str) -> str:
    start = text.index(f"### `{type_name}`\n")
    end = text.find("\n### ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def row_description(text: str, field: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f"| `{field}` |"):
            return line.rstrip(" |").rsplit(" | ", 1)[-1].strip()
    return None


CATALOG = default_catalog()
DOCS = render_nodes_markdown(CATALOG, NODE_EXAMPLES)


@pytest.mark.parametrize("type_name", list(CATALOG))
def test_every_param_field_has_a_description_in_the_generated_docs(type_name: str) -> None:
    text = section(DOCS, type_name)
    undocumented = []
    for model, field, description in fields_of(CATALOG[type_name].params_model):
        shown = row_description(text, field)
        if not description or not shown:
            undocumented.append(f"{model}.{field}")
    assert not undocumented, f"{type_name}: params without a description in docs/nodes.md: {undocumented}"


def test_dp_nodes_shows_nested_fields() -> None:
    """`dp nodes WindowFunctions` lists the fields of each function, not only `functions`."""
    from dp_assets.cli.catalog import nodes

    result = CliRunner().invoke(nodes, ["WindowFunctions"])
    assert result.exit_code == 0, result.output
    for field in ("output", "function", "column", "periods", "window", "min_periods", "method"):
        assert row_description(result.output, field), field
    usecols = CliRunner().invoke(nodes, ["FileInput"]).output
    assert "Read only these columns" in (row_description(usecols, "usecols") or "")
