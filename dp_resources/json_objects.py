"""JSON objects read strictly: a key written twice in one object is an error, not the last kept.

Python's ``json`` keeps the last value of a repeated key, so a reader of the text (a reviewer
of a spec file, a caller of the receiver) could see a value that never takes effect. Spec
loading and the receiver's body parser both pass :func:`unique_keys` as ``object_pairs_hook``.
"""

from __future__ import annotations

from typing import Any


def shown_key(key: Any) -> str:
    """A key as an error message shows it: quoted, at most 40 characters."""
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads(..., object_pairs_hook=unique_keys)``: the object, or ValueError naming the
    first key that appears twice."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {shown_key(key)} appears twice in one object")
            seen.add(key)
    return result
