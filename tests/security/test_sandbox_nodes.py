"""RunPythonScript and ApplyFunction: outputs equal the same operation in plain pandas.

The reference runs the same source with plain Python in the test process (it is test code, so
trusted); the node runs it in the sandbox through ``SandboxResource``. Errors must name the flow,
the node and the field. One test runs the resource inside a real Dagster materialisation to show
its lifecycle (fork server started on use, stopped at teardown).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dp_assets.catalog.base import SchemaError
from dp_assets.catalog.nodes.python_nodes import (
    APPLY_FUNCTION,
    NODE_TYPES,
    RUN_PYTHON_SCRIPT,
    ApplyFunctionParams,
    RunPythonScriptParams,
)
from dp_resources.sandbox import (
    SandboxCodeError,
    SandboxError,
    SandboxLimits,
    SandboxPolicyError,
    SandboxResource,
    SandboxTimeout,
)
from dp_resources.sandbox.forkserver import ForkServerLauncher


def _frame(rows: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "amount": rng.normal(100, 30, rows).round(2),
            "region": rng.choice(["EU", "US", "APAC"], rows),
            "qty": rng.integers(1, 10, rows),
            "when": pd.date_range("2024-01-01", periods=rows, freq="h"),
        }
    )


def _plain(code: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"pd": pd, "np": np, **names}
    exec(code, namespace)  # noqa: S102 - trusted test code, the reference side
    return namespace


SCRIPTS = {
    "filter-assign": "result = df[df.amount > 100].assign(total=df.amount * df.qty)",
    "groupby-agg": ("result = df.groupby('region', as_index=False).agg(total=('amount', 'sum'), n=('id', 'count'))"),
    "params-threshold": "result = df[df.qty >= params['min_qty']].reset_index(drop=True)",
    "datetime-features": (
        "out = df.copy()\nout['day'] = out.when.dt.day_name()\nout['hour'] = out.when.dt.hour\nresult = out"
    ),
    "loop-and-helpers": (
        "import math\n"
        "def bucket(v):\n    return 'big' if v > 120 else 'small'\n"
        "rows = []\n"
        "for region, part in df.groupby('region'):\n"
        "    rows.append({'region': region, 'log_total': math.log(part.amount.sum())})\n"
        "result = pd.DataFrame(rows).assign(b=df.amount.head(3).map(bucket).iloc[0])"
    ),
    "pivot": "result = df.pivot_table(index='region', columns='qty', values='amount', aggfunc='sum').reset_index()",
}


@pytest.mark.parametrize("code", [pytest.param(c, id=n) for n, c in SCRIPTS.items()])
def test_run_python_script_equals_pandas(node_context: Any, code: str) -> None:
    frame = _frame()
    ctx = node_context(flow_params={"min_qty": 5})
    params = RunPythonScriptParams(code=code)
    out = RUN_PYTHON_SCRIPT.run(ctx, params, {"input": frame})
    expected = _plain(code, df=frame.copy(), params={"min_qty": 5})["result"]
    pd.testing.assert_frame_equal(out, expected)
    assert ctx.metadata["sandbox_seconds"] >= 0


def test_run_python_script_variables_override_flow_params(node_context: Any) -> None:
    ctx = node_context(flow_params={"min_qty": 1, "label": "flow"})
    params = RunPythonScriptParams(
        code="result = pd.DataFrame({'label': [params['label']], 'min_qty': [params['min_qty']]})",
        variables={"label": "node"},
    )
    out = RUN_PYTHON_SCRIPT.run(ctx, params, {"input": _frame(3)})
    assert out.to_dict("records") == [{"label": "node", "min_qty": 1}]


def test_run_python_script_print_is_logged(node_context: Any, caplog: pytest.LogCaptureFixture) -> None:
    ctx = node_context()
    # The node's own logger, unregistered: a test elsewhere in the session may reconfigure the
    # logging tree (a dictConfig disables the loggers that exist), which must not decide this one.
    ctx.log = logging.Logger("sandbox_print", level=logging.INFO)
    ctx.log.addHandler(caplog.handler)
    RUN_PYTHON_SCRIPT.run(
        ctx,
        RunPythonScriptParams(code="print('rows:', len(df))\nresult = df"),
        {"input": _frame(4)},
    )
    assert "rows: 4" in caplog.text


@pytest.mark.parametrize(
    ("code", "error", "fragment"),
    [
        pytest.param(
            "result = df.amount",
            SandboxError,
            "must be a pandas DataFrame",
            id="series-result",
        ),
        pytest.param("x = 1", SandboxCodeError, "`result`", id="no-result"),
        pytest.param("result = df.nope", SandboxCodeError, "AttributeError", id="user-error"),
        pytest.param("import os\nresult = df", SandboxPolicyError, 'import of "os"', id="refused"),
    ],
)
def test_run_python_script_errors_name_the_node(
    node_context: Any, code: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as failed:
        RUN_PYTHON_SCRIPT.run(
            node_context("clean_up"),
            RunPythonScriptParams(code=code),
            {"input": _frame(3)},
        )
    message = str(failed.value)
    assert "node 'clean_up' (RunPythonScript) of flow 'sandbox_flow', field 'code'" in message
    assert fragment in message


@pytest.mark.fault
def test_run_python_script_node_limits_apply(node_context: Any) -> None:
    """X2 through a node: the node's own limits override the deployment's."""
    params = RunPythonScriptParams(
        code="while True:\n    pass",
        limits=SandboxLimits(cpu_seconds=1, wall_seconds=60),
    )
    with pytest.raises(SandboxTimeout, match="cpu_seconds=1"):
        RUN_PYTHON_SCRIPT.run(node_context(), params, {"input": _frame(2)})


COLUMN_FUNCTIONS = {
    "double": ("amount", "def apply(v):\n    return v * 2"),
    "label": ("region", "def apply(v):\n    return v.lower() + '-x'"),
    "branching": (
        "qty",
        "def apply(v):\n    if v > 5:\n        return 'many'\n    return 'few'",
    ),
    "helper-and-import": (
        "amount",
        "import math\ndef scale(v):\n    return math.floor(v / 10)\ndef apply(v):\n    return scale(v)",
    ),
}


@pytest.mark.parametrize(("column", "code"), [pytest.param(*c, id=n) for n, c in COLUMN_FUNCTIONS.items()])
def test_apply_function_column_equals_series_map(node_context: Any, column: str, code: str) -> None:
    frame = _frame()
    params = ApplyFunctionParams(code=code, column=column, output_column="out")
    out = APPLY_FUNCTION.run(node_context(), params, {"input": frame})
    expected = frame.assign(out=frame[column].map(_plain(code)["apply"]))
    pd.testing.assert_frame_equal(out, expected)


ROW_FUNCTIONS = {
    "total": "def apply(row):\n    return row['amount'] * row['qty']",
    "describe": "def apply(row):\n    return f\"{row['region']}:{row['qty']}\"",
}


@pytest.mark.parametrize("code", [pytest.param(c, id=n) for n, c in ROW_FUNCTIONS.items()])
def test_apply_function_rows_equals_dataframe_apply(node_context: Any, code: str) -> None:
    frame = _frame()
    params = ApplyFunctionParams(code=code, output_column="out")
    out = APPLY_FUNCTION.run(node_context(), params, {"input": frame})
    expected = frame.assign(out=frame.apply(_plain(code)["apply"], axis=1))
    pd.testing.assert_frame_equal(out, expected)


def test_apply_function_runs_the_whole_frame_in_one_child(node_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 rows, one sandbox child: the function is mapped inside the child."""
    starts: list[int] = []
    original = ForkServerLauncher.start

    def counting_start(self: ForkServerLauncher, spec: dict[str, Any]) -> Any:
        starts.append(1)
        return original(self, spec)

    monkeypatch.setattr(ForkServerLauncher, "start", counting_start)
    frame = _frame(20_000)
    code = "def apply(v):\n    return v % 7"
    out = APPLY_FUNCTION.run(
        node_context(),
        ApplyFunctionParams(code=code, column="id", output_column="m"),
        {"input": frame},
    )
    pd.testing.assert_frame_equal(out, frame.assign(m=frame["id"].map(_plain(code)["apply"])))
    assert len(starts) == 1


def test_apply_function_empty_frame(node_context: Any) -> None:
    frame = _frame(0)
    out = APPLY_FUNCTION.run(
        node_context(),
        ApplyFunctionParams(code="def apply(v):\n    return v", column="id", output_column="o"),
        {"input": frame},
    )
    assert list(out.columns) == [*frame.columns, "o"] and len(out) == 0


def test_apply_function_errors_name_the_node_and_field(node_context: Any) -> None:
    with pytest.raises(KeyError, match="field 'column': column 'missing'"):
        APPLY_FUNCTION.run(
            node_context("enrich"),
            ApplyFunctionParams(code="def apply(v):\n    return v", column="missing", output_column="o"),
            {"input": _frame(2)},
        )
    with pytest.raises(SandboxCodeError, match=r"node 'enrich' \(ApplyFunction\).*def apply"):
        APPLY_FUNCTION.run(
            node_context("enrich"),
            ApplyFunctionParams(code="def other(v):\n    return v", column="id", output_column="o"),
            {"input": _frame(2)},
        )
    with pytest.raises(SandboxPolicyError, match="node 'enrich'"):
        APPLY_FUNCTION.run(
            node_context("enrich"),
            ApplyFunctionParams(
                code="def apply(v):\n    return v.__class__",
                column="id",
                output_column="o",
            ),
            {"input": _frame(2)},
        )


def test_apply_function_schema_hook() -> None:
    hook = APPLY_FUNCTION.infer_schema
    assert hook is not None
    params = ApplyFunctionParams(code="def apply(v):\n    return v", column="a", output_column="b")
    assert hook(params, {"input": {"a": "integer"}}) == {"a": "integer", "b": "any"}
    assert hook(params, {"input": None}) is None
    with pytest.raises(SchemaError) as failed:
        hook(params, {"input": {"x": "integer"}})
    assert failed.value.field == "column"


def test_params_models_are_strict() -> None:
    with pytest.raises(ValueError):
        RunPythonScriptParams(code="result = df", unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        ApplyFunctionParams(code="def apply(v): return v", output_column="o", column="")
    with pytest.raises(ValueError):
        RunPythonScriptParams(code="result = df", limits={"cpu_seconds": 1, "cpus": 2})  # type: ignore[arg-type]


def test_node_types_declare_the_sandbox_resource() -> None:
    assert {node.name for node in NODE_TYPES} == {"RunPythonScript", "ApplyFunction"}
    assert all(node.resources == frozenset({"sandbox"}) for node in NODE_TYPES)


def test_resource_config_is_checked() -> None:
    for refused in ("os", "os.path", "numpy.lib.stride_tricks", "pandas.io", "_thread"):
        with pytest.raises(ValueError, match="allowed_modules"):
            SandboxResource(allowed_modules=["math", refused])
    strict = SandboxResource(cpu_seconds=5, allow_node_limits=False)
    assert strict.effective_limits(SandboxLimits(cpu_seconds=2)).cpu_seconds == 2
    with pytest.raises(SandboxError, match="allow_node_limits=false"):
        strict.effective_limits(SandboxLimits(cpu_seconds=50))


def test_resource_in_a_dagster_run() -> None:
    """The resource works inside a real materialisation and stops its fork server at teardown."""
    import dagster as dg

    seen: dict[str, Any] = {}

    @dg.asset
    def doubled(sandbox: SandboxResource) -> pd.DataFrame:
        outcome = sandbox.run("result = df.assign(b=df.a * 2)", {"df": pd.DataFrame({"a": [1, 2]})})
        seen["server"] = sandbox._sandbox._launcher._proc  # type: ignore[union-attr]
        return outcome.value

    result = dg.materialize([doubled], resources={"sandbox": SandboxResource(allowed_modules=["math"])})
    assert result.success
    assert result.output_for_node("doubled")["b"].tolist() == [2, 4]
    assert seen["server"].poll() is not None  # the fork server is gone after the run
