"""Date arithmetic in expressions: add_days/weeks/months/years move the calendar as pd.DateOffset,
add_hours/minutes/seconds add elapsed time as pd.Timedelta, nulls propagate, types are checked
before a run, and amounts are capped so nothing wraps around."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from node_helpers import make_ctx, run_node

from dp_assets.catalog import default_catalog
from dp_assets.expressions import ExpressionError, parse_expression
from dp_assets.spec.validation import FlowValidationError, validate_spec

STAMPS = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 12, 31))
CALENDAR = {"days": (-30_000, 30_000), "weeks": (-5_000, 5_000), "months": (-1_200, 1_200), "years": (-100, 100)}


@settings(max_examples=150, deadline=None)
@given(unit=st.sampled_from(list(CALENDAR)), data=st.data())
def test_calendar_moves_are_pd_dateoffset_per_row_nulls_kept(unit: str, data: Any) -> None:
    """Property: a column of amounts gives, row by row, what ``Timestamp + DateOffset`` gives, and a
    null value or amount gives NaT."""
    low, high = CALENDAR[unit]
    rows = data.draw(
        st.lists(st.tuples(st.none() | STAMPS, st.none() | st.integers(low, high)), min_size=1, max_size=8)
    )
    df = pd.DataFrame(
        {
            "at": pd.Series([r[0] for r in rows], dtype="datetime64[us]"),
            "k": pd.Series([r[1] for r in rows], dtype="Int64"),
        }
    )
    result = parse_expression(f"add_{unit}(at, k)").evaluate(df, {})
    for (stamp, amount), got in zip(rows, result, strict=True):
        if stamp is None or amount is None:
            assert got is pd.NaT
        else:
            assert got == pd.Timestamp(stamp) + pd.DateOffset(**{unit: amount})


@settings(max_examples=100, deadline=None)
@given(stamp=STAMPS, hours=st.floats(-1e5, 1e5, allow_nan=False), zone=st.sampled_from(["UTC", "Europe/Berlin"]))
def test_elapsed_time_is_pd_timedelta(stamp: dt.datetime, hours: float, zone: str) -> None:
    at = pd.Series([pd.Timestamp(stamp).tz_localize(zone, ambiguous=True, nonexistent="shift_forward")])
    result = parse_expression("add_hours(at, params.h)").evaluate(pd.DataFrame({"at": at}), {"h": hours})
    # pandas' sum, within the column's resolution (the column keeps its microseconds)
    assert abs(result.iloc[0] - (at.iloc[0] + pd.Timedelta(hours=hours))) < pd.Timedelta(microseconds=1)
    assert result.dtype == at.dtype


@settings(max_examples=150, deadline=None)
@given(
    stamp=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 12, 31)),
    days=st.integers(-800, 800),
)
def test_calendar_days_across_daylight_saving_keep_the_wall_clock(stamp: dt.datetime, days: int) -> None:
    """In a zone with daylight saving, add_days keeps the local time of day (a time the clocks skip
    moves forward), so the local date is always the calendar's."""
    zone = "America/New_York"
    start = pd.Timestamp(stamp).tz_localize(zone, ambiguous=True, nonexistent="shift_forward")
    moved = parse_expression("add_days(at, params.d)").evaluate(pd.DataFrame({"at": [start]}), {"d": days}).iloc[0]
    wall = start.tz_localize(None) + pd.Timedelta(days=days)
    assert moved.tz_localize(None).date() == wall.date()
    assert moved.tz_localize(None) == wall or wall.hour == 2  # only a skipped 02:xx moves


def test_dst_edges_are_resolved_not_raised() -> None:
    """pandas raises on a wall time the clocks skip or repeat; a move lands on the next real time,
    or the first of two."""
    at = pd.Series(pd.to_datetime(["2024-03-09 02:30", "2024-10-06 01:30"]).tz_localize("America/New_York"))
    with pytest.raises(ValueError, match="nonexistent"):
        _ = at + pd.DateOffset(days=1)
    moved = parse_expression("add_days(at, 1)").evaluate(pd.DataFrame({"at": at}), {})
    assert moved.iloc[0] == pd.Timestamp("2024-03-10 03:00", tz="America/New_York")
    repeated = parse_expression("add_weeks(at, 4)").evaluate(pd.DataFrame({"at": at}), {}).iloc[1]
    assert repeated == pd.Timestamp("2024-11-03 01:30-04:00")


def test_dates_stay_dates_and_text_becomes_timestamps() -> None:
    df = pd.DataFrame({"d": pd.Series([dt.date(2024, 1, 31), None], dtype=object), "s": ["2024-01-31", None]})
    assert parse_expression("add_months(d, 1)").evaluate(df, {}).tolist()[0] == dt.date(2024, 2, 29)
    assert parse_expression("add_hours(d, 6)").evaluate(df, {}).iloc[0] == pd.Timestamp("2024-01-31 06:00")
    assert parse_expression("add_years(s, 1)").evaluate(df, {}).iloc[0] == pd.Timestamp("2025-01-31")
    assert parse_expression("add_days(params.day, -1)").evaluate(df, {"day": dt.date(2024, 3, 1)}) == dt.date(
        2024, 2, 29
    )
    assert parse_expression("add_days(d, params.none)").evaluate(df, {"none": None}).isna().all()


SCHEMA = {"at": "datetime", "d": "date", "s": "string", "n": "integer", "f": "float", "flag": "boolean", "o": "any"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("add_days(at, n)", "datetime"),
        ("add_months(d, 1)", "date"),
        ("add_years(s, f)", "datetime"),
        ("add_weeks(o, 1)", "any"),
        ("add_hours(d, 1)", "datetime"),
        ("add_seconds(o, n)", "datetime"),
        ("date_diff_days(add_months(d, 1), d)", "integer"),
    ],
)
def test_result_types_before_a_run(text: str, expected: str) -> None:
    assert parse_expression(text).infer_type(SCHEMA) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("add_days(n, 1)", "add_days() needs a date or timestamp for value, but `n` is integer"),
        ("add_months(at, s)", "add_months() needs a number for months, but `s` is string"),
        ("add_hours(at, flag)", "add_hours() needs a number for hours, but `flag` is boolean"),
        ("add_days(at)", "add_days() got 1 argument in `add_days(at)`; usage: add_days(value, days)"),
    ],
)
def test_wrong_types_fail_before_a_run(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_expression(text).infer_type(SCHEMA)


def _flow(expression: str) -> dict[str, Any]:
    return {
        "id": "dates",
        "nodes": [
            {
                "id": "src",
                "type": "StaticData",
                "params": {"rows": [{"at": "2024-01-31"}], "dtype": {"at": "datetime64[us]"}},
            },
            {
                "id": "out",
                "type": "AddModifyColumn",
                "inputs": ["src"],
                "params": {"column": "x", "expression": expression},
            },
        ],
    }


def test_a_constant_past_the_cap_fails_dp_validate_naming_the_call() -> None:
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(_flow("add_days('2024-01-31', 10**9)"), default_catalog())
    text = str(caught.value)
    assert "node 'out'" in text and "add_days() needs a number of days between -100,000 and 100,000" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("add_months(at, params.big)", "add_months() needs a whole number of months between -120,000 and 120,000"),
        ("add_months(at, params.half)", "add_months() needs a whole number of months"),
        ("add_years(at, 9000)", "Out of bounds"),  # past what the column's timestamps hold: an error, never a wrap
        ("add_days(date(at), params.half)", "add_days() of a date needs whole days"),
    ],
)
def test_amounts_out_of_range_fail_at_run_time_naming_the_call(text: str, message: str) -> None:
    df = pd.DataFrame({"at": pd.Series(pd.to_datetime(["2024-01-31"])).astype("datetime64[ns]")})
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text).evaluate(df, {"big": 10**9, "half": 0.5})
    assert text.split("(")[0] in str(caught.value) and message in str(caught.value)


def test_add_modify_column_node_matches_pandas() -> None:
    """The node a user writes it in: a due date one month after each order, as pandas would."""
    df = pd.DataFrame({"ordered_at": pd.to_datetime(["2024-01-31 10:00", None, "2024-03-15 08:00"])})
    out = run_node(
        "AddModifyColumn", {"column": "due", "expression": "add_months(ordered_at, 1)"}, {"input": df}, make_ctx()
    )
    pd.testing.assert_series_equal(out["due"], df["ordered_at"] + pd.DateOffset(months=1), check_names=False)
