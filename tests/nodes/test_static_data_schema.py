"""StaticData's schema is inferred without pandas for plain rows, and always as pandas infers it."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from dp_assets.catalog.nodes.sources_static import StaticDataParams, _plain_records_schema, static_data_schema
from dp_assets.catalog.schema import schema_of
from tests.fuzzing import fuzz_settings

KEYS = st.sampled_from(["a", "b", "region", "1", ""])
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)


@st.composite
def records(draw: st.DrawFn) -> list[dict]:
    """Rows that are mostly plain (same keys, one kind of value per column) and sometimes not."""
    keys = draw(st.lists(KEYS, unique=True, max_size=4))
    kinds = {
        key: draw(
            st.sampled_from([st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=5), VALUES])
        )
        for key in keys
    }
    rows = draw(st.lists(st.fixed_dictionaries({key: kinds[key] for key in keys}), max_size=5))
    if rows and draw(st.booleans()):  # a ragged row, or one with another order or value
        rows[draw(st.integers(0, len(rows) - 1))] = draw(st.dictionaries(KEYS, VALUES, max_size=4))
    return rows


@fuzz_settings(300)
@given(records())
def test_static_data_schema_is_what_pandas_infers(rows):
    """Whatever the rows, the schema the spec is checked with is the one the run will have."""
    assert static_data_schema(StaticDataParams(rows=rows), {}) == schema_of(pd.DataFrame.from_records(rows))


def test_plain_rows_need_no_pandas():
    rows = [
        {"region": "EU", "target": 3000.0, "n": 1, "ok": True},
        {"region": "US", "target": 2500, "n": 2, "ok": False},
    ]
    assert _plain_records_schema(rows) == {"region": "string", "target": "float", "n": "integer", "ok": "boolean"}
