"""``python -m bench --set WORKLOAD.NAME=VALUE``: a workload's size given on the command line
(the full 10,000 events of ``events_exactly_once`` is its default; a user measures another size
without editing the workload)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.cli import parse_args
from bench.registry import BY_NAME, RunContext

names = st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True)
values = st.from_regex(r"[0-9A-Za-z_.:/-]{1,20}", fullmatch=True)


@given(workload=st.sampled_from(sorted(BY_NAME)), name=names, value=values)
def test_a_size_reaches_the_workload_as_given(workload, name, value):
    args = parse_args(["--smoke", "--set", f"{workload}.{name}={value}"])
    ctx = RunContext(smoke=True, command="python -m bench", env_id="e", params=dict(args.params))
    assert ctx.param(f"{workload}.{name}", "default") == value
    assert ctx.param(f"{workload}.other_{name}", 7) == 7  # not given: the workload's own size


def test_a_size_takes_the_type_of_the_default():
    ctx = RunContext(smoke=False, command="c", env_id="e", params={"events_exactly_once.events": "1000"})
    assert ctx.param("events_exactly_once.events", 10_000) == 1000


@pytest.mark.parametrize(
    ("given_text", "said"),
    [
        ("events=10", "expected WORKLOAD.NAME=VALUE"),
        ("events_exactly_once.events", "expected WORKLOAD.NAME=VALUE"),
        ("events_exactly_once.events=", "expected WORKLOAD.NAME=VALUE"),
        ("no_such_workload.events=10", "no workload 'no_such_workload'"),
    ],
)
def test_a_malformed_size_is_refused_with_a_message(capsys, given_text, said):
    with pytest.raises(SystemExit) as exited:
        parse_args(["--set", given_text])
    assert exited.value.code == 2
    assert said in capsys.readouterr().err
