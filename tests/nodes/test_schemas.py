"""Schemas known before a run: each node type's hook, and `dp validate` errors naming edge and column."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from node_helpers import make_ctx, primary, run_node

from dp_assets.catalog import default_catalog
from dp_assets.catalog.schema import schema_of
from dp_assets.spec.validation import FlowValidationError, validate_spec

ROWS = [
    {"id": 1, "region": "EU", "amount": 2.5, "qty": 3, "note": "a b"},
    {"id": 2, "region": "US", "amount": 1.0, "qty": 1, "note": "c d"},
]
SOURCE = {"id": "src", "type": "StaticData", "params": {"rows": ROWS}}


def flow(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"id": "schemas", "params": {"limit": {"type": "integer", "default": 1}}, "nodes": [SOURCE, *nodes]}


def errors_of(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(spec, default_catalog())
    return [str(e) for e in caught.value.errors]


# The schema each hook predicts equals the schema of what the node really returns.
PREDICTED = [
    pytest.param("RenameColumns", {"columns": {"qty": "quantity"}}, id="RenameColumns-schema"),
    pytest.param("ChangeDataType", {"dtype": {"qty": "float64", "id": "str"}}, id="ChangeDataType-schema"),
    pytest.param("SplitColumn", {"column": "note", "pat": " ", "n": 1}, id="SplitColumn-schema"),
    pytest.param("MapValues", {"column": "region", "mapping": {"EU": "Europe"}}, id="MapValues-schema"),
    pytest.param("HandleMissingValues", {"strategy": "mean", "subset": ["amount"]}, id="HandleMissingValues-schema"),
    pytest.param("Deduplicate", {"subset": "region"}, id="Deduplicate-schema"),
    pytest.param("SampleRows", {"n": 1, "random_state": 1}, id="SampleRows-schema"),
    pytest.param("Melt", {"id_vars": "id", "value_vars": ["amount", "qty"]}, id="Melt-schema"),
    pytest.param(
        "WindowFunctions",
        {
            "partition_by": "region",
            "order_by": "qty",
            "functions": [
                {"output": "rn", "function": "row_number"},
                {"output": "r", "function": "rank"},
                {"output": "l", "function": "lag", "column": "amount"},
                {"output": "c", "function": "cumsum", "column": "qty"},
                {"output": "m", "function": "rolling_mean", "column": "qty", "window": 2},
            ],
        },
        id="WindowFunctions-schema",
    ),
    pytest.param("ConditionalBranch", {"condition": "qty > 1", "rows": "split"}, id="ConditionalBranch-schema"),
    pytest.param("DisplayResults", {}, id="DisplayResults-schema"),
    pytest.param("TableWriter", {"table": "t"}, id="TableWriter-schema"),
    pytest.param("Limit", {"n": 1, "offset": 1}, id="Limit-schema"),
    pytest.param(
        "GroupAggregate",
        {
            "agg": {
                "n": ["id", "count"],
                "total": ["qty", "sum"],
                "avg": ["amount", "mean"],
                "first": ["region", "first"],
                "top": ["qty", "max"],
            }
        },
        id="GroupAggregate-global-schema",
    ),
]


@pytest.mark.parametrize(("type_name", "params"), PREDICTED)
def test_hook_predicts_the_real_schema(type_name: str, params: dict[str, Any]) -> None:
    df = pd.DataFrame(ROWS)
    node_type = default_catalog()[type_name]
    model = node_type.params_model.model_validate(params)
    predicted = node_type.infer_schema(model, {"input": schema_of(df)})
    if type_name == "TableWriter":
        assert predicted == schema_of(df)
        return
    actual = primary(run_node(type_name, params, {"input": df}, make_ctx()))
    assert predicted == schema_of(actual)


JOIN_LEFT = pd.DataFrame(
    {
        "k": [1, 2, 3],
        "n": [10, 20, 30],
        "x": [0.5, 1.5, 2.5],
        "s": ["a", "b", "c"],
        "at": pd.to_datetime(["2024-01-01", "2024-01-02", None]).tz_localize("UTC"),
    }
)
JOIN_RIGHT = pd.DataFrame({"k": [2, 3, 4], "k2": [2, 3, 4], "m": [7, 8, 9], "n": [1, 2, 3], "t": ["u", "v", "w"]})


@pytest.mark.parametrize("keys", [{"on": "k"}, {"left_on": "k", "right_on": "k2"}], ids=["on", "left_on"])
@pytest.mark.parametrize("how", ["inner", "left", "right", "outer", "cross"])
def test_join_schema_says_where_integers_become_float(how: str, keys: dict[str, str]) -> None:
    """JoinMerge-schema: a column of the side a join may leave unmatched is reported float when it
    was integer (pandas fills the unmatched rows with NaN); the inferred schema is what the run gives."""
    params = {"how": how, **({} if how == "cross" else keys), "indicator": how != "cross"}
    node_type = default_catalog()["JoinMerge"]
    predicted = node_type.infer_schema(
        node_type.params_model.model_validate(params), {"left": schema_of(JOIN_LEFT), "right": schema_of(JOIN_RIGHT)}
    )
    actual = run_node("JoinMerge", params, {"left": JOIN_LEFT, "right": JOIN_RIGHT})
    assert predicted == schema_of(actual)
    if how == "left":
        assert predicted["m"] == "float" and predicted["n_x"] == "integer"


def test_join_schema_of_nullable_and_boolean_columns() -> None:
    """Booleans of the unmatched side become object (any); nullable Int64 stays Int64 at run time,
    which the logical schema reports as float (it cannot tell Int64 from int64)."""
    left = pd.DataFrame({"k": [1, 2]})
    right = pd.DataFrame({"k": [2, 3], "flag": [True, False], "n": pd.array([1, 2], dtype="Int64")})
    node_type = default_catalog()["JoinMerge"]
    params = node_type.params_model(how="left", on="k")
    assert node_type.infer_schema(params, {"left": schema_of(left), "right": schema_of(right)}) == {
        "k": "integer",
        "flag": "any",
        "n": "float",
    }
    actual = run_node("JoinMerge", {"how": "left", "on": "k"}, {"left": left, "right": right})
    assert actual["flag"].dtype == object and str(actual["n"].dtype) == "Int64"


def test_union_schema_outer_and_inner() -> None:
    hook = default_catalog()["UnionConcatenate"].infer_schema
    params = default_catalog()["UnionConcatenate"].params_model
    a, b = {"x": "integer", "y": "string"}, {"x": "float", "z": "boolean"}
    assert hook(params(), {"a": a, "b": b}) == {"x": "float", "y": "string", "z": "any"}
    assert hook(params(join="inner"), {"a": a, "b": b}) == {"x": "float"}
    real = pd.concat([pd.DataFrame({"x": [1], "y": ["s"]}), pd.DataFrame({"x": [1.5], "z": [True]})])
    assert schema_of(real)["x"] == "float"


INVALID = [
    pytest.param(
        {"id": "ren", "type": "RenameColumns", "inputs": ["src"], "params": {"columns": {"qty": "n"}}},
        {"id": "sel", "type": "SelectColumns", "inputs": ["ren"], "params": {"columns": ["qty"]}},
        "node 'sel', field 'params.columns': column 'qty' is not in the input",
        "'ren.result' -> 'sel'",
        id="missing-column-after-rename",
    ),
    pytest.param(
        {
            "id": "piv",
            "type": "PivotTable",
            "inputs": ["src"],
            "params": {"index": "id", "columns": "qty", "values": "region", "aggfunc": "sum"},
        },
        None,
        "field 'params.aggfunc': cannot sum column 'region' of type string",
        "'src.result' -> 'piv'",
        id="PivotTable-non-numeric-aggregate",
    ),
    pytest.param(
        {
            "id": "win",
            "type": "WindowFunctions",
            "inputs": ["src"],
            "params": {"functions": [{"output": "m", "function": "rolling_sum", "column": "note", "window": 2}]},
        },
        None,
        "field 'params.functions[0].column': cannot rolling_sum column 'note'",
        "'src.result' -> 'win'",
        id="WindowFunctions-non-numeric",
    ),
    pytest.param(
        {
            "id": "fill",
            "type": "HandleMissingValues",
            "inputs": ["src"],
            "params": {"strategy": "median", "subset": ["region"]},
        },
        None,
        "cannot take the median of column 'region'",
        "'src.result' -> 'fill'",
        id="HandleMissingValues-median-text",
    ),
    pytest.param(
        {"id": "split", "type": "SplitColumn", "inputs": ["src"], "params": {"column": "qty"}},
        None,
        "cannot split column 'qty' of type integer",
        "'src.result' -> 'split'",
        id="SplitColumn-non-text",
    ),
    pytest.param(
        {"id": "br", "type": "ConditionalBranch", "inputs": ["src"], "params": {"condition": "qty + 1"}},
        None,
        "gives integer values, not true/false",
        "'src.result' -> 'br'",
        id="ConditionalBranch-not-boolean",
    ),
    pytest.param(
        {"id": "br", "type": "ConditionalBranch", "inputs": ["src"], "params": {"condition": "qty > 1"}},
        {"id": "sel", "type": "SelectColumns", "inputs": ["br.false"], "params": {"columns": ["nope"]}},
        "column 'nope' is not in the input",
        "'br.false' -> 'sel'",
        id="ConditionalBranch-output-edge",
    ),
    pytest.param(
        {
            "id": "tc",
            "type": "TryCatch",
            "inputs": ["src"],
            "params": {
                "body": [
                    {"id": "a", "type": "RenameColumns", "params": {"columns": {"qty": "n"}}},
                    {"id": "b", "type": "SelectColumns", "params": {"columns": ["qty"]}},
                ]
            },
        },
        None,
        "field 'params.body[1].params.columns': column 'qty' is not in the input",
        "'src.result' -> 'tc'",
        id="TryCatch-body-schema",
    ),
    pytest.param(
        {
            "id": "fe",
            "type": "ForEach",
            "inputs": ["src"],
            "params": {
                "group_by": "nope",
                "body": [{"id": "a", "type": "SelectColumns", "params": {"columns": ["qty"]}}],
            },
        },
        None,
        "field 'params.group_by': column 'nope' is not in the input",
        "'src.result' -> 'fe'",
        id="ForEach-group-by",
    ),
    pytest.param(
        {
            "id": "tw",
            "type": "TableWriter",
            "inputs": ["src"],
            "params": {"table": "t", "if_exists": "upsert", "keys": ["key"]},
        },
        None,
        "field 'params.keys': column 'key' is not in the input",
        "'src.result' -> 'tw'",
        id="TableWriter-upsert-keys",
    ),
]


@pytest.mark.parametrize(("first", "second", "message", "edge"), INVALID)
def test_validate_names_edge_and_column(first: dict, second: dict | None, message: str, edge: str) -> None:
    nodes = [first] + ([second] if second else [])
    found = errors_of(flow(*nodes))
    assert any(message in e and edge in e for e in found), found


BODY_ERRORS = [
    pytest.param([{"id": "a", "type": "SampelRows"}], "params.body[0].type", "unknown node type", id="unknown-type"),
    pytest.param(
        [{"id": "a", "type": "SampleRows", "params": {"n": -1}}],
        "params.body[0].params.n",
        "greater than or equal to 0",
        id="bad-param",
    ),
    pytest.param(
        [{"id": "a", "type": "SampleRows", "params": {"nn": 1}}],
        "params.body[0].params.nn",
        "unknown field",
        id="unknown-param",
    ),
    pytest.param(
        [{"id": "a", "type": "SampleRows"}, {"id": "b", "type": "Merge", "inputs": ["a", "zz"]}],
        "params.body[1].inputs",
        "names no earlier body node",
        id="bad-ref",
    ),
    pytest.param(
        [{"id": "a", "type": "TryCatch", "params": {"body": [{"id": "x", "type": "Nope"}]}}],
        "params.body[0].params.body[0].type",
        "unknown node type",
        id="nested",
    ),
]


@pytest.mark.parametrize(("body", "field", "message"), BODY_ERRORS)
@pytest.mark.parametrize("type_name", ["TryCatch", "ForEach"])
def test_body_specs_are_checked(type_name: str, body: list, field: str, message: str) -> None:
    found = errors_of(flow({"id": "wrap", "type": type_name, "inputs": ["src"], "params": {"body": body}}))
    assert any(f"node 'wrap', field '{field}'" in e and message in e for e in found), found


def test_body_resources_are_reported() -> None:
    """The flow's step gets the resources of its bodies' nodes, nested bodies too."""
    from dp_assets.compiler.plan import build_plan

    catalog = default_catalog()
    spec = flow(
        {
            "id": "wrap",
            "type": "TryCatch",
            "inputs": ["src"],
            "params": {
                "body": [
                    {"id": "r", "type": "TableReader", "params": {"table": "t"}},
                    {
                        "id": "n",
                        "type": "ForEach",
                        "params": {"body": [{"id": "a", "type": "APIRequest", "params": {"url": "x"}}]},
                    },
                ]
            },
        }
    )
    plan = build_plan(validate_spec(spec, catalog), catalog)
    assert plan.resource_keys == {"databases", "http", "secrets"}  # APIRequest reads header secrets
    assert plan.node("wrap").body.resource_keys == {"databases", "http", "secrets"}


PIVOT_ROWS = pd.DataFrame(
    {
        "region": ["EU", "US", "EU", "APAC"],
        "qty": [1, 2, 2, 1],
        "amount": [1.5, 2.0, 3.0, 4.0],
        "n": [1, 2, 3, 4],
        "note": ["a", "b", "c", "d"],
    }
)
DECLARED_PIVOTS = [
    pytest.param(
        {
            "index": "qty",
            "columns": "region",
            "values": "amount",
            "aggfunc": "mean",
            "columns_values": ["EU", "US", "APAC", "LATAM"],
        },
        id="PivotTable-declared-mean",
    ),
    pytest.param(
        {
            "index": "region",
            "columns": "qty",
            "values": ["amount", "n"],
            "aggfunc": ["sum", "count"],
            "columns_values": [1, 2, 3],
        },
        id="PivotTable-declared-two-levels",
    ),
    pytest.param(
        {
            "index": "region",
            "columns": "qty",
            "values": "n",
            "aggfunc": "count",
            "fill_value": 0,
            "columns_values": [2, 1],
        },
        id="PivotTable-declared-integer-fill",
    ),
    pytest.param(
        {
            "index": "note",
            "columns": ["region", "qty"],
            "values": "n",
            "aggfunc": "sum",
            "columns_values": [["EU", 1], ["US", 2], ["EU", 2], ["APAC", 1]],
        },
        id="PivotTable-declared-two-keys",
    ),
    pytest.param(
        {
            "index": "qty",
            "columns": "region",
            "values": "note",
            "aggfunc": "first",
            "columns_values": ["EU", "US", "APAC"],
            "sep": ".",
        },
        id="PivotTable-declared-text-first",
    ),
]


@pytest.mark.parametrize("params", DECLARED_PIVOTS)
def test_declared_pivot_has_the_same_columns_and_dtypes_whatever_values_a_run_sees(params: dict[str, Any]) -> None:
    """With columns_values, the schema dp validate infers is what every run gives: with all values,
    with some missing, and with no rows at all."""
    node_type = default_catalog()["PivotTable"]
    predicted = node_type.infer_schema(node_type.params_model.model_validate(params), {"input": schema_of(PIVOT_ROWS)})
    assert predicted is not None
    for rows in (PIVOT_ROWS, PIVOT_ROWS.iloc[[0, 2]], PIVOT_ROWS.iloc[:0]):
        result = run_node("PivotTable", params, {"input": rows})
        assert schema_of(result) == predicted
        assert list(result.columns) == list(predicted)


def test_declared_pivot_refuses_values_it_was_not_told_of() -> None:
    params = {"index": "qty", "columns": "region", "values": "amount", "aggfunc": "sum", "columns_values": ["EU", "US"]}
    with pytest.raises(ValueError, match=r"columns_values: value\(s\) 'APAC' of region are not declared"):
        run_node("PivotTable", params, {"input": PIVOT_ROWS})
    assert list(run_node("PivotTable", params, {"input": PIVOT_ROWS.iloc[:3]}).columns) == ["qty", "EU", "US"]


@pytest.mark.parametrize(
    ("columns", "declared", "message"),
    [
        ("region", [["EU", 1]], "each entry is a single value"),
        (["region", "qty"], ["EU"], "each entry is a list of 2 values"),
        ("region", ["EU", "EU"], "listed twice"),
    ],
    ids=["PivotTable-list-for-one-key", "PivotTable-scalar-for-two-keys", "PivotTable-duplicate"],
)
def test_declared_pivot_values_fit_the_columns(columns: Any, declared: list[Any], message: str) -> None:
    found = errors_of(
        flow(
            {
                "id": "piv",
                "type": "PivotTable",
                "inputs": ["src"],
                "params": {"index": "id", "columns": columns, "values": "amount", "columns_values": declared},
            }
        )
    )
    assert any("node 'piv', field 'params': columns_values: " in e and message in e for e in found), found
