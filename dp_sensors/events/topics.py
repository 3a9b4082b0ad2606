"""Event topics and the wildcard patterns that select them (dp-poc's rules).

A topic is a dot-separated list of segments such as ``orders.eu.created`` or ``webhook.sales``.
A pattern is a topic in which a whole segment may be a wildcard:

- ``*`` matches exactly one segment: ``orders.*`` matches ``orders.created``, not ``orders`` and
  not ``orders.eu.created``;
- ``**`` matches any number of segments, zero included: ``orders.**`` matches ``orders``,
  ``orders.created`` and ``orders.eu.created``; ``**`` alone matches every topic.

Wildcards are whole segments only (``order*`` is refused rather than silently read as a literal),
so a pattern means the same here, in a spec and in the docs. Patterns are validated once and
split into segments, cached, because sensors match the same few patterns against thousands of
events per tick. Matching walks the segments (``_segments_match``), never a backtracking regular
expression: ``**.a.**.a.**.a.**.a.**.a.**.b`` against ``a.a.a...`` took seconds per event as a
regex, and a pattern of 255 characters could hang the sensor's tick.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

MAX_TOPIC_LENGTH = 255
SEGMENT_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
_SEGMENT_RULE = "letters, digits, '_' or '-'"


def _split(value: object, what: str) -> list[str]:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} is empty; write dot-separated segments such as 'orders.created'")
    if len(value) > MAX_TOPIC_LENGTH:
        raise ValueError(f"{what} {value[:40]!r}... is longer than {MAX_TOPIC_LENGTH} characters")
    segments = value.split(".")
    if any(segment == "" for segment in segments):
        raise ValueError(
            f"{what} {value!r} has an empty segment (leading, trailing or double dot); "
            "write segments separated by single dots such as 'orders.created'"
        )
    return segments


def validate_topic(topic: str) -> str:
    """Return ``topic`` if it can be published to, else raise ValueError saying what is wrong.

    Published topics are concrete: wildcards belong in patterns only.
    """
    for segment in _split(topic, "topic"):
        if segment in ("*", "**"):
            raise ValueError(
                f"topic {topic!r} contains the wildcard {segment!r}; wildcards are for the "
                "patterns of event triggers, an event is published to one concrete topic"
            )
        if not SEGMENT_RE.fullmatch(segment):
            raise ValueError(f"topic {topic!r} has the segment {segment!r}; segments may contain only {_SEGMENT_RULE}")
    return topic


def validate_topic_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a valid topic pattern, else raise ValueError saying why."""
    for segment in _split(pattern, "topic pattern"):
        if segment in ("*", "**"):
            continue
        if "*" in segment:
            raise ValueError(
                f"topic pattern {pattern!r} has the segment {segment!r}; a wildcard must be a "
                "whole segment: '*' for exactly one segment, '**' for any number "
                "(for example 'orders.*' or 'orders.**')"
            )
        if not SEGMENT_RE.fullmatch(segment):
            raise ValueError(
                f"topic pattern {pattern!r} has the segment {segment!r}; segments may contain "
                f"only {_SEGMENT_RULE}, or be '*' or '**'"
            )
    return pattern


@functools.lru_cache(maxsize=4096)
def _pattern_segments(pattern: str) -> tuple[str, ...]:
    """The segments of a validated pattern; consecutive ``**`` merged (they mean the same)."""
    validate_topic_pattern(pattern)
    segments: list[str] = []
    for segment in pattern.split("."):
        if not (segment == "**" and segments and segments[-1] == "**"):
            segments.append(segment)
    return tuple(segments)


def _segments_match(pattern: tuple[str, ...], topic: list[str]) -> bool:
    """Wildcard matching over segments in O(len(pattern) * len(topic)) at worst: on a mismatch,
    only the last ``**`` seen takes one more segment (any earlier ``**`` could only take what
    the later one can, so trying it again cannot match where this fails)."""
    p = t = 0
    star, resume = -1, 0  # the last '**' seen, and the topic segment it was tried up to
    while t < len(topic):
        if p < len(pattern) and pattern[p] == "**":
            star, resume = p, t
            p += 1
        elif p < len(pattern) and pattern[p] in ("*", topic[t]):
            p, t = p + 1, t + 1
        elif star >= 0:
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    return all(segment == "**" for segment in pattern[p:])


def match_topic(pattern: str, topic: str) -> bool:
    """True when ``topic`` is selected by ``pattern``; raises ValueError for an invalid pattern."""
    return _segments_match(_pattern_segments(pattern), topic.split("."))


def matches_any(patterns: Iterable[str] | None, topic: str) -> bool:
    """True when any pattern selects ``topic``; ``None`` means no filter (everything matches)."""
    if patterns is None:
        return True
    return any(match_topic(pattern, topic) for pattern in patterns)


def literal_prefix(pattern: str) -> tuple[str, bool]:
    """The leading literal segments of a pattern and whether the pattern is entirely literal.

    Adapters use it to narrow a scan before the exact match: ``orders.eu.*`` has the prefix
    ``orders.eu``; ``*.created`` has none.
    """
    literal: list[str] = []
    for segment in pattern.split("."):
        if segment in ("*", "**"):
            return ".".join(literal), False
        literal.append(segment)
    return ".".join(literal), True


def validate_patterns(patterns: Sequence[str] | None) -> tuple[str, ...] | None:
    """Validate a pattern list once per call of ``read_after``; ``None`` stays ``None``."""
    if patterns is None:
        return None
    if isinstance(patterns, str):
        raise ValueError("patterns must be a list of topic patterns, not a single string")
    return tuple(validate_topic_pattern(pattern) for pattern in patterns)
