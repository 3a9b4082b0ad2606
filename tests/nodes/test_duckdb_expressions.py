"""Property (issue 20): for generated expressions and frames, an expression compiled to DuckDB SQL
gives the pandas evaluator's values — same dtype, same missing values — or it has no DuckDB form
(``NotSupported``) and runs in pandas. Plus the edge cases the issue names: nulls, integer
division, text functions, dates and date arithmetic.

The generated frames hold numpy-backed columns as files and joins give them (an integer column
without missing values, floats with NaN, ``str`` text with NaN, naive timestamps with NaT) and
small integers: numpy wraps an overflowing integer around where DuckDB raises (docs/nodes.md).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import pandas as pd
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from dp_assets.catalog import default_catalog
from dp_assets.engine import NotSupported
from dp_assets.engine.chain import Engine
from dp_assets.expressions import ExpressionError, parse_expression
from tests.fuzzing import fuzz_settings

TEXT = st.text(alphabet="abAB x_%'", max_size=4)
WORDS = ["'a'", "'B'", "' x'", "''", "'ab'"]


def _frames() -> st.SearchStrategy[pd.DataFrame]:
    row = st.tuples(
        st.integers(-20, 20),
        st.none() | st.floats(-50, 50, allow_nan=False).map(lambda x: round(x, 2)),
        st.none() | TEXT,
        st.none() | st.dates(dt.date(1999, 1, 1), dt.date(2031, 12, 31)),
        st.booleans(),
    )

    def build(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
        i, f, s, t, b = zip(*rows, strict=True) if rows else ([], [], [], [], [])
        return pd.DataFrame(
            {
                "i": pd.Series(i, dtype="int64"),
                "f": pd.Series(f, dtype="float64"),
                "s": pd.Series(s, dtype="str"),
                "t": pd.to_datetime(pd.Series(t, dtype=object)).astype("datetime64[us]"),
                "b": pd.Series(b, dtype="bool"),
            }
        )

    return st.lists(row, max_size=6).map(build)


def _expressions() -> st.SearchStrategy[str]:
    ints = st.sampled_from(["i", "0", "3", "-2", "len(s)", "year(t)", "month(t)", "day(t)"])
    floats = st.sampled_from(["f", "2.5", "-0.5", "0.0"])
    texts = st.sampled_from(["s", *WORDS])
    dates = st.sampled_from(["t", "add_days(t, 3)", "add_months(t, -1)", "add_years(t, 1)", "add_hours(t, 5)"])

    def number(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//", "%"]), children).map(
                lambda p: f"({p[0]} {p[1]} {p[2]})"
            ),
            st.tuples(st.sampled_from(["abs", "floor", "ceil", "round", "float"]), children).map(
                lambda p: f"{p[0]}({p[1]})"
            ),
            st.tuples(children, st.integers(0, 2)).map(lambda p: f"round({p[0]}, {p[1]})"),
            st.tuples(st.sampled_from(["least", "greatest", "coalesce"]), children, children).map(
                lambda p: f"{p[0]}({p[1]}, {p[2]})"
            ),
        )

    numbers = st.recursive(ints | floats, number, max_leaves=4)

    def text(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(st.sampled_from(["lower", "upper", "strip", "str"]), children).map(lambda p: f"{p[0]}({p[1]})"),
            st.tuples(children, children).map(lambda p: f"({p[0]} + {p[1]})"),
            st.tuples(children, st.sampled_from(WORDS[:3]), texts).map(lambda p: f"replace({p[0]}, {p[1]}, {p[2]})"),
            st.tuples(children, st.integers(0, 3), st.integers(0, 3)).map(lambda p: f"substr({p[0]}, {p[1]}, {p[2]})"),
            st.tuples(children, ints).map(lambda p: f"concat({p[0]}, {p[1]})"),
            st.tuples(children, children).map(lambda p: f"fillna({p[0]}, {p[1]})"),
        )

    strings = st.recursive(texts, text, max_leaves=3)
    compare = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    atoms = st.one_of(
        st.tuples(numbers, compare, numbers).map(lambda p: f"{p[0]} {p[1]} {p[2]}"),
        st.tuples(strings, compare, strings).map(lambda p: f"{p[0]} {p[1]} {p[2]}"),
        st.tuples(dates, compare, st.sampled_from(["t", "'2024-01-01'", "'2000-02-29 10:00'"])).map(
            lambda p: f"{p[0]} {p[1]} {p[2]}"
        ),
        st.tuples(st.sampled_from(["is_null", "not_null"]), numbers | strings | dates).map(lambda p: f"{p[0]}({p[1]})"),
        st.tuples(st.sampled_from(["contains", "startswith", "endswith"]), strings, st.sampled_from(WORDS)).map(
            lambda p: f"{p[0]}({p[1]}, {p[2]})"
        ),
        st.tuples(numbers, numbers, numbers).map(lambda p: f"between({p[0]}, {p[1]}, {p[2]})"),
        st.tuples(strings, st.sampled_from(["in ['a', None]", "not in ['a', 'B']", "in []"])).map(" ".join),
        st.just("b"),
    )

    def logic(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, st.sampled_from(["and", "or"]), children).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
            children.map(lambda c: f"(not {c})"),
        )

    conditions = st.recursive(atoms, logic, max_leaves=3)
    values = numbers | strings | dates | conditions
    chosen = st.tuples(conditions, values, values).map(lambda p: f"({p[1]} if {p[0]} else {p[2]})")
    return st.one_of(values, conditions, chosen)


def _both(expression: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    try:
        value = parse_expression(expression).evaluate(frame, {})
    except ExpressionError:
        return None  # pandas refuses it: checked before a run, whichever engine runs it
    want = frame.assign(out=value)
    params = default_catalog()["AddModifyColumn"].params_model.model_validate(
        {"column": "out", "expression": expression}
    )
    try:
        got = _engine().run("AddModifyColumn", params, {"input": frame}, {}).frame()
    except NotSupported:
        return None
    return got, want


COMPILED: list[str] = []


@functools.cache
def _engine() -> Engine:
    """One connection for the module: opening one per example costs more than the example."""
    return Engine()


@fuzz_settings(150)
# Found by a long run (DP_FUZZ_EXAMPLES=10): DuckDB cast least/greatest of integers to DOUBLE
# where pandas keeps int64.
@example(
    expression="least(i, i)",
    frame=pd.DataFrame(
        {
            "i": pd.Series([0], dtype="int64"),
            "f": pd.Series([None], dtype="float64"),
            "s": pd.Series([None], dtype="str"),
            "t": pd.Series([None], dtype="datetime64[us]"),
            "b": pd.Series([False], dtype="bool"),
        }
    ),
)
# ... and DuckDB's fmod of a number by an infinite one is NaN (C's is the number): i // (3 / i).
@example(
    expression="(i // (3 / i))",
    frame=pd.DataFrame(
        {
            "i": pd.Series([0, 1, -2], dtype="int64"),
            "f": pd.Series([None, None, None], dtype="float64"),
            "s": pd.Series([None, None, None], dtype="str"),
            "t": pd.Series([None, None, None], dtype="datetime64[us]"),
            "b": pd.Series([False, False, False], dtype="bool"),
        }
    ),
)
@example(expression="(-1.5 % (3 / i))", frame=pd.DataFrame({"i": pd.Series([0], dtype="int64")}))
@given(expression=_expressions(), frame=_frames())
def test_duckdb_expression_gives_pandas_values(expression: str, frame: pd.DataFrame) -> None:
    pair = _both(expression, frame)
    assume(pair is not None)
    got, want = pair  # type: ignore[misc]
    COMPILED.append(expression)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9)


EDGE_FRAME = pd.DataFrame(
    {
        "i": [7, -7, 0, 5],
        "f": [7.5, -7.5, None, 0.0],
        "s": pd.Series(["Ab c", None, "", "  x "], dtype="str"),
        "t": pd.to_datetime(["2024-01-31 10:00", None, "2000-02-29 00:00", "1999-12-31 23:59"]),
        "b": [True, False, True, False],
    }
)


@pytest.mark.parametrize(
    "expression",
    [
        "i // 2",
        "i % -3",
        "i / 0",
        "f / 0",
        "f // 0",
        "f % 2.5",
        "-f // 2",
        "i == -7",
        "f != 1.0",
        "s != 'x'",
        "s == s",
        "is_null(f) or not_null(s)",
        "coalesce(f, 0.0)",
        "fillna(s, '?')",
        "lower(s) + upper(s)",
        "strip(s)",
        "len(s)",
        "substr(s, 1, 2)",
        "replace(s, ' ', '_')",
        "contains(s, 'b')",
        "startswith(s, 'A')",
        "concat(s, 3)",
        "year(t) * 100 + month(t)",
        "day(t)",
        "add_months(t, 1)",
        "add_years(t, -1)",
        "add_days(t, 1) > '2024-02-01'",
        "date_diff_days(t, t)",
        "round(f / 3, 1)",
        "round(2.5 + f * 0)",
        "least(f, i * 1.0)",
        "s in ['Ab c', None]",
        "f if b else i * 1.0",
        "between(f, -1, 8)",
    ],
)
def test_duckdb_expression_edge_cases(expression: str) -> None:
    pair = _both(expression, EDGE_FRAME)
    assert pair is not None, f"{expression} has no DuckDB form"
    got, want = pair
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_refused_expression_has_no_duckdb_form_either() -> None:
    """What pandas refuses is refused before a run; what DuckDB cannot follow runs in pandas."""
    assert _both("s * 2", EDGE_FRAME) is None
    assert _both("i // i", EDGE_FRAME) is None  # pandas' dtype depends on a zero divisor
    assert _both("concat(s, year(t))", EDGE_FRAME) is None  # a missing year makes pandas say "2000.0"


DATED_FRAME = pd.DataFrame(
    {
        "i": pd.Series([0, 3, -4], dtype="int64"),
        "s": pd.Series(["bb", "a", ""], dtype="str"),
        "t": pd.to_datetime(pd.Series(["2023-05-06", "2024-01-02", "1999-12-31"])).astype("datetime64[us]"),
        "b": pd.Series([False, True, True], dtype="bool"),
    }
)


@pytest.mark.parametrize(
    "expression",
    ["year(t) + (0 + 0)", "year(t) * (2 - 1)", "(i if b else 0)", "(0 if b else i)", "(1 if b else 2)"],
)
def test_integer_width_follows_pandas(expression: str) -> None:
    """Found by a long run (DP_FUZZ_EXAMPLES=10): folded integer literals made DuckDB's result
    BIGINT beside year()'s int32, where Python folds them before numpy sees one untyped int."""
    pair = _both(expression, DATED_FRAME)
    assert pair is not None, f"{expression} has no DuckDB form"
    got, want = pair
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("expression", ["(0 if b else year(t))", "(year(t) if b else 0)", "(0 if b else len(s))"])
@pytest.mark.parametrize("missing_row", [None, 0, 1])
def test_an_integer_chosen_from_a_computed_value_runs_in_pandas(expression: str, missing_row: int | None) -> None:
    """pandas computes both branches over every row: a missing year in a row the condition does
    not choose makes the column float64, and year's int32 sets its width; a SQL column's type
    cannot depend on either, so such a choice runs in pandas (it gave int64 here)."""
    frame = DATED_FRAME.copy()
    if missing_row is not None:
        frame.loc[missing_row, "t"] = pd.NaT
        frame.loc[missing_row, "s"] = None
    assert _both(expression, frame) is None
    assert parse_expression(expression).evaluate(frame, {}) is not None  # pandas runs it
