"""X2 (issue 16): the caps of the expression language hold for every way a value can grow.

Text an expression builds (``+``, ``concat``, ``replace``, ``upper``/``lower``, ``str``, nested)
has at most ``MAX_TEXT_LENGTH`` characters per value, both in constant folding when a spec loads
and on columns at run time; integers at most ``MAX_INT_BITS`` bits; ``round`` digits are bounded.
Anything past a cap is an ``ExpressionError`` naming the expression, in bounded time and memory.
"""

from __future__ import annotations

import time
import tracemalloc
import warnings
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_assets.expressions import ExpressionError, parse_expression
from dp_assets.expressions.evaluator import MAX_INT_BITS
from dp_assets.expressions.text_functions import MAX_TEXT_LENGTH
from tests.fuzzing import fuzz_settings


def tenfold(seed: str, times: int) -> str:
    """An expression whose value is ``seed`` repeated 10**times, in a few dozen characters each."""
    text = repr(seed * 10)
    for _ in range(times - 1):
        text = f"replace({text}, {seed!r}, {seed * 10!r})"
    return text


MILLION = tenfold("a", 6)  # exactly MAX_TEXT_LENGTH characters: allowed on its own
LIGATURES = tenfold("\ufb03", 5)  # 100,000 'ffi' ligatures: upper() makes 300,000 letters


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "big": ["x" * 600_000, "y", None],
            # object dtype: Python's str.upper turns one ligature into three letters (Arrow's does not)
            "lig": pd.Series(["\ufb03" * 400_000, "a", None], dtype=object),
            "s": ["ab", None, "c"],
            "n": [1, 2, 3],
        }
    )


def test_X2_the_million_is_at_the_cap() -> None:
    assert len(parse_expression(MILLION).evaluate(pd.DataFrame(), {})) == MAX_TEXT_LENGTH


FOLDED = [
    pytest.param(f"{MILLION} + 'b'", id="X2-plus"),
    pytest.param(f"'b' + {MILLION}", id="X2-plus-left"),
    pytest.param(f"concat({MILLION}, 'b')", id="X2-concat"),
    pytest.param(f"concat('a', {MILLION}, 1)", id="X2-concat-number"),
    pytest.param(f"lower(concat({MILLION}, {MILLION}))", id="X2-nested"),
    pytest.param(f"upper({tenfold(chr(0xFB03), 6)})", id="X2-upper-ligatures-grow"),
    pytest.param(f"str({MILLION} + {MILLION}) == 'a'", id="X2-inside-a-comparison"),
    pytest.param("(2**2000) * (2**2000) * (2**2000)", id="X2-int-product-bits"),
    pytest.param("round(1.5, 10**9)", id="X2-round-digits"),
    pytest.param("round(1.5, -10**9)", id="X2-round-negative-digits"),
]


@pytest.mark.parametrize("text", FOLDED)
def test_X2_constant_growth_past_a_cap_fails_when_the_spec_loads(text: str) -> None:
    """Constant parts are folded at validation: past a cap they fail there, quickly."""
    started = time.monotonic()
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert time.monotonic() - started < 2
    assert caught.value.expression == text
    assert "limit" in caught.value.message or "bits" in caught.value.message or "digits" in caught.value.message


ON_COLUMNS = [
    pytest.param("big + big", id="X2-column-plus"),
    pytest.param("big + s + big", id="X2-column-plus-chain"),
    pytest.param(f"s + {MILLION}", id="X2-column-plus-literal"),
    pytest.param("concat(big, '-', big)", id="X2-column-concat"),
    pytest.param("upper(lig)", id="X2-column-upper"),
    pytest.param("replace(big, 'x', 'xx')", id="X2-column-replace"),
    pytest.param("concat(big, big) if n > 2 else s", id="X2-column-if-else"),
]


@pytest.mark.parametrize("text", ON_COLUMNS)
def test_X2_text_growth_on_columns_fails_at_run_time(text: str) -> None:
    expression = parse_expression(text)
    with pytest.raises(ExpressionError, match="limit is 1000000") as caught:
        expression.evaluate(frame(), {})
    assert caught.value.expression == text


def test_X2_growth_within_the_cap_matches_pandas() -> None:
    df = frame()
    pd.testing.assert_series_equal(
        parse_expression("s + '-' + s").evaluate(df, {}), df.s + "-" + df.s, check_names=False
    )
    pd.testing.assert_series_equal(parse_expression("upper(s)").evaluate(df, {}), df.s.str.upper(), check_names=False)
    assert parse_expression("2**2000 * 2**2000").evaluate(df, {}) == 2**4000


# --- property: random trees of growing operations ------------------------------------------------

LEAVES = st.one_of(
    st.sampled_from(
        [
            "big",
            "lig",
            "s",
            "n",
            "params.p",
            "1",
            "2",
            "10",
            "4000",
            "1e308",
            "-7",
            "'ab'",
            "''",
            "'\ufb03'",
            MILLION,
            LIGATURES,
            str(2**2000),
        ]
    ),
    st.text(alphabet="aZ\ufb03ß", max_size=20).map(repr),
)


def _trees(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(children, children)
    return st.one_of(
        st.builds(lambda ab, op: f"({ab[0]} {op} {ab[1]})", pair, st.sampled_from(["+", "*", "**", "-", "//", "%"])),
        st.lists(children, min_size=1, max_size=4).map(lambda xs: f"concat({', '.join(xs)})"),
        st.builds(
            lambda x, old, new: f"replace({x}, {old}, {new})",
            children,
            st.sampled_from(["'a'", "''", "'\ufb03'", "'x'"]),
            st.sampled_from(["'aaaaaaaaaa'", "''", "'b'", "'\ufb03\ufb03\ufb03'"]),
        ),
        st.builds(lambda f, x: f"{f}({x})", st.sampled_from(["upper", "lower", "str", "strip", "len"]), children),
        st.builds(lambda x, k: f"round({x}, {k})", children, st.sampled_from(["2", "10**9", "-400", "300"])),
        st.builds(lambda x, k: f"substr({x}, 0, {k})", children, st.sampled_from(["3", "10**30"])),
        st.builds(lambda a, b: f"({a} if n > 1 else {b})", children, children),
        st.builds(lambda a, b: f"coalesce({a}, {b})", children, children),
        st.builds(lambda a, b: f"({a} in [{b}, 'x'])", children, children),
        st.builds(
            lambda a, b, op: f"(({a}) {op} ({b}))", children, children, st.sampled_from(["==", "<", "and", "or"])
        ),
    )


expressions = st.recursive(LEAVES, _trees, max_leaves=12)


def _within_caps(value: Any) -> None:
    if isinstance(value, str):
        assert len(value) <= MAX_TEXT_LENGTH
    elif isinstance(value, int) and not isinstance(value, bool):
        assert value.bit_length() <= MAX_INT_BITS
    elif isinstance(value, pd.Series) and len(value) and (value.dtype == object or pd.api.types.is_string_dtype(value)):
        longest = value.map(lambda v: len(v) if isinstance(v, str) else 0).max()
        assert longest <= max(MAX_TEXT_LENGTH, 600_000)  # a column may pass through as it is


@fuzz_settings(120)
@given(text=expressions)
def test_X2_property_values_stay_within_caps_or_fail_naming_the_expression(text: str) -> None:
    """X2 property: parse, fold and evaluate any tree of growing operations: a value within the
    caps, or an ExpressionError naming the expression; bounded time and memory."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = parse_expression(text).evaluate(frame(), {"p": "q"})
            except ExpressionError as exc:
                assert exc.expression == text and exc.message
            else:
                _within_caps(value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    # Inputs hold ~3 MB of text; a few values at the cap (4 bytes a character at most) fit well here.
    assert peak < 200 * 2**20
