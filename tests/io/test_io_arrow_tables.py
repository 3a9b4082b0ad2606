"""The IO manager stores a ``pyarrow.Table`` as it is (the DuckDB engine's outputs, issue 20) and
reads it back as the frame Arrow's own conversion gives, in every frame format; a forced pickle
holds that frame, so a reader always gets a DataFrame."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_io_roundtrip import FRAME_FORMATS, _write_and_read

from dp_io.io_manager import RunScopedIOManager
from tests.fuzzing import fuzz_settings

_COLUMNS = st.fixed_dictionaries(
    {
        "n": st.lists(st.none() | st.integers(-(2**62), 2**62), max_size=8),
        "x": st.lists(st.none() | st.floats(allow_nan=False), max_size=8),
        "s": st.lists(st.none() | st.text(max_size=5), max_size=8),
    }
)


@fuzz_settings(40)
@given(columns=_COLUMNS, fmt=st.sampled_from([*FRAME_FORMATS, "pickle"]))
def test_an_arrow_table_reads_back_as_its_frame(tmp_path_factory: pytest.TempPathFactory, columns, fmt) -> None:
    rows = min(len(values) for values in columns.values())
    table = pa.table({name: pa.array(values[:rows]) for name, values in columns.items()})
    base = str(tmp_path_factory.mktemp("outputs"))
    back, metadata = _write_and_read(RunScopedIOManager(base_url=base), table, fmt=fmt)
    assert isinstance(back, pd.DataFrame)
    pd.testing.assert_frame_equal(back, table.to_pandas())
    assert metadata["dagster/row_count"].value == rows
