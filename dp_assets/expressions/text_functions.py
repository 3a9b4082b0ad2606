"""Text functions: ``s.str.*`` for columns, ``str`` methods for single values.

Matching is plain text (``regex=False``): no user regex, so no catastrophic backtracking. Text an
expression builds stays within ``MAX_TEXT_LENGTH`` per value: ``replace``, ``concat`` and ``+``
refuse a result that could grow beyond it before building it, and the evaluator checks every
function's text result after it (``upper`` of a ligature is three letters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dp_assets.deferred import np, pd

from .values import (
    broadcast,
    is_missing,
    literal_int,
    literal_text,
    per_value,
    require_text,
    series_index,
)

MAX_TEXT_LENGTH = 1_000_000


class TextTooLong(ValueError):
    """Text an expression builds would exceed ``MAX_TEXT_LENGTH`` characters in one value."""


def text_lengths(value: Any) -> Any:
    """Characters per value: an int for a str, a Series for a text column, 0 for other values."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, pd.Series) and len(value):
        dtype = value.dtype
        textual = (
            isinstance(dtype, pd.StringDtype)
            or pd.api.types.is_object_dtype(dtype)
            or (isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_string_dtype(dtype))
        )
        if textual:
            try:
                return value.str.len().fillna(0)
            except AttributeError:  # an object column without any text
                return 0
    return 0


def longest(lengths: Any) -> int:
    if isinstance(lengths, pd.Series):
        top = lengths.max() if len(lengths) else 0
        return 0 if is_missing(top) else int(top)
    return int(lengths)


def check_joined_length(values: tuple[Any, ...] | list[Any], what: str) -> None:
    """Refuse joining ``values`` (text or text columns) when one joined value would be too long,
    before anything is joined: the lengths are added row by row."""
    total: Any = 0
    for value in values:
        total = total + text_lengths(value)
    size = longest(total)
    if size > MAX_TEXT_LENGTH:
        raise TextTooLong(f"{what} would give {size} characters in one value (the limit is {MAX_TEXT_LENGTH})")


def check_text_result(value: Any, what: str) -> None:
    size = longest(text_lengths(value))
    if size > MAX_TEXT_LENGTH:
        raise TextTooLong(f"{what} gives {size} characters in one value (the limit is {MAX_TEXT_LENGTH})")


def _text_method(fname: str, series_fn: Callable[[Any], Any], scalar_fn: Callable[[str], Any]):
    def apply(x: Any) -> Any:
        x = require_text(x, fname)
        return series_fn(x.str) if isinstance(x, pd.Series) else per_value(x, scalar_fn)

    apply.__name__ = fname
    return apply


lower = _text_method("lower", lambda s: s.lower(), str.lower)
upper = _text_method("upper", lambda s: s.upper(), str.upper)
strip = _text_method("strip", lambda s: s.strip(), str.strip)
length = _text_method("len", lambda s: s.len(), len)


def contains(text: Any, part: Any) -> Any:
    text, part = require_text(text, "contains"), literal_text(part, "contains", "part")
    if isinstance(text, pd.Series):
        return text.str.contains(part, regex=False)
    return per_value(text, lambda t: part in t)


def startswith(text: Any, prefix: Any) -> Any:
    text, prefix = require_text(text, "startswith"), literal_text(prefix, "startswith", "prefix")
    if isinstance(text, pd.Series):
        return text.str.startswith(prefix)
    return per_value(text, lambda t: t.startswith(prefix))


def endswith(text: Any, suffix: Any) -> Any:
    text, suffix = require_text(text, "endswith"), literal_text(suffix, "endswith", "suffix")
    if isinstance(text, pd.Series):
        return text.str.endswith(suffix)
    return per_value(text, lambda t: t.endswith(suffix))


def replace(text: Any, old: Any, new: Any) -> Any:
    text = require_text(text, "replace")
    old, new = literal_text(old, "replace", "old"), literal_text(new, "replace", "new")
    longest = text.str.len().max() if isinstance(text, pd.Series) else len(text or "")
    longest = 0 if is_missing(longest) else int(longest)
    grows = len(new) - len(old)
    if grows > 0:
        bound = longest + (longest + 1) * len(new) if not old else longest + (longest // len(old)) * grows
        if bound > MAX_TEXT_LENGTH:
            raise TextTooLong(f"the result could reach {bound} characters per value (the limit is {MAX_TEXT_LENGTH})")
    if isinstance(text, pd.Series):
        return text.str.replace(old, new, regex=False)
    return per_value(text, lambda t: t.replace(old, new))


def substr(text: Any, start: Any, length: Any = None) -> Any:
    text = require_text(text, "substr")
    start = literal_int(start, "substr", "start")
    stop = None
    if length is not None:
        length = literal_int(length, "substr", "length")
        if length < 0:
            raise ValueError("substr() length cannot be negative")
        stop = start + length
        if start < 0 <= stop:
            stop = None
    if isinstance(text, pd.Series):
        return text.str.slice(start, stop)
    return per_value(text, lambda t: t[start:stop])


def as_text(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return value if isinstance(value.dtype, pd.StringDtype) else value.astype("str")
    return None if is_missing(value) else str(value)


def concat(*values: Any) -> Any:
    index = series_index(values)
    texts = [as_text(value) for value in values]
    check_joined_length(texts, "concat()")
    if index is None:
        return None if any(text is None for text in texts) else "".join(texts)
    if any(text is None for text in texts):
        return pd.Series(np.nan, index=index, dtype="str")
    result = broadcast(texts[0], index).astype("str")
    for text in texts[1:]:
        result = result + text
    return result
