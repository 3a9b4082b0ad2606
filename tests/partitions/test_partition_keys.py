"""Partition keys typed by a user (`dp partitions add FLOW KEY...`) follow the rule a spec's
static keys follow: a refused key is named with its flow and nothing is sent to Dagster (no key
of the command is added); an accepted key is one Dagster stores and gives back unchanged, and
a range of such keys splits back into its two ends."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dagster as dg
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dp_assets.cli import main
from dp_assets.spec.partitions import RANGE_SEPARATOR, partition_key_problem

# Dagster's separators and control characters mixed into ordinary text, and long keys.
hostile_keys = st.one_of(
    st.text(alphabet=st.sampled_from(list("ab.,[]*-_ é/'\"{}%$\\")) | st.characters(max_codepoint=0x7F), max_size=40),
    st.text(min_size=190, max_size=230),
    st.sampled_from(["", "...", "a...b", "2026-01-01...2026-01-02", "{{ params.x }}", "\x00", "a\nb", "x" * 201]),
)


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    """A loopback port standing in for Dagster's webserver: a connection to it is seen
    (the kernel completes it into the backlog) without anything answering."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(hostile_keys, min_size=1, max_size=3))
def test_partitions_add_refuses_a_bad_key_before_adding_any(listener, instance, keys):
    problems = {key: partition_key_problem(key) for key in keys}
    refused = [key for key, problem in problems.items() if problem is not None]
    if not refused:
        for key in keys:  # what the command would add: Dagster keeps it as given
            instance.add_dynamic_partitions("keys_flow", [key])
            assert instance.has_dynamic_partition("keys_flow", key)
            assert f"{key}{RANGE_SEPARATOR}{key}".split(RANGE_SEPARATOR) == [key, key]
        return
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/graphql"
    result = CliRunner().invoke(main, ["partitions", "add", "--url", url, "--", "keys_flow", *keys])
    assert result.exit_code == 1, result.output
    assert f"flow 'keys_flow': partition key {refused[0]!r} refused, nothing added" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(BlockingIOError):  # nothing was sent: no connection was made
        listener.accept()
