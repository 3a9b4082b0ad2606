"""A source's columns read from its files, for ``dp validate --infer-columns`` and the designer.

A spec that declares no ``columns`` for a file source leaves every column check downstream of it
to the run: a misspelt column in a filter fails the run, not ``dp validate``. With the flag (and
in the designer's checks of a draft), each source that can tell its columns from what it reads (a
node type's ``read_schema``: FileInput reads its files' heads) gives them to the checks, as a
declaration would. Only there: a stored version's checks at publish and load depend on its spec
alone, never on a file that may change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dp_assets.catalog.base import Catalog, ColumnSchema
from dp_assets.spec.document import SpecShapeError
from dp_assets.spec.loading import normalise_spec


def read_source_columns(
    data: Mapping[str, Any], catalog: Catalog
) -> tuple[dict[str, ColumnSchema], list[tuple[str, str]]]:
    """Node id -> columns read, and ``(node id, why)`` for each source whose columns could not be read."""
    from dp_resources.files import FilesResource

    try:
        nodes = normalise_spec(data).get("nodes")
    except SpecShapeError:
        return {}, []  # the validation reports the shape
    resources = {"files": FilesResource()}
    known: dict[str, ColumnSchema] = {}
    notes: list[tuple[str, str]] = []
    for node in nodes if isinstance(nodes, list) else ():
        if not isinstance(node, Mapping) or not isinstance(node.get("id"), str):
            continue
        type_name = node.get("type")
        node_type = catalog.get(type_name) if isinstance(type_name, str) else None
        if node_type is None or node_type.read_schema is None:
            continue
        try:
            params = node_type.params_model.model_validate(node.get("params") or {})
        except ValueError:
            continue  # the validation names the bad param
        try:
            schema = node_type.read_schema(params, resources)
        except Exception as exc:  # noqa: BLE001 - any file's problem is this source's note, not a crash
            notes.append((node["id"], f"columns not read from its files: {exc}"))
            continue
        if schema is not None:
            known[node["id"]] = schema
    return known, notes
