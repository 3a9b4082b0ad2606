"""Expressions against the same thing hand-written in pandas, on a frame with nulls, mixed dtypes,
pandas 3 default strings and tz-aware timestamps, and on the same frame with no rows."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dp_assets.expressions import FUNCTION_NAMES, ExpressionError, parse_expression

PARAMS = {"min": 2, "fruits": ["apple", "cherry"], "label": "n=", "cutoff": "2024-03-01"}


def make_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": [1, 2, 3, 4, 5],
            "i": pd.Series([1, 2, None, 4, 5], dtype="Int64"),
            "f": [1.5, None, -2.25, 0.0, 10.0],
            "s": ["Apple", None, " banana ", "cherry", "apple"],
            "o": pd.Series([1, "x", None, 2.5, True], dtype=object),
            "b": pd.Series([True, False, None, True, False], dtype="boolean"),
            "flag": [True, False, True, True, False],
            "ts": pd.to_datetime(
                [
                    "2024-01-01 23:30",
                    None,
                    "2024-03-05 00:15",
                    "2024-12-31 12:00",
                    "2023-06-01 00:00",
                ]
            ).tz_localize("Europe/Berlin"),
            "naive": pd.to_datetime(["2024-01-02", "2024-02-29", None, "2025-01-01", "2023-06-01"]),
            "ds": ["2024-01-05", None, "2024-02-10", "2024-03-15", "2023-12-31"],
            "unit price": [9.99, 1.0, None, 3.5, 0.5],
        }
    )


Case = tuple[str, Callable[[pd.DataFrame, dict[str, Any]], Any]]

CASES: dict[str, Case] = {
    # comparisons and arithmetic
    "gt-nullable-int": ("i > 2", lambda d, p: d.i > 2),
    "eq-text": ("s == 'apple'", lambda d, p: d.s == "apple"),
    "ne-float-with-nan": ("f != 0", lambda d, p: d.f != 0),
    "chained": ("1 < n <= 4", lambda d, p: (d.n > 1) & (d.n <= 4)),
    "reversed-compare": ("2 < f", lambda d, p: d.f > 2),
    "arith-mixed": ("n * 2 + f", lambda d, p: d.n * 2 + d.f),
    "arith-nullable": ("i + n", lambda d, p: d.i + d.n),
    "truediv": ("n / 2", lambda d, p: d.n / 2),
    "floordiv": ("n // 2", lambda d, p: d.n // 2),
    "mod": ("n % 2", lambda d, p: d.n % 2),
    "pow": ("n ** 2", lambda d, p: d.n**2),
    "negate": ("-f", lambda d, p: -d.f),
    "div-by-zero-column": ("f / (n - n)", lambda d, p: d.f / (d.n - d.n)),
    "text-plus": ("s + '!'", lambda d, p: d.s + "!"),
    "space-column": ('col("unit price") * n', lambda d, p: d["unit price"] * d.n),
    "param": ("n > params.min", lambda d, p: d.n > p["min"]),
    "ts-vs-text": ("ts > '2024-03-01'", lambda d, p: d.ts > "2024-03-01"),
    "ts-vs-param": ("naive >= params.cutoff", lambda d, p: d.naive >= p["cutoff"]),
    # logic
    "and": ("flag and n > 2", lambda d, p: d.flag & (d.n > 2)),
    "or-kleene": ("b or flag", lambda d, p: d.b | d.flag),
    "and-kleene": ("b and flag", lambda d, p: d.b & d.flag),
    "not": ("not flag", lambda d, p: ~d.flag),
    "not-nullable": ("not b", lambda d, p: ~d.b),
    "and-null-scalar": ("flag and None", lambda d, p: d.flag.astype("boolean") & pd.NA),
    "in-list": ("s in ['Apple', 'cherry']", lambda d, p: d.s.isin(["Apple", "cherry"])),
    "not-in-list": ("n not in [1, 2]", lambda d, p: ~d.n.isin([1, 2])),
    "in-param": ("lower(s) in params.fruits", lambda d, p: d.s.str.lower().isin(p["fruits"])),
    "in-tuple-negative": ("i in (-1, 4)", lambda d, p: d.i.isin([-1, 4])),
    # if/else
    "ternary-scalars": (
        "'big' if n > 2 else 'small'",
        lambda d, p: pd.Series("big", index=d.index).where(d.n > 2, "small"),
    ),
    "ternary-series": ("f if f > 0 else 0", lambda d, p: d.f.where(d.f > 0, 0)),
    "ternary-null-cond": (
        "1 if b else 0",
        lambda d, p: pd.Series(1, index=d.index).where(d.b.fillna(False), 0),
    ),
    "ternary-else-series": ("0 if flag else n", lambda d, p: d.n.mask(d.flag, 0)),
    # nulls
    "is_null": ("is_null(f)", lambda d, p: d.f.isna()),
    "not_null": ("not_null(s)", lambda d, p: d.s.notna()),
    "coalesce": ("coalesce(f, n)", lambda d, p: d.f.fillna(d.n)),
    "coalesce-three": ("coalesce(f, i, 0)", lambda d, p: d.f.fillna(d.i).fillna(0)),
    "fillna": ("fillna(s, 'none')", lambda d, p: d.s.fillna("none")),
    "is_null-mixed": ("is_null(o)", lambda d, p: d.o.isna()),
    # text
    "lower": ("lower(s)", lambda d, p: d.s.str.lower()),
    "upper": ("upper(s)", lambda d, p: d.s.str.upper()),
    "strip": ("strip(s)", lambda d, p: d.s.str.strip()),
    "len": ("len(s)", lambda d, p: d.s.str.len()),
    "contains": ("contains(s, 'an')", lambda d, p: d.s.str.contains("an", regex=False)),
    "contains-regex-chars": ("contains(s, '.*')", lambda d, p: d.s.str.contains(".*", regex=False)),
    "startswith": ("startswith(s, 'A')", lambda d, p: d.s.str.startswith("A")),
    "endswith": ("endswith(s, 'e')", lambda d, p: d.s.str.endswith("e")),
    "replace": ("replace(s, 'a', 'A')", lambda d, p: d.s.str.replace("a", "A", regex=False)),
    "substr": ("substr(s, 0, 3)", lambda d, p: d.s.str.slice(0, 3)),
    "substr-from-end": ("substr(s, -3)", lambda d, p: d.s.str.slice(-3)),
    "concat": ("concat(s, '-', n)", lambda d, p: d.s + "-" + d.n.astype("str")),
    "concat-param": ("concat(params.label, i)", lambda d, p: p["label"] + d.i.astype("str")),
    "str-mixed": ("str(o)", lambda d, p: d.o.astype("str")),
    # dates and time zones
    "year-tz": ("year(ts)", lambda d, p: d.ts.dt.year),
    "month-naive": ("month(naive)", lambda d, p: d.naive.dt.month),
    "day-tz": ("day(ts)", lambda d, p: d.ts.dt.day),
    "year-text": ("year(ds)", lambda d, p: pd.to_datetime(d.ds).dt.year),
    "date-tz-local": ("date(ts)", lambda d, p: d.ts.dt.date),
    "date-compare": (
        "date(ts) >= date('2024-03-05')",
        lambda d, p: d.ts.dt.date >= dt.date(2024, 3, 5),
    ),
    "to_datetime": ("to_datetime(ds)", lambda d, p: pd.to_datetime(d.ds)),
    "to_datetime-format": (
        "to_datetime(ds, '%Y-%m-%d')",
        lambda d, p: pd.to_datetime(d.ds, format="%Y-%m-%d"),
    ),
    "ts-vs-aware": (
        "ts < to_datetime('2024-03-04T23:30:00+00:00')",
        lambda d, p: d.ts < pd.Timestamp("2024-03-04T23:30:00+00:00"),
    ),
    "now-aware": ("ts < now()", lambda d, p: d.ts < pd.Timestamp.now(tz="UTC")),
    "date_diff_days": (
        "date_diff_days(naive, '2024-01-01')",
        lambda d, p: (d.naive.dt.normalize() - pd.Timestamp("2024-01-01")).dt.days,
    ),
    "date_diff_days-tz": (
        "date_diff_days(ts, naive)",
        lambda d, p: (d.ts.dt.normalize().dt.tz_localize(None) - d.naive).dt.days,
    ),
    # date arithmetic: calendar moves as pd.DateOffset, elapsed time as pd.Timedelta
    "add_months-tz": ("add_months(ts, 1)", lambda d, p: d.ts + pd.DateOffset(months=1)),
    "add_months-month-end": ("add_months(naive, -1)", lambda d, p: d.naive + pd.DateOffset(months=-1)),
    "add_years-leap-day": ("add_years(naive, 1)", lambda d, p: d.naive + pd.DateOffset(years=1)),
    "add_days-column": ("add_days(naive, n)", lambda d, p: d.naive + pd.to_timedelta(d.n, unit="D")),
    "add_days-nullable-amount": (
        "add_days(ts, i)",
        lambda d, p: d.ts + pd.to_timedelta(d.i.astype("float64"), unit="D"),
    ),
    "add_days-date": (
        "add_days(date(ts), -1)",
        lambda d, p: (pd.to_datetime(d.ts.dt.date) + pd.DateOffset(days=-1)).dt.date.astype(object),
    ),
    "add_weeks": ("add_weeks(naive, 2)", lambda d, p: d.naive + pd.Timedelta(weeks=2)),
    "add_hours": ("add_hours(ts, -1.5)", lambda d, p: d.ts + pd.Timedelta(hours=-1.5)),
    "add_minutes-param-text": (
        "add_minutes(params.cutoff, n)",
        lambda d, p: pd.Timestamp(p["cutoff"]) + pd.to_timedelta(d.n, unit="min"),
    ),
    "add_seconds-keeps-unit": (
        "add_seconds(naive, f)",
        lambda d, p: (d.naive + pd.to_timedelta(d.f, unit="s")).astype(d.naive.dtype),
    ),
    "date_diff_days-of-moved": (
        "date_diff_days(add_months(naive, 1), naive)",
        lambda d, p: ((d.naive + pd.DateOffset(months=1)) - d.naive).dt.days,
    ),
    # numbers
    "abs": ("abs(f)", lambda d, p: d.f.abs()),
    "round": ("round(f, 1)", lambda d, p: d.f.round(1)),
    "round-nullable": ("round(i)", lambda d, p: d.i.round(0)),
    "floor": ("floor(f)", lambda d, p: np.floor(d.f)),
    "ceil": ("ceil(f)", lambda d, p: np.ceil(d.f)),
    "floor-int": ("floor(n)", lambda d, p: d.n),
    "least": ("least(n, f)", lambda d, p: pd.concat([d.n, d.f], axis=1).min(axis=1)),
    "greatest": (
        "greatest(n, 3)",
        lambda d, p: pd.concat([d.n, pd.Series(3, index=d.index)], axis=1).max(axis=1),
    ),
    "between": ("between(f, 0, 5)", lambda d, p: d.f.between(0, 5)),
    # casts
    "int": ("int(f)", lambda d, p: np.trunc(d.f).astype("Int64")),
    "int-text": (
        "int(substr(ds, 0, 4))",
        lambda d, p: pd.to_numeric(d.ds.str.slice(0, 4)).astype("Int64"),
    ),
    "float": ("float(i)", lambda d, p: d.i.astype("float64")),
    "str": ("str(n)", lambda d, p: d.n.astype("str")),
    "bool": ("bool(n - 1)", lambda d, p: (d.n - 1).ne(0).astype("boolean")),
    "bool-nullable": ("bool(f)", lambda d, p: d.f.ne(0).astype("boolean").mask(d.f.isna(), pd.NA)),
    "bool-text": (
        "bool(lower(s) == 'apple')",
        lambda d, p: (d.s.str.lower() == "apple").astype("boolean"),
    ),
    # whole-expression scalars
    "scalar-arith": ("1 + 2 * 3", lambda d, p: 7),
    "scalar-param": ("params.min * 2", lambda d, p: 4),
    "scalar-text": ("upper('x')", lambda d, p: "X"),
}


def _frames() -> list[Any]:
    return [pytest.param(False, id="rows"), pytest.param(True, id="empty")]


def _assert_same(result: Any, expected: Any) -> None:
    if isinstance(expected, pd.Series):
        assert isinstance(result, pd.Series)
        pd.testing.assert_series_equal(result, expected, check_names=False)
    else:
        assert result == expected


@pytest.mark.parametrize("empty", _frames())
@pytest.mark.parametrize(("text", "by_hand"), list(CASES.values()), ids=list(CASES))
def test_expression_matches_pandas(text: str, by_hand: Callable[..., Any], empty: bool) -> None:
    df = make_frame()
    if empty:
        df = df.iloc[0:0]
    result = parse_expression(text).evaluate(df, PARAMS)
    _assert_same(result, by_hand(df, PARAMS))


def test_every_function_has_a_case() -> None:
    """Completeness: a function added to the table without a case here fails this test."""
    used = {name for text, _ in CASES.values() for name in re.findall(r"([a-z_]+)\(", text)}
    assert set(FUNCTION_NAMES) - used == set()


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        pytest.param("i > 1", [False, True, False, True, True], id="nullable-null-is-false"),
        pytest.param("b", [True, False, False, True, False], id="boolean-column"),
        pytest.param("f > 0", [True, False, False, False, True], id="nan-is-false"),
        pytest.param("contains(s, 'a')", [False, False, True, False, True], id="missing-text-is-false"),
        pytest.param("None", [False] * 5, id="scalar-null"),
        pytest.param("params.min > 1", [True] * 5, id="scalar-true"),
        pytest.param("o == 1", [True, False, False, False, True], id="mixed-object"),
    ],
)
def test_evaluate_mask_counts_null_as_false(text: str, kept: list[bool]) -> None:
    mask = parse_expression(text).evaluate_mask(make_frame(), PARAMS)
    assert mask.dtype == bool
    assert mask.tolist() == kept


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("n + 1", "`n + 1` must be true/false, but its values are int64", id="number"),
        pytest.param("s", "`s` must be true/false, but its values are str", id="text"),
        pytest.param("5", "`5` must be true/false, not 5", id="scalar"),
    ],
)
def test_evaluate_mask_refuses_non_boolean(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text).evaluate_mask(make_frame(), PARAMS)
    assert caught.value.message.startswith(message)


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        pytest.param(
            "nope > 1",
            {},
            "unknown column `nope` (columns: n, i, f, s, o, b, flag, ts, naive, ds, unit price)",
            id="missing-column",
        ),
        pytest.param(
            "flgg",
            {},
            "unknown column `flgg` (columns: n, i, f, s, o, b, flag, ts, naive, ds, unit price); did you mean `flag`?",
            id="close-match",
        ),
        pytest.param(
            "n > params.x",
            {"y": 1},
            "flow param `x` is not set (flow params: y)",
            id="missing-param",
        ),
        pytest.param(
            "n + params.x",
            {"x": [1, 2]},
            "`params.x` is a list; a list may only follow `in` or `not in`",
            id="list-param",
        ),
        pytest.param(
            "n + params.x",
            {"x": {"a": 1}},
            "`params.x` is a dict, not a single value",
            id="dict-param",
        ),
        pytest.param(
            "lower(n)",
            {},
            "cannot evaluate `lower(n)`: lower() needs text, but the values are int64; use str(x) first",
            id="lower-number",
        ),
        pytest.param("s + 1", {}, "cannot evaluate `s + 1`:", id="text-plus-number"),
        pytest.param("flag and n", {}, "`n` must be true/false, but its values are int64", id="and-number"),
        pytest.param(
            "ts > now(None)",
            {},
            "cannot evaluate `ts > now(None)`: Invalid comparison between dtype=datetime64[us, Europe/Berlin] and Timestamp "
            "(time zones differ: compare aware with aware and naive with naive; now() is UTC-aware, now(None) is naive UTC)",
            id="tz-mismatch",
        ),
        pytest.param(
            "s * n",
            {},
            "repeating text with `*` is not allowed: `s * n`; use concat(a, b, ...)",
            id="repeat-text-column",
        ),
        pytest.param("o * 3", {}, "repeating text with `*` is not allowed: `o * 3`", id="repeat-mixed-column"),
        pytest.param(
            "o ** 2",
            {},
            "`**` needs numeric columns, but `o ** 2` has mixed values",
            id="pow-object",
        ),
        pytest.param("s % n", {}, "formatting text with `%` is not allowed: `s % n`", id="printf-text"),
        pytest.param(
            "n * params.big",
            {"big": 2**70},
            "`n * params.big`: the number 1180591620717411303424 does not fit in a 64-bit column",
            id="bigint-column",
        ),
        pytest.param(
            "bool(s)",
            {},
            "cannot evaluate `bool(s)`: bool() cannot read 'Apple' as true/false",
            id="bool-text",
        ),
        pytest.param(
            "replace(s, '', params.pad)",
            {"pad": "x" * 200_000},
            "cannot evaluate `replace(s, '', params.pad)`: the result could reach",
            id="replace-growth",
        ),
    ],
)
def test_evaluation_errors_name_the_part(text: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text).evaluate(make_frame(), params)
    assert caught.value.message.startswith(message)


def test_parse_is_cached() -> None:
    assert parse_expression("n > 1 and flag") is parse_expression("n > 1 and flag")


@pytest.mark.parametrize(
    ("text", "columns", "params"),
    [
        pytest.param("a + col('b c') > params.x", {"a", "b c"}, {"x"}, id="mixed"),
        pytest.param("lower(s) in params.names", {"s"}, {"names"}, id="in-param"),
        pytest.param("1 + 2", set(), set(), id="constant"),
    ],
)
def test_columns_and_params_are_listed(text: str, columns: set[str], params: set[str]) -> None:
    expression = parse_expression(text)
    assert expression.columns == frozenset(columns)
    assert expression.params == frozenset(params)


def test_input_frame_is_not_modified() -> None:
    df = make_frame()
    before = df.copy()
    parse_expression("fillna(f, 0) + coalesce(i, 1)").evaluate(df, PARAMS)
    pd.testing.assert_frame_equal(df, before)


def test_arrow_backed_columns() -> None:
    df = pd.DataFrame(
        {"x": [1, None, 3], "s": ["a", None, "B"]},
    ).convert_dtypes(dtype_backend="pyarrow")
    result = parse_expression("x > 1 and lower(s) == 'b'").evaluate_mask(df, {})
    assert result.tolist() == [False, False, True]
    doubled = parse_expression("x * 2").evaluate(df, {})
    pd.testing.assert_series_equal(doubled, df.x * 2, check_names=False)


def test_parsing_does_not_import_pandas() -> None:
    """Spec validation parses expressions; importing and parsing stay free of pandas."""
    import subprocess
    import sys

    code = (
        "import sys; from dp_assets.expressions import parse_expression; "
        "parse_expression('a > 1 and lower(s) in params.names'); "
        "assert 'pandas' not in sys.modules, 'pandas was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
