"""``Expression.infer_type``: logical result types before a run, and the mismatches refused then;
plus the consistency of the function table, its implementations and docs/expressions.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dp_assets.catalog.schema import schema_of
from dp_assets.expressions import FUNCTION_NAMES, SIGNATURES, ExpressionError, parse_expression
from dp_assets.expressions.functions import FUNCTIONS

SCHEMA = {
    "n": "integer",
    "f": "float",
    "s": "string",
    "flag": "boolean",
    "ts": "datetime",
    "d": "date",
    "o": "any",
    "odd": "decimal",  # an unknown logical type counts as "any"
}

TYPES = {
    "int-literal": ("1", "integer"),
    "bool-literal": ("True", "boolean"),
    "none-literal": ("None", "any"),
    "column": ("s", "string"),
    "unknown-logical-type": ("odd", "any"),
    "param": ("params.x", "any"),
    "int-plus-int": ("n + 1", "integer"),
    "int-plus-float": ("n + f", "float"),
    "truediv": ("n / 2", "float"),
    "floordiv": ("n // 2", "integer"),
    "bool-arith": ("flag + flag", "integer"),
    "negate-bool": ("-flag", "integer"),
    "text-plus-text": ("s + 'x'", "string"),
    "date-minus-date": ("ts - ts", "any"),
    "compare": ("n > 1", "boolean"),
    "compare-date-text": ("ts > '2024-01-01'", "boolean"),
    "logic": ("flag and n > 1 or not flag", "boolean"),
    "in": ("s in ['a']", "boolean"),
    "ternary-same": ("n if flag else 0", "integer"),
    "ternary-widen": ("n if flag else 0.5", "float"),
    "ternary-mixed": ("s if flag else 1", "any"),
    "coalesce": ("coalesce(n, f)", "float"),
    "lower": ("lower(s)", "string"),
    "len": ("len(s)", "integer"),
    "year": ("year(ts)", "integer"),
    "year-of-text": ("year('2024-01-01')", "integer"),
    "date": ("date(ts)", "date"),
    "to_datetime": ("to_datetime(s)", "datetime"),
    "now": ("now()", "datetime"),
    "date_diff_days": ("date_diff_days(ts, d)", "integer"),
    "abs-float": ("abs(f)", "float"),
    "round-bool": ("round(flag)", "integer"),
    "least": ("least(n, 1)", "integer"),
    "int": ("int(s)", "integer"),
    "str": ("str(n)", "string"),
    "bool": ("bool(n)", "boolean"),
    "between": ("between(n, 1, 2)", "boolean"),
    "any-column": ("o + 1", "any"),
    "text-of-any": ("lower(o)", "string"),
}


@pytest.mark.parametrize(("text", "expected"), list(TYPES.values()), ids=list(TYPES))
def test_infer_type(text: str, expected: str) -> None:
    assert parse_expression(text).infer_type(SCHEMA) == expected


MISMATCHES = {
    "missing-column": (
        "nn > 1",
        "unknown column `nn` (columns: n, f, s, flag, ts, d, o, odd); did you mean `n`?",
    ),
    "missing-in-call": ("lower(x)", "unknown column `x` (columns: n, f, s, flag, ts, d, o, odd)"),
    "text-plus-number": (
        "s + 1",
        "`s + 1`: `+` cannot combine string and integer "
        "(use concat(a, b, ...) to join text, or int()/float() to read numbers)",
    ),
    "date-times": ("ts * 2", "`ts * 2`: `*` cannot be used with dates"),
    "negate-text": ("-s", "`-s`: `-` needs a number, but it is string"),
    "and-number": (
        "flag and n",
        "`n` must be true/false, but it is integer; compare it with something (for example `x > 0` or not_null(x))",
    ),
    "ternary-condition": (
        "1 if s else 2",
        "`s` must be true/false, but it is string; compare it with something (for example `x > 0` or not_null(x))",
    ),
    "order-text-number": ("s < 3", "`s < 3`: cannot order string `s` against integer `3`"),
    "lower-number": (
        "lower(n)",
        "lower() needs text for text, but `n` is integer; usage: lower(text)",
    ),
    "year-number": (
        "year(f)",
        "year() needs a date or timestamp for value, but `f` is float; usage: year(value)",
    ),
    "round-digits": (
        "round(f, 1.5)",
        "round() needs a whole number for digits, but `1.5` is float; usage: round(x[, digits])",
    ),
}


@pytest.mark.parametrize(("text", "message"), list(MISMATCHES.values()), ids=list(MISMATCHES))
def test_infer_type_refuses_mismatches(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text).infer_type(SCHEMA)
    assert caught.value.message == message


def test_inferred_types_match_evaluated_dtypes() -> None:
    """The inferred type agrees with the platform's own mapping of the evaluated dtype."""
    df = pd.DataFrame(
        {
            "n": [1, 2],
            "f": [0.5, 1.5],
            "s": ["a", "b"],
            "flag": [True, False],
            "ts": pd.to_datetime(["2024-01-01", "2024-02-01"]).tz_localize("UTC"),
        }
    )
    schema = schema_of(df)
    for text in [
        "n + 1",
        "n / 2",
        "f * 2",
        "lower(s)",
        "len(s)",
        "flag and n > 1",
        "int(f)",
        "float(n)",
        "str(n)",
        "bool(n)",
        "to_datetime(s + '-01-01' if False else '2024-01-01')",
        "month(ts)",
        "coalesce(n, 0)",
        "least(f, 1.0)",
        "abs(n)",
        "n if flag else 0",
    ]:
        expression = parse_expression(text)
        value = expression.evaluate(df, {})
        evaluated = schema_of(pd.DataFrame({"v": value}, index=df.index))["v"]
        assert expression.infer_type(schema) in (evaluated, "any"), text


def test_function_table_and_implementations_agree() -> None:
    assert set(FUNCTIONS) == set(SIGNATURES) == set(FUNCTION_NAMES)


def test_docs_list_every_function() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "expressions.md").read_text(encoding="utf-8")
    missing = [sig.signature for sig in SIGNATURES.values() if f"`{sig.signature}`" not in docs]
    assert missing == []
