"""The OpenAPI document of the designer's API, from the route table and the pydantic bodies: the
REST API other tools can use to manage flows."""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel


def openapi_document(routes: list[tuple[str, str, Any, type[BaseModel] | None]]) -> dict[str, Any]:
    """``routes``: ``(method, path, endpoint, body model)``; the summary is the endpoint's docstring."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for method, path, endpoint, body in routes:
        doc = inspect.getdoc(endpoint) or ""
        operation: dict[str, Any] = {
            "summary": doc.split("\n\n", 1)[0].replace("\n", " "),
            "operationId": endpoint.__name__,
            "parameters": [
                {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
                for part in path.split("/")
                if part.startswith("{")
            ],
            "responses": {
                "200": {"description": "done", "content": {"application/json": {}}},
                "4XX": {"description": "refused: `{error: message}`", "content": {"application/json": {}}},
            },
        }
        if body is not None:
            schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[body.__name__] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}},
            }
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "dp-platform flow designer API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
