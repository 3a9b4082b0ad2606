"""Hand-written flows shaped like the compiler's output, at module level so that Dagster can
reconstruct them (``execute_job`` for re-execution) and child processes can run them.

- ``steps``: one ``@asset`` per node (a -> b -> c), the classic Dagster shape.
- ``flow``: ONE ``multi_asset`` per flow (op name = flow id, ``can_subset=True``), outputs named
  by node id, asset keys ``[flow_id, node_id]``; unselected upstream nodes are read with
  ``load_latest_output``, and a resume retry reuses what the parent run stored.

Side channels through environment variables: ``DP_TEST_LOG`` (a file each node appends its name
to when it really computes) and ``DP_TEST_FAIL`` (a file whose existence makes node c fail).
"""

import os
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from dp_io.io_manager import RunScopedIOManager
from dp_io.lookup import load_latest_output, reusable_parent_outputs


def record(node: str) -> None:
    with open(os.environ["DP_TEST_LOG"], "a") as handle:
        handle.write(node + "\n")


def computed() -> list[str]:
    path = Path(os.environ["DP_TEST_LOG"])
    return path.read_text().split() if path.exists() else []


def should_fail() -> bool:
    return Path(os.environ.get("DP_TEST_FAIL", "/nonexistent")).exists()


# ---- one asset per node ----------------------------------------------------------------------


@dg.asset(key=["steps", "a"])
def steps_a() -> pd.DataFrame:
    record("a")
    return pd.DataFrame({"x": [1, 2, 3]})


@dg.asset(key=["steps", "b"], ins={"a": dg.AssetIn(["steps", "a"])})
def steps_b(a: pd.DataFrame) -> pd.DataFrame:
    record("b")
    return a.assign(y=a["x"] * 10)


@dg.asset(key=["steps", "c"], ins={"b": dg.AssetIn(["steps", "b"])})
def steps_c(b: pd.DataFrame) -> int:
    record("c")
    if should_fail():
        raise RuntimeError("node c failed on purpose")
    return int(b["y"].sum())


def steps_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[steps_a, steps_b, steps_c],
        jobs=[dg.define_asset_job("steps", executor_def=dg.in_process_executor)],
        resources={"io_manager": RunScopedIOManager()},
    )
    return defs.resolve_job_def("steps")


# ---- one multi_asset per flow (the compiler's shape) ----------------------------------------

FLOW_NODES = ("a", "b", "c")
FLOW_DEPS = {"b": "a", "c": "b"}


@dg.multi_asset(
    name="flow",
    outs={
        node: dg.AssetOut(key=["flow", node], is_required=False, metadata={"dp/format": "arrow"}) for node in FLOW_NODES
    },
    internal_asset_deps={node: {dg.AssetKey(["flow", up])} for node, up in FLOW_DEPS.items()},
    can_subset=True,
    required_resource_keys={"io_manager"},
)
def flow(context: dg.AssetExecutionContext):
    io: RunScopedIOManager = context.resources.io_manager
    selected = context.op_execution_context.selected_output_names
    keys = {node: dg.AssetKey(["flow", node]) for node in FLOW_NODES}
    reusable = reusable_parent_outputs(context.instance, context.run, keys.values())
    values: dict[str, object] = {}

    def value_of(node: str):
        if node not in values:
            if node in reusable_nodes:
                values[node] = io.load_ref(reusable[keys[node]])
            else:  # not selected in this run: its latest stored value
                values[node] = load_latest_output(context.instance, keys[node], io, lineage_of=context.run.run_id)
        return values[node]

    reusable_nodes = {n for n in FLOW_NODES if keys[n] in reusable}
    for node in FLOW_NODES:
        if node not in selected or node in reusable_nodes:
            continue
        record(node)
        if node == "a":
            values["a"] = pd.DataFrame({"x": [1, 2, 3]})
        elif node == "b":
            a = value_of("a")
            values["b"] = a.assign(y=a["x"] * 10)
        else:
            if should_fail():
                raise RuntimeError("node c failed on purpose")
            values["c"] = int(value_of("b")["y"].sum())
        yield dg.Output(values[node], output_name=node)


def flow_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[flow],
        jobs=[dg.define_asset_job("flow", executor_def=dg.in_process_executor)],
        resources={"io_manager": RunScopedIOManager()},
    )
    return defs.resolve_job_def("flow")


# ---- two runs at once: a -> gate -> b, with a barrier in gate -------------------------------


@dg.asset(key=["conc", "a"])
def conc_a(context: dg.AssetExecutionContext) -> str:
    return context.run.tags["label"]


@dg.asset(key=["conc", "gate"], deps=[dg.AssetKey(["conc", "a"])])
def conc_gate(context: dg.AssetExecutionContext) -> None:
    """Wait until the other run has materialised its ``a`` too (it reached its own gate)."""
    barrier = Path(os.environ["DP_TEST_BARRIER"])
    label = context.run.tags["label"]
    (barrier / label).touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.iterdir())) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the other run never reached the barrier")
        time.sleep(0.05)


@dg.asset(
    key=["conc", "b"],
    ins={"a": dg.AssetIn(["conc", "a"])},
    deps=[dg.AssetKey(["conc", "gate"])],
)
def conc_b(a: str) -> str:
    return a


def conc_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[conc_a, conc_gate, conc_b],
        jobs=[dg.define_asset_job("conc", executor_def=dg.in_process_executor)],
        resources={"io_manager": RunScopedIOManager()},
    )
    return defs.resolve_job_def("conc")


if __name__ == "__main__":
    # python io_flows.py conc LABEL: one run of the ``conc`` job on $DAGSTER_HOME's instance.
    _, job_name, label = sys.argv
    with dg.DagsterInstance.get() as instance:
        result = {"conc": conc_job}[job_name]().execute_in_process(
            instance=instance, tags={"label": label}, raise_on_error=False
        )
    print(result.run_id)
    sys.exit(0 if result.success else 1)
