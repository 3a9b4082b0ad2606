"""A column the input lacks, found only at run time (a source whose columns `dp validate` cannot
know, such as a Parquet or CSV file without `columns:`), fails the node with the message
`dp validate` gives when it can: the flow, the node, the param's field and the columns the input
has, not pandas' bare `KeyError: 'segmnt'`. Each case is first done directly in pandas, which
raises that `KeyError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec
from dp_resources.files import FilesResource

FRAME = pd.DataFrame({"customer_id": ["C1", "C2"], "segment": ["ENT", "SMB"], "amount": [1.0, 2.0]})
HAS = "(it has: customer_id, segment, amount)"

# node id -> (type, params, the same operation in pandas, field named)
CASES: dict[str, tuple[str, dict[str, Any], Callable[[pd.DataFrame], Any], str]] = {
    "grouped": (
        "GroupAggregate",
        {"by": "segmnt", "agg": {"n": ["amount", "sum"]}},
        lambda df: df.groupby("segmnt").agg(n=("amount", "sum")),
        "params.by",
    ),
    "aggregated": (
        "GroupAggregate",
        {"by": "segment", "agg": {"n": ["amout", "sum"]}},
        lambda df: df.groupby("segment").agg(n=("amout", "sum")),
        "params.agg.n",
    ),
    "sorted": ("SortData", {"by": "segmnt"}, lambda df: df.sort_values("segmnt"), "params.by"),
    "picked": ("SelectColumns", {"columns": ["segmnt"]}, lambda df: df[["segmnt"]], "params.columns"),
    "unique": ("Deduplicate", {"subset": ["segmnt"]}, lambda df: df.drop_duplicates(["segmnt"]), "params.subset"),
    "joined": (
        "JoinMerge",
        {"on": "segmnt"},
        lambda df: df.merge(df, on="segmnt"),
        "params.on",
    ),
    "windowed": (
        "WindowFunctions",
        {"partition_by": "segmnt", "functions": [{"output": "r", "function": "row_number"}]},
        lambda df: df.groupby("segmnt").cumcount(),
        "params.partition_by",
    ),
}


def _spec() -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "src", "type": "FileInput", "params": {"path": "customers.parquet"}}]
    for node_id, (node_type, params, _, _) in CASES.items():
        inputs: Any = {"left": "src", "right": "src"} if node_type == "JoinMerge" else ["src"]
        nodes.append({"id": node_id, "type": node_type, "inputs": inputs, "params": params})
    return {"id": "typos", "nodes": nodes}


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The run's failure message: one line per failed node."""
    root = tmp_path_factory.mktemp("typos")
    (root / "data").mkdir()
    FRAME.to_parquet(root / "data" / "customers.parquet", index=False)
    catalog = default_catalog()
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(_spec(), catalog), catalog),
        dg.Definitions(
            resources={
                "io_manager": dg.FilesystemIOManager(base_dir=str(Path(root) / "io")),
                "files": FilesResource(data_dir=str(root / "data")),
            }
        ),
    )
    result = defs.resolve_job_def("typos").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    while error.cls_name != "FailedNodes" and error.cause is not None:
        error = error.cause
    return error.message


def test_validation_cannot_know_the_columns() -> None:
    """The premise: the spec is valid, the file's columns are known only when it is read."""
    validate_spec(_spec(), default_catalog())


@pytest.mark.parametrize("node_id", list(CASES))
def test_a_missing_column_names_the_field_and_the_columns_the_input_has(failures: str, node_id: str) -> None:
    node_type, _, in_pandas, field = CASES[node_id]
    with pytest.raises(KeyError):
        in_pandas(FRAME)
    line = next(line for line in failures.splitlines() if f"node '{node_id}'" in line)
    missing = "amout" if node_id == "aggregated" else "segmnt"
    assert line == (
        f"flow 'typos', node '{node_id}' ({node_type}) failed: field '{field}': "
        f"column '{missing}' is not in the input {HAS}"
    )
