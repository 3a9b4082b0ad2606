"""Validation for the canvas: ``validate_spec``'s errors mapped to node, field and edge, and the
column schema known at each node's output (shown on the edges leaving it)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dp_assets.catalog.base import Catalog
from dp_assets.spec.validation import FlowValidationError, validate_spec
from dp_assets.store_api import split_layout

#: A column error names the edge it was found on: "... (input 'orders' -> 'total')".
EDGE_RE = re.compile(r"'([^']+)' -> '([^']+)'")


def check_document(document: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
    """``{valid, version, errors, schemas}``; never raises for any JSON object.

    Not compiled (``check_compiles=False``): a draft is checked as it is drawn, and publishing
    compiles it."""
    spec, _ = split_layout(document)
    try:
        validated = validate_spec(spec, catalog, check_compiles=False)
    except FlowValidationError as exc:
        return {"valid": False, "version": None, "errors": [_error(e) for e in exc.errors], "schemas": {}}
    schemas = {ref: schema for ref, schema in validated.schemas.items() if schema is not None}
    return {"valid": True, "version": validated.version, "errors": [], "schemas": schemas}


def _error(error: Any) -> dict[str, Any]:
    edges = [{"source": s.split(".", 1)[0], "target": t} for s, t in EDGE_RE.findall(error.message)]
    return {"node": error.node, "field": error.field, "message": error.message, "edges": edges, "text": str(error)}
