"""pydantic's errors of a flow's model, worded for the spec's author: each names the node and the
field in the spec's own terms (no union tags or type names in the path), with a "did you mean"
where a name is close to one that exists. A sub-chain's body (``dp_assets.compiler.plan``) words
its nodes' errors the same way (:func:`node_error`)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from dp_assets.catalog.base import Catalog
from dp_assets.spec import checks
from dp_assets.spec.document import dotted
from dp_assets.spec.spec_errors import SpecError

#: Beyond this many names no "did you mean" is offered: difflib compares against each of them,
#: and a spec with thousands of nodes, each with a bad input, must still validate in seconds.
SUGGEST_FROM_AT_MOST = 500


def suggest(name: str, choices: Any) -> str:
    choices = list(choices)
    if len(choices) > SUGGEST_FROM_AT_MOST:
        return ""
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def pydantic_errors(exc: ValidationError, raw: Mapping[str, Any], flow_id: str, catalog: Catalog) -> list[SpecError]:
    raw_nodes = raw.get("nodes")
    nodes: list[Any] = raw_nodes if isinstance(raw_nodes, list) else []
    out: list[SpecError] = []
    for err in exc.errors():
        loc = list(err["loc"])
        node_id = None
        if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int) and loc[1] < len(nodes):
            node = nodes[loc[1]]
            node_id = str(node.get("id")) if isinstance(node, Mapping) else f"#{loc[1]}"
            loc = loc[2:]
            if loc and isinstance(loc[0], str) and loc[0] in catalog:
                loc = loc[1:]  # the union tag pydantic puts in the path
        elif len(loc) >= 3 and loc[0] == "triggers" and isinstance(loc[2], str):
            loc = [*loc[:2], *loc[3:]]  # the trigger type tag
        if len(loc) >= 3 and loc[0] == "checks" and isinstance(loc[1], int) and loc[2] in checks.CHECK_TYPES:
            loc = [*loc[:2], *loc[3:]]  # the check type tag
        loc = [part for part in loc if not _is_type_tag(part)]
        field = dotted(loc) or ("type" if err["type"].startswith("union_tag") else "<spec>")
        message = _message(err, catalog)
        if err["type"].startswith("union_tag") and field.startswith("checks["):
            message = checks.union_tag_message(err.get("ctx", {}).get("tag"))
        if (node_id, field) not in {(e.node, e.field) for e in out}:  # one message per union field
            out.append(SpecError(flow_id, node_id, field, message))
    return out


TYPE_TAGS = ("bool", "str", "int", "float", "list", "dict", "tuple", "none", "literal", "function")


def _is_type_tag(part: Any) -> bool:
    """pydantic puts the union member (``bool``, ``list[str]``...) into error locations."""
    return isinstance(part, str) and (part.split("[", 1)[0].lower() in TYPE_TAGS or "[" in part)


def _message(err: Mapping[str, Any], catalog: Catalog) -> str:
    kind = err["type"]
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        return f"unknown node type '{tag}'{suggest(str(tag), catalog)}; see `dp nodes` for the catalog"
    if kind == "union_tag_not_found":
        return "missing 'type': every node needs a type from the catalog (`dp nodes`)"
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def node_error(err: Mapping[str, Any], catalog: Catalog) -> tuple[str, str]:
    """A pydantic error of a node's own model as ``(field, message)``, as for a flow's node."""
    loc = [part for part in err.get("loc", ()) if not _is_type_tag(part)]
    return dotted(loc) or "<spec>", _message(err, catalog)
