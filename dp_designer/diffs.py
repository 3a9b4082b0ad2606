"""Two specs compared node by node: what the history view shows above the YAML diff."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _nodes(spec: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    nodes = spec.get("nodes") or []
    return {str(n.get("id")): n for n in nodes if isinstance(n, Mapping)}


def node_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """``{added, removed, changed: [{id, fields}]}``; a field is ``type``, ``inputs`` or
    ``params.NAME`` (or any other key of the node that differs)."""
    a, b = _nodes(before), _nodes(after)
    changed = []
    for node_id in sorted(a.keys() & b.keys()):
        old, new = a[node_id], b[node_id]
        fields = []
        for key in sorted(old.keys() | new.keys()):
            if key == "params" and isinstance(old.get(key), Mapping) and isinstance(new.get(key), Mapping):
                params_a, params_b = old[key], new[key]
                fields += [
                    f"params.{name}"
                    for name in sorted(params_a.keys() | params_b.keys())
                    if params_a.get(name) != params_b.get(name)
                ]
            elif old.get(key) != new.get(key):
                fields.append(key)
        if fields:
            changed.append({"id": node_id, "fields": fields})
    return {"added": sorted(b.keys() - a.keys()), "removed": sorted(a.keys() - b.keys()), "changed": changed}
