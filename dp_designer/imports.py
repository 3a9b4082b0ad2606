"""A dropped file as a designer document: a spec file (YAML or JSON), a React Flow export or a
MAX DP designer JSON (``nodes`` with ``data`` and ``position``, and ``edges``), read by the
platform's own spec loader (``parse_spec_text``: designer nodes unwrapped, edges folded into
inputs) with the export's node positions kept as the document's layout."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from dp_assets.spec.loading import SpecLoadError, load_yaml, parse_spec_text
from dp_assets.store_api import LAYOUT_KEY
from dp_designer.http import ApiError, read_body


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=3_000_000, description="The file's text.")
    filename: str = Field("dropped file", max_length=255, description="Named in errors.")


def _position(value: Any) -> dict[str, int] | None:
    """``{x, y}`` rounded, when ``value`` is a mapping with two finite numbers of sane size."""
    if not isinstance(value, Mapping):
        return None
    x, y = value.get("x"), value.get("y")
    if all(isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e9 for v in (x, y)):
        return {"x": round(x), "y": round(y)}  # type: ignore[arg-type]
    return None


def _positions(text: str, layout: Any) -> dict[str, dict[str, int]]:
    """Node id -> position: the document's own ``layout``, else the export's node positions."""
    if isinstance(layout, Mapping):
        placed = {k: _position(v) for k, v in layout.items() if isinstance(k, str)}
    else:
        data = json.loads(text) if text.lstrip().startswith("{") else load_yaml(text)
        nodes = data.get("nodes") if isinstance(data, Mapping) else None
        placed = {
            n["id"]: _position(n.get("position"))
            for n in (nodes if isinstance(nodes, list) else [])
            if isinstance(n, Mapping) and isinstance(n.get("id"), str)
        }
    return {k: v for k, v in placed.items() if v is not None}


def import_document(text: str, filename: str) -> dict[str, Any]:
    """The document of a dropped file; its ``id`` is the client's to set (the flow it is dropped on)."""
    try:
        spec = parse_spec_text(text, source=filename)  # bounds size and depth before anything else
    except SpecLoadError as exc:
        raise ApiError(422, str(exc)) from None
    positions = _positions(text, spec.pop(LAYOUT_KEY, None))
    return {"document": {**spec, LAYOUT_KEY: positions}, "positions": bool(positions)}


async def import_file(request: Request) -> JSONResponse:
    """A spec file, React Flow export or MAX DP designer JSON as a document (nothing is saved)."""
    body = await read_body(request, ImportBody)
    return JSONResponse(await run_in_threadpool(import_document, body.text, body.filename))
