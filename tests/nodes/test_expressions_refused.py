"""Refused expressions, each with its exact message (X1: escape corpus; X2: resource abuse).

Refusal happens at parse time wherever the text alone shows the problem, including constant parts
such as ``9**9**9``; data-dependent abuse (text repetition over a column) is refused when
evaluated. Nothing here ever reaches Python's ``eval``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from dp_assets.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NODES,
    ExpressionError,
    parse_expression,
)
from dp_assets.expressions.parser import ALLOWED

FUNCS = (
    "Functions: col, abs, add_days, add_hours, add_minutes, add_months, add_seconds, add_weeks, "
    "add_years, between, bool, ceil, coalesce, concat, contains, date, date_diff_days, "
    "day, endswith, fillna, float, floor, greatest, int, is_null, least, len, lower, month, "
    "not_null, now, replace, round, startswith, str, strip, substr, to_datetime, upper, year"
)
DOT = 'only params.NAME may use a dot (write col("a.b") for a column name with a dot)'
TOO_BIG = "an integer power may have at most 4096 bits (use float(...) for approximate large numbers)"

REFUSED = {
    # X1: the escape corpus from the brief
    "X1-import": (
        "__import__('os')",
        "name `__import__` is not allowed: names starting with '__' are reserved",
    ),
    "X1-class": ("df.__class__", f"attribute access is not allowed: `df.__class__`; {DOT}"),
    "X1-bases": (
        "().__class__.__bases__",
        f"attribute access is not allowed: `().__class__.__bases__`; {DOT}",
    ),
    "X1-listcomp": (
        "[x for x in y]",
        f"list comprehension is not allowed: `[x for x in y]`. {ALLOWED}",
    ),
    "X1-lambda": ("lambda: 1", f"lambda is not allowed: `lambda: 1`. {ALLOWED}"),
    "X1-open": ("open('x')", f"unknown function `open` in `open('x')`. {FUNCS}"),
    "X1-subscript": (
        "a[0]",
        "subscript is not allowed: `a[0]`; use substr(text, start, length) for part of a text, "
        'or col("name") for a column name',
    ),
    "X1-params-dict": (
        "params.__dict__",
        "`params.__dict__` is not allowed: param names cannot start with '_'",
    ),
    # X1: more of the usual walks
    "X1-builtins": (
        "__builtins__",
        "name `__builtins__` is not allowed: names starting with '__' are reserved "
        '(use col("__builtins__") for a column of that name)',
    ),
    "X1-params-private": (
        "params._secret",
        "`params._secret` is not allowed: param names cannot start with '_'",
    ),
    "X1-params-chain": (
        "params.x.__class__",
        f"attribute access is not allowed: `params.x.__class__`; {DOT}",
    ),
    "X1-format-attr": (
        "'{0.__class__}'.format(a)",
        "method call is not allowed: `'{0.__class__}'.format(a)`; call a function from the list by its name",
    ),
    "X1-method": (
        "s.lower()",
        "method call is not allowed: `s.lower()`; write lower(x, ...) instead of x.lower(...)",
    ),
    "X1-getattr": (
        "getattr(a, '__class__')",
        f"unknown function `getattr` in `getattr(a, '__class__')`. {FUNCS}",
    ),
    "X1-eval": ("eval('1')", f"unknown function `eval` in `eval('1')`. {FUNCS}"),
    "X1-call-result": (
        "lower(s)(1)",
        "calling this is not allowed: `lower(s)(1)`; call a function from the list by its name",
    ),
    "X1-fstring": ("f'{a}'", "f-string is not allowed: `f'{a}'`; use concat(a, b, ...)"),
    "X1-walrus": ("(x := 1)", f"assignment (:=) is not allowed: `x := 1`. {ALLOWED}"),
    "X1-genexp": ("min(x for x in a)", f"unknown function `min` in `min(x for x in a)`. {FUNCS}"),
    "X1-dict": ("{'a': 1}", f"dict is not allowed: `{{'a': 1}}`. {ALLOWED}"),
    "X1-keyword": (
        "round(a, ndigits=2)",
        "a keyword argument is not allowed: `round(a, ndigits=2)`; pass arguments by position",
    ),
    "X1-col-not-literal": (
        "col(a)",
        'col() takes one column name in quotes, like col("unit price"): `col(a)`',
    ),
    "X1-bytes": ("b'x'", f"bytes literal is not allowed: `b'x'`. {ALLOWED}"),
    "X1-bitwise": ("a & b", "operator `&` is not allowed: `a & b`; use 'and'"),
    "X1-invert": ("~a", "`~` is not allowed: `~a`; use 'not'"),
    "X1-is": ("a is None", "`is` is not allowed: `a is None`; use is_null(x) or not_null(x)"),
    "X1-eq-none": (
        "a == None",
        "comparing with None is not allowed: `a == None`; use is_null(x) or not_null(x)",
    ),
    "X1-in-column": (
        "a in b",
        "`in` with `b` is not allowed: `a in b`; `in` needs a list [a, b] or params.NAME on its right "
        "(use contains(text, part) to look for text inside text)",
    ),
    "X1-bare-list": (
        "[1, 2]",
        "a list is not allowed: `[1, 2]`; a list may only follow `in` or `not in`",
    ),
    "X1-arity": ("lower(a, b)", "lower() got 2 arguments in `lower(a, b)`; usage: lower(text)"),
    "X1-statement": ("import os", "invalid expression at column 1: invalid syntax: `import os`"),
    "X1-empty": ("   ", "expression is empty"),
    # X2: resource abuse refused before or during evaluation
    "X2-power-tower": ("9**9**9", f"`9**9**9` is too large: {TOO_BIG}"),
    "X2-power-in-call": ("str(10**4000)", f"`10**4000` is too large: {TOO_BIG}"),
    "X2-repeat-text": (
        "'ab' * 1000000000",
        "repeating text with `*` is not allowed: `'ab' * 1000000000`; use concat(a, b, ...)",
    ),
    "X2-printf-width": (
        "'%999999999d' % 1",
        "formatting text with `%` is not allowed: `'%999999999d' % 1`; use concat(...)",
    ),
    "X2-complex": ("(-8) ** 0.5", "`(-8) ** 0.5` has no real value (it would be a complex number)"),
    "X2-div-zero": ("a + 1 / 0", "cannot evaluate `1 / 0`: division by zero"),
    "X2-long": (
        "a" * (MAX_LENGTH + 1),
        f"expression is too long: {MAX_LENGTH + 1} characters (the limit is {MAX_LENGTH})",
    ),
    "X2-deep-unary": ("-" * 2000 + "1", f"expression is nested more than {MAX_DEPTH} levels deep"),
    "X2-deep-parens": (
        "(" * 250 + "1" + ")" * 250,
        "invalid expression at column 201: too many nested parentheses: `" + "(" * 250 + "1" + ")" * 250 + "`",
    ),
    "X2-deep-not": ("not " * 150 + "a", f"expression is nested more than {MAX_DEPTH} levels deep"),
    "X2-long-sum": (
        "+".join(["a"] * 120),
        f"expression is nested more than {MAX_DEPTH} levels deep",
    ),
    "X2-many-nodes": (
        "a in [" + ",".join(["1"] * (MAX_NODES + 5)) + "]",
        f"expression has more than {MAX_NODES} parts; split it over several nodes or pass long lists as params",
    ),
}


@pytest.mark.parametrize(("text", "message"), list(REFUSED.values()), ids=list(REFUSED))
def test_refused_at_parse_time(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert caught.value.message == message
    assert str(caught.value) == message


REFUSED_ON_DATA = {
    "X2-repeat-column": (
        "s * n",
        "repeating text with `*` is not allowed: `s * n`; use concat(a, b, ...)",
    ),
    "X2-repeat-param": (
        "params.t * n",
        "repeating text with `*` is not allowed: `params.t * n`; use concat(a, b, ...)",
    ),
    "X2-printf-column": (
        "s % n",
        "formatting text with `%` is not allowed: `s % n`; use concat(...)",
    ),
    "X2-pow-object": (
        "o ** n",
        "`**` needs numeric columns, but `o ** n` has mixed values; cast them with int(x) or float(x) first",
    ),
    "X2-bigint": (
        "n ** params.huge",
        "`n ** params.huge`: the number 100000000000000000000 does not fit in a 64-bit column",
    ),
    "X2-replace-blowup": (
        "replace(replace(s, '', params.t), '', params.t)",
        "cannot evaluate `replace(replace(s, '', params.t), '', params.t)`: the result could reach "
        "2700008 characters per value (the limit is 1000000)",
    ),
    "X2-replace-column-arg": (
        "replace(s, '', s)",
        "cannot evaluate `replace(s, '', s)`: replace() needs a single text value for new, not a column of values",
    ),
}


@pytest.mark.parametrize(("text", "message"), list(REFUSED_ON_DATA.values()), ids=list(REFUSED_ON_DATA))
def test_refused_on_data(text: str, message: str) -> None:
    df = pd.DataFrame(
        {
            "s": ["%s" * 150_000, "b"],
            "n": [3, 4],
            "o": pd.Series([10**30, "x"], dtype=object),
        }
    )
    expression = parse_expression(text)
    with pytest.raises(ExpressionError) as caught:
        expression.evaluate(df, {"t": "ab", "huge": 10**20})
    assert caught.value.message.startswith(message)


def test_parse_error_does_not_poison_cache() -> None:
    with pytest.raises(ExpressionError):
        parse_expression("a[0]")
    with pytest.raises(ExpressionError):
        parse_expression("a[0]")


def test_limits_allow_realistic_expressions() -> None:
    """A long but realistic condition stays well within the limits."""
    text = " and ".join(f"(c{i} > {i} or is_null(c{i}))" for i in range(60))
    expression = parse_expression(text)
    assert len(expression.columns) == 60


def test_non_text_is_refused() -> None:
    with pytest.raises(ExpressionError, match="an expression must be text, not int"):
        parse_expression(5)  # type: ignore[arg-type]
