"""Fuzzing (X1/X2): whatever the text, parsing, type inference and evaluation raise nothing but
``ExpressionError``, and a value they return is a single value or a Series on the frame's index."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_assets.expressions import FUNCTION_NAMES, ExpressionError, parse_expression
from tests.fuzzing import fuzz_settings

FUZZ = fuzz_settings(300)  # fixed seed in CI; DP_FUZZ_EXAMPLES=N for a long run

SCHEMA = {"a": "integer", "f": "float", "s": "string", "t": "datetime", "b": "boolean", "o": "any"}
PARAMS: dict[str, Any] = {
    "n": 3,
    "txt": "ab",
    "when": "2024-01-01",
    "items": [1, "x", None],
    "none": None,
}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": pd.Series([1, None, -3, 0], dtype="Int64"),
            "f": [0.5, None, -1e308, 2.0],
            "s": ["x", None, "%s", "Abc"],
            "t": pd.to_datetime(["2024-01-01", None, "1999-12-31", "2030-06-01"]).tz_localize("UTC"),
            "b": pd.Series([True, None, False, True], dtype="boolean"),
            "o": pd.Series([1, "y", None, [1]], dtype=object),
        }
    )


TOKENS = [
    "a",
    "f",
    "s",
    "t",
    "b",
    "o",
    "params.n",
    "params.txt",
    "params.items",
    "params.when",
    "params.none",
    "params.missing",
    "1",
    "0",
    "-1",
    "2.5",
    "1e308",
    "'x'",
    "''",
    "'%d'",
    "True",
    "None",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "==",
    "!=",
    "<",
    ">=",
    "and",
    "or",
    "not",
    "in",
    "not in",
    "if",
    "else",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "__class__",
    "lambda",
    ":",
    "for",
    "col('s')",
    *[f"{name}(" for name in FUNCTION_NAMES],
]


def _check(text: str) -> None:
    try:
        expression = parse_expression(text)
    except ExpressionError:
        return
    try:
        expression.infer_type(SCHEMA)
    except ExpressionError:
        pass
    df = _frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = expression.evaluate(df, PARAMS)
        except ExpressionError:
            return
        try:
            expression.evaluate_mask(df, PARAMS)
        except ExpressionError:
            pass
    if isinstance(result, pd.Series):
        assert result.index.equals(df.index)
    else:
        assert not isinstance(result, pd.DataFrame)


@FUZZ
@given(st.text(max_size=120))
def test_random_text_only_raises_expression_error(text: str) -> None:
    """X1: arbitrary text (unicode, control characters, null bytes)."""
    _check(text)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join))
def test_token_soup_only_raises_expression_error(text: str) -> None:
    """X1/X2: sequences of the language's own tokens, so many of them parse and evaluate."""
    _check(text)


LEAVES = st.sampled_from(
    [
        "a",
        "f",
        "s",
        "t",
        "b",
        "o",
        "params.n",
        "params.txt",
        "params.when",
        "params.none",
        "1",
        "-2",
        "0",
        "3.5",
        "'x'",
        "'2024-01-01'",
        "True",
        "None",
        "now()",
    ]
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(
        children,
        st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "==", "<", ">=", "and", "or"]),
        children,
    )
    calls = st.tuples(st.sampled_from(FUNCTION_NAMES), st.lists(children, min_size=0, max_size=3))
    return st.one_of(
        binary.map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
        calls.map(lambda c: f"{c[0]}({', '.join(c[1])})"),
        st.tuples(children, children, children).map(lambda p: f"({p[0]} if {p[1]} else {p[2]})"),
        children.map(lambda c: f"(not {c})"),
        children.map(lambda c: f"({c} in [1, 'x', None])"),
        children.map(lambda c: f"({c} not in params.items)"),
    )


@FUZZ
@given(st.recursive(LEAVES, _combine, max_leaves=12))
def test_well_formed_expressions_only_raise_expression_error(text: str) -> None:
    """X2: well-formed expressions over every function and operator, on nulls and extremes."""
    _check(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("\x00", id="null-byte"),
        pytest.param("a\u2028b", id="line-separator"),
        pytest.param("'\ud800'", id="lone-surrogate"),
        pytest.param("0" * 4000, id="long-number"),
        pytest.param("1e999 * 0", id="inf-times-zero"),
        pytest.param("int(1e308 * 10)", id="int-of-inf"),
        pytest.param("round(f, 99999999999999999999)", id="round-huge-digits"),
        pytest.param("substr(s, 99999999999999999999)", id="substr-huge-start"),
        pytest.param("now('Not/AZone')", id="bad-zone"),
        pytest.param("to_datetime(s)", id="unparseable-dates"),
        pytest.param("date_diff_days(t, o)", id="dates-from-mixed"),
        pytest.param("str(10 ** 1000) ", id="int-max-str-digits"),
        pytest.param("a ** -1", id="int-negative-power"),
    ],
)
def test_known_edge_cases_only_raise_expression_error(text: str) -> None:
    """X1/X2: inputs found while writing this module; kept as regressions."""
    _check(text)
