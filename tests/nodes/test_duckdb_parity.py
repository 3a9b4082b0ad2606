"""Every node type with a DuckDB form gives pandas' answer through the DuckDB engine (issue 20).

The pandas-parity cases of ``test_pandas_equivalence.py`` run again through
``dp_assets.engine``: same rows, columns, dtypes and values. Most cases carry a ``mixed`` object
column that Arrow cannot hold (such a frame runs in pandas); each case therefore also runs
without it, so that DuckDB computes it. The index is compared reset: the engine numbers rows
0, 1, 2... (docs/nodes.md says so). A case that still runs in pandas is listed in
``RUNS_IN_PANDAS`` with its reason, so a form that stops applying fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from node_helpers import make_ctx, run_node
from test_pandas_equivalence import CASES

from dp_assets.catalog import default_catalog
from dp_assets.engine import NotSupported
from dp_assets.engine.chain import Engine, supports

FLOW_PARAMS = {"limit": 5}

# case id (with "/no-mixed" for the variant without the object column) -> why pandas runs it
RUNS_IN_PANDAS: dict[str, str] = {
    "ChangeDataType-nullable-int-and-str/no-mixed": "nullable dtypes (Float64, Int32), which Arrow's conversion does not give",
}


def _engine_cases() -> list[Any]:
    found = []
    for param in CASES:
        type_name, params, inputs, expected = param.values
        if supports(type_name):
            found.append(pytest.param(type_name, params, inputs, expected, False, id=param.id))
            if "mixed" not in repr(params):  # a case about the object column has no variant without it
                found.append(pytest.param(type_name, params, inputs, expected, True, id=f"{param.id}/no-mixed"))
    return found


def _without_mixed(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.drop(columns="mixed") if isinstance(value, pd.DataFrame) and "mixed" in value else value
        for name, value in inputs.items()
    }


def run_in_duckdb(type_name: str, params: dict[str, Any], inputs: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """The node's rows and the metadata it reports (a stored node's, computed with its rows)."""
    model = default_catalog()[type_name].params_model.model_validate(params)
    deferred = Engine().run(type_name, model, inputs, FLOW_PARAMS)
    return deferred.frame(), deferred.metadata()


@pytest.mark.parametrize(("type_name", "params", "inputs", "expected", "drop_mixed"), _engine_cases())
def test_duckdb_gives_pandas_answer(
    request: pytest.FixtureRequest,
    type_name: str,
    params: dict[str, Any],
    inputs: Callable[[], dict[str, Any]],
    expected: Callable[[dict[str, Any]], Any],
    drop_mixed: bool,
) -> None:
    given = _without_mixed(inputs()) if drop_mixed else inputs()
    case_id = request.node.callspec.id
    try:
        want = expected(_without_mixed(inputs()) if drop_mixed else inputs())
    except KeyError:
        pytest.skip("the case is about the object column")
    try:
        got, metadata = run_in_duckdb(type_name, params, given)
    except NotSupported as reason:
        if drop_mixed:
            assert case_id in RUNS_IN_PANDAS, f"{case_id} runs in pandas: {reason}"
        # the runtime runs such a node in pandas: the pandas answer is the answer
        got = run_node(type_name, params, given, make_ctx(flow_params=FLOW_PARAMS))
    else:  # the metadata the pandas node reports (HandleMissingValues' filled counts), also from DuckDB
        ctx = make_ctx(flow_params=FLOW_PARAMS)
        run_node(type_name, params, inputs() if not drop_mixed else _without_mixed(inputs()), ctx)
        assert metadata == ctx.metadata
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


def test_docs_name_every_node_type_duckdb_runs() -> None:
    """docs/nodes.md says per node type which engines run it (dp_assets/engine/coverage.py)."""
    from dp_assets.engine.coverage import DUCKDB_NOTES
    from dp_assets.engine.forms import DATA_FORMS, FORMS, STAGED_FORMS

    assert set(DUCKDB_NOTES) == {
        *FORMS,
        *DATA_FORMS,
        *STAGED_FORMS,
        "FileInput",
    }  # a source: dp_assets/compiler/engine_hook.py


def test_a_column_without_a_name_runs_in_pandas() -> None:
    """DuckDB would name it ``v1`` (a pivot on text makes such a column from an empty value)."""
    model = default_catalog()["FilterRows"].params_model.model_validate({"condition": "a > 1"})
    with pytest.raises(NotSupported, match="empty column name"):
        Engine().run("FilterRows", model, {"input": pd.DataFrame({"": [1.0], "a": [2]})}, {}).frame()
