"""V1, V8: a table or schema name and an event topic are judged on their whole text.

The checks used ``re.match`` with a pattern ending in ``$``, which in Python also matches just
before a final newline: ``users\\n`` passed as a plain table name (a table of that name was then
made, quoted, beside ``users``), and a trigger's ``orders.created\\n`` passed as a topic that no
event ever carries. Each property compares the check with what the rule says, character by
character.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dp_assets.catalog.nodes.sql_names import MAX_IDENTIFIER, check_table
from dp_sensors.events.redis_stream import RedisStreamEventBus
from dp_sensors.events.topics import MAX_TOPIC_LENGTH, validate_topic, validate_topic_pattern
from tests.fuzzing import fuzz_settings

NAME_CHARS = string.ascii_letters + string.digits + "_"
SEGMENT_CHARS = NAME_CHARS + "-"
#: Mostly the allowed characters, with the ones a check may miss at its edges.
TEXT = st.text(st.sampled_from(NAME_CHARS + "-.*\n\r\t \x00é") | st.characters(), max_size=80)


def _plain_name(part: str) -> bool:
    return 0 < len(part) <= MAX_IDENTIFIER and part[0] not in string.digits and all(c in NAME_CHARS for c in part)


def _accepted(check, value: str) -> bool:
    try:
        check(value)
    except ValueError:
        return False
    return True


@fuzz_settings(300)
@given(text=TEXT)
@example(text="users\n")
@example(text="sales.orders\n")
@example(text="users\r")
def test_V1_a_table_name_is_accepted_exactly_when_every_part_is_plain(text: str) -> None:
    parts = text.split(".")
    assert _accepted(check_table, text) == (len(parts) <= 2 and all(_plain_name(p) for p in parts)), repr(text)


@fuzz_settings(300)
@given(text=TEXT)
@example(text="orders.created\n")
@example(text="orders.*.created\n")
def test_V8_a_topic_and_a_pattern_are_accepted_exactly_when_every_segment_is_allowed(text: str) -> None:
    segments = text.split(".")
    fits = 0 < len(text) <= MAX_TOPIC_LENGTH and all(s and all(c in SEGMENT_CHARS for c in s) for s in segments)
    assert _accepted(validate_topic, text) == fits, repr(text)
    wild = 0 < len(text) <= MAX_TOPIC_LENGTH and all(
        s in ("*", "**") or (s and all(c in SEGMENT_CHARS for c in s)) for s in segments
    )
    assert _accepted(validate_topic_pattern, text) == wild, repr(text)


@pytest.mark.parametrize("value", ["1-0\n", "1-0", "x-0", "1-0-1"])
def test_a_redis_stream_id_is_its_whole_text(value: str) -> None:
    assert _accepted(lambda v: RedisStreamEventBus._parse_id(v, "cursor"), value) == (value == "1-0")
