"""JoinMerge in DuckDB gives ``pd.merge``'s rows, in its order, with its columns and dtypes
(issue 20): every ``how``, ``on`` or ``left_on``/``right_on``, keys that may be missing (a
missing key matches a missing key in pandas), repeated keys, columns both inputs have. A join the
engine cannot run faithfully raises ``NotSupported``: pandas runs it, so the answer is pandas'."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from node_helpers import make_ctx, run_node

from dp_assets.catalog import default_catalog
from dp_assets.engine import NotSupported
from dp_assets.engine.chain import Engine

KEYS = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "ä"]))


@st.composite
def sides(draw: st.DrawFn, key: str, value: str) -> pd.DataFrame:
    rows = draw(st.integers(0, 6))
    return pd.DataFrame(
        {
            key: pd.Series(draw(st.lists(KEYS, min_size=rows, max_size=rows)), dtype="str"),
            "n": pd.Series(draw(st.lists(st.integers(0, 9), min_size=rows, max_size=rows)), dtype="int64"),
            value: pd.Series(draw(st.lists(st.floats(-5, 5), min_size=rows, max_size=rows)), dtype="float64"),
        }
    )


@st.composite
def joins(draw: st.DrawFn) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    how = draw(st.sampled_from(["inner", "left", "right", "outer", "cross"]))
    separate = how != "cross" and draw(st.booleans())
    left = draw(sides("k", "x"))
    right = draw(sides("j" if separate else "k", "y"))
    if how == "cross":
        params: dict[str, Any] = {"how": how}
    elif separate:
        params = {"how": how, "left_on": "k", "right_on": "j"}
    else:
        params = {"how": how, "on": draw(st.sampled_from(["k", ["k", "n"]]))}
    return params, left, right


@settings(max_examples=60, deadline=None)
@given(joins())
def test_duckdb_join_gives_pandas_merge(case: tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]) -> None:
    params, left, right = case
    inputs = {"left": left, "right": right}
    want = run_node("JoinMerge", params, inputs, make_ctx())
    model = default_catalog()["JoinMerge"].params_model.model_validate(params)
    try:
        got = Engine().run("JoinMerge", model, inputs, {}).frame()
    except NotSupported:
        assert params["how"] == "outer" and "left_on" in params  # the one join this test draws that pandas runs
        return
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True))
