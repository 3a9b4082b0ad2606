"""Validation for the canvas: ``validate_spec``'s errors mapped to node, field and edge, and the
column schema known at each node's output (shown on the edges leaving it)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dp_assets.catalog.base import Catalog
from dp_assets.source_columns import read_source_columns
from dp_assets.spec.validation import FlowValidationError, validate_spec
from dp_assets.store_api import split_layout

#: A column error names the edge it was found on: "... (input 'orders' -> 'total')".
EDGE_RE = re.compile(r"'([^']+)' -> '([^']+)'")


def check_document(document: Mapping[str, Any], catalog: Catalog, *, read_sources: bool = False) -> dict[str, Any]:
    """``{valid, version, errors, schemas, read_from_files, notes}``; never raises for any JSON
    object.

    Not compiled (``check_compiles=False``): a draft is checked as it is drawn, and publishing
    compiles it. ``read_sources``: file sources that declare no columns give the ones their files
    have, as ``dp validate --infer-columns`` (``read_from_files`` names them, ``notes`` says why a
    source's could not be read); this only adds checks, so a draft that passes also passes the
    publish's check by its text alone."""
    spec, _ = split_layout(document)
    read, notes = read_source_columns(spec, catalog) if read_sources else ({}, [])
    extra = {"read_from_files": sorted(read), "notes": [{"node": node, "message": why} for node, why in notes]}
    try:
        validated = validate_spec(spec, catalog, check_compiles=False, known_schemas=read)
    except FlowValidationError as exc:
        errors = [_error(e) for e in exc.errors]
        return {"valid": False, "version": None, "errors": errors, "schemas": {}, **extra}
    schemas = {ref: schema for ref, schema in validated.schemas.items() if schema is not None}
    return {"valid": True, "version": validated.version, "errors": [], "schemas": schemas, **extra}


def _error(error: Any) -> dict[str, Any]:
    edges = [{"source": s.split(".", 1)[0], "target": t} for s, t in EDGE_RE.findall(error.message)]
    return {"node": error.node, "field": error.field, "message": error.message, "edges": edges, "text": str(error)}
