"""Number types a browser cannot keep: JSON in JavaScript has one number type, so a spec's
``20.0`` comes back from the client as ``20``, and the content hash (``spec_version``, over the
canonical JSON, where ``20`` and ``20.0`` differ) would change though nothing did. A document
from the client gets back the float type of each value that is unchanged from the version it
started from (same place, equal value); a value the user changed is taken as sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def with_reference_numbers(value: Any, reference: Any) -> Any:
    """``value`` with every integer that sits where ``reference`` has an equal float made that float."""
    if isinstance(value, Mapping) and isinstance(reference, Mapping):
        return {k: with_reference_numbers(v, reference[k]) if k in reference else v for k, v in value.items()}
    if isinstance(value, list) and isinstance(reference, list):
        return [with_reference_numbers(v, r) for v, r in zip(value, reference, strict=False)] + value[len(reference) :]
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(reference, float) and value == reference:
        return reference
    return value
