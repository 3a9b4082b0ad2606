"""Topic patterns follow dp-poc's rules: ``*`` is one segment, ``**`` any number (zero too)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_sensors.events.topics import (
    literal_prefix,
    match_topic,
    matches_any,
    validate_topic,
    validate_topic_pattern,
)
from tests.fuzzing import fuzz_settings

MATCHES = [
    ("a.b", "a.b", True, "literal"),
    ("a.b", "a.c", False, "literal-other"),
    ("a.b", "axb", False, "dot-is-not-regex"),
    ("A.b", "a.b", False, "case-sensitive"),
    ("a-b.c_d", "a-b.c_d", True, "dash-underscore"),
    ("a.*", "a.b", True, "star-one"),
    ("a.*", "a", False, "star-not-zero"),
    ("a.*", "a.b.c", False, "star-not-two"),
    ("*", "a", True, "star-alone"),
    ("*", "a.b", False, "star-alone-two"),
    ("*.b", "a.b", True, "star-first"),
    ("*.*", "a", False, "two-stars-one-segment"),
    ("*.*", "a.b", True, "two-stars"),
    ("a.**", "a", True, "globstar-zero"),
    ("a.**", "a.b", True, "globstar-one"),
    ("a.**", "a.b.c", True, "globstar-two"),
    ("a.**", "ab", False, "globstar-not-prefix-of-segment"),
    ("a.**", "b.a", False, "globstar-other-root"),
    ("**", "a", True, "globstar-alone-one"),
    ("**", "a.b.c", True, "globstar-alone-many"),
    ("**.z", "z", True, "globstar-leading-zero"),
    ("**.z", "a.b.z", True, "globstar-leading-many"),
    ("**.z", "a.zz", False, "globstar-leading-whole-segment"),
    ("a.**.z", "a.z", True, "globstar-middle-zero"),
    ("a.**.z", "a.b.c.z", True, "globstar-middle-many"),
    ("a.**.z", "a.b.c", False, "globstar-middle-needs-end"),
    ("a.*.**", "a", False, "star-then-globstar-needs-one"),
    ("a.*.**", "a.b", True, "star-then-globstar-one"),
    ("a.*.**", "a.b.c.d", True, "star-then-globstar-many"),
    ("a.**.**", "a", True, "double-globstar"),
    ("**.b.**", "b", True, "globstar-around-zero"),
    ("**.b.**", "x.b.y.z", True, "globstar-around-many"),
    ("**.b.**", "x.c", False, "globstar-around-missing"),
    ("webhook.*", "webhook.daily_sales", True, "webhook-topic"),
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), [c[:3] for c in MATCHES], ids=[c[3] for c in MATCHES])
def test_match_topic(pattern: str, topic: str, expected: bool) -> None:
    validate_topic(topic)
    assert match_topic(pattern, topic) is expected


BAD_PATTERNS = [
    ("", "is empty", "empty"),
    ("a..b", "empty segment", "double-dot"),
    (".a", "empty segment", "leading-dot"),
    ("a.", "empty segment", "trailing-dot"),
    ("a*", "whole segment", "partial-star"),
    ("a.b*c", "whole segment", "partial-star-middle"),
    ("***", "whole segment", "triple-star"),
    ("a b", "may contain only", "space"),
    ("a/b", "may contain only", "slash"),
    ("a." + "b" * 300, "longer than", "too-long"),
]


@pytest.mark.parametrize(("pattern", "message"), [c[:2] for c in BAD_PATTERNS], ids=[c[2] for c in BAD_PATTERNS])
def test_validate_topic_pattern_refuses(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_topic_pattern(pattern)
    with pytest.raises(ValueError):
        match_topic(pattern, "a.b")


def test_validate_topic_pattern_names_the_segment() -> None:
    with pytest.raises(ValueError, match=r"'orders\.eu\*'.*'eu\*'.*'\*\*'"):
        validate_topic_pattern("orders.eu*")


def test_pattern_must_be_a_string() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        validate_topic_pattern(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topic", "message"),
    [("a.*", "wildcard"), ("**", "wildcard"), ("", "is empty"), ("a..b", "empty segment"), ("a b", "may contain only")],
    ids=["star", "globstar", "empty", "double-dot", "space"],
)
def test_validate_topic_refuses(topic: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_topic(topic)


@pytest.mark.parametrize(
    ("pattern", "prefix", "literal"),
    [("a.b", "a.b", True), ("a.b.*", "a.b", False), ("*.b", "", False), ("a.**.c", "a", False)],
    ids=["literal", "star-end", "star-first", "globstar-middle"],
)
def test_literal_prefix(pattern: str, prefix: str, literal: bool) -> None:
    assert literal_prefix(pattern) == (prefix, literal)


def test_matches_any() -> None:
    assert matches_any(None, "x.y")
    assert not matches_any([], "x.y")
    assert matches_any(["a.*", "x.*"], "x.y")


def _reference(pattern: list[str], topic: list[str]) -> bool:
    """The rules written as plain recursion, to check the compiled regex against."""
    if not pattern:
        return not topic
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_reference(rest, topic[i:]) for i in range(len(topic) + 1))
    if not topic:
        return False
    return (head == "*" or head == topic[0]) and _reference(rest, topic[1:])


@given(
    pattern=st.lists(st.sampled_from(["a", "b", "*", "**"]), min_size=1, max_size=6),
    topic=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=7),
)
def test_match_topic_agrees_with_reference(pattern: list[str], topic: list[str]) -> None:
    assert match_topic(".".join(pattern), ".".join(topic)) is _reference(pattern, topic)


def _memoised_reference(pattern: list[str], topic: list[str]) -> bool:
    """The same rules over positions, each pair decided once: polynomial, so it can check
    patterns with many '**' where the plain recursion above would not finish."""
    import functools

    @functools.cache
    def match(p: int, t: int) -> bool:
        if p == len(pattern):
            return t == len(topic)
        if pattern[p] == "**":
            return match(p + 1, t) or (t < len(topic) and match(p, t + 1))
        return t < len(topic) and pattern[p] in ("*", topic[t]) and match(p + 1, t + 1)

    return match(0, 0)


@fuzz_settings(200)
@given(
    pattern=st.lists(st.sampled_from(["a", "b", "*", "**"]), min_size=1, max_size=40),
    topic=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=80),
)
def test_long_patterns_agree_with_the_rules(pattern: list[str], topic: list[str]) -> None:
    assert match_topic(".".join(pattern), ".".join(topic)) is _memoised_reference(pattern, topic)


def test_many_double_stars_match_in_one_pass() -> None:
    """A pattern of 255 characters with many '**' between literals, against a long topic that it
    misses at the end: the compiled regular expression backtracked through every way of
    splitting the topic (minutes for twelve '**'; a sensor's tick hung on it)."""
    pattern = ".".join(["**", "a"] * 42) + ".**.b"
    topic = ".".join(["a"] * 127)
    assert len(pattern) <= 255 and len(topic) <= 255
    assert match_topic(pattern, topic) is False
    assert match_topic(pattern, ".".join(["a"] * 84 + ["b"])) is True
