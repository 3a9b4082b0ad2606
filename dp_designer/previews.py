"""Previews of a draft: "run up to this node", on the flow's data or on a row sample.

A preview runs through the flow-test machinery (``dp_assets.flowtest``), so it uses the
platform's own node implementations, resources and sandbox, in process on an ephemeral Dagster
instance: nothing is stored and no run appears in Dagster. The spec is cut to the node and the
nodes it reads (directly or through others); every side-effecting node left in it (sinks, tools)
becomes a stand-in that passes its input through and sends nothing. Sources read the flow's
real data (the data root, the flows folder); with ``sample_rows`` each source's table is cut to
its first rows before any node reads it, and a file source reads only those rows where that
gives the same rows (``dp_assets.catalog.nodes.first_rows``).

A preview turns into a ``dp test`` case (``test_case``): its sources' tables become fixtures,
the node's output the expectation, so the case checks the same computation without the data.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dp_assets.catalog.base import SKIPPED, Catalog, NodeType, whole
from dp_assets.catalog.nodes.first_rows import first_rows_only
from dp_assets.spec.loading import split_ref
from dp_assets.spec.validation import ValidatedFlow, validate_spec
from dp_designer.http import ApiError
from dp_designer.tables import json_records, value_view
from dp_io.formats import is_dataframe

#: A sample larger than this is no preview; a test case's fixture tables are bounded the same way.
MAX_SAMPLE_ROWS = 100_000
MAX_CASE_ROWS = 1_000
#: How long an editor waits for a preview. Previews run one at a time, so one that is still
#: running past this answers 504 and the next waits its turn; each node keeps its own timeout.
PREVIEW_SECONDS = 120.0


@dataclass
class _Sample:
    """Which nodes are sources of the preview running now, and how many rows each keeps."""

    sources: frozenset[str] = frozenset()
    rows: int | None = None


def _sampling(node_type: NodeType, sample: _Sample) -> NodeType:
    original = node_type.run

    @functools.wraps(original)
    def run(ctx: Any, params: Any, inputs: dict[str, Any]) -> Any:
        value = original(ctx, params, inputs)
        if sample.rows is None or ctx.node_id not in sample.sources:
            return value
        value = whole(value)  # a table is cut; other values (a tool's answer) pass whole
        return value.head(sample.rows).reset_index(drop=True) if is_dataframe(value) else value

    return replace(node_type, run=run)


def _upstreams(node: Mapping[str, Any]) -> list[str]:
    inputs = node.get("inputs") or []
    refs = inputs.values() if isinstance(inputs, Mapping) else inputs
    return [split_ref(ref)[0] for ref in refs if isinstance(ref, str)]


def cut_to(raw: Mapping[str, Any], node_id: str) -> dict[str, Any]:
    """The canonical spec with only ``node_id`` and the nodes it reads, directly or not."""
    nodes = {n["id"]: n for n in raw.get("nodes", []) if isinstance(n, Mapping) and isinstance(n.get("id"), str)}
    if node_id not in nodes:
        raise ApiError(422, f"flow '{raw.get('id')}' has no node '{node_id[:64]}' to preview")
    keep: set[str] = set()
    pending = [node_id]
    while pending:
        current = pending.pop()
        if current in keep or current not in nodes:
            continue
        keep.add(current)
        pending.extend(_upstreams(nodes[current]))
    return {**raw, "nodes": [node for node_id_, node in nodes.items() if node_id_ in keep]}


def time_limited(raw: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """``raw`` with every node held to at most ``seconds`` (its own ``timeout_seconds`` when
    smaller). Previews run one at a time on one thread: a node that never ends (a SqlTransform
    over ``range(10^15)``) would hold it for good, and every later preview of every flow would
    answer 504 until the designer restarts. A node with a limit runs in a forked child that is
    killed at it (``compiler.timeouts``), so the thread is free again."""
    nodes = []
    for node in raw.get("nodes", []):
        own = node.get("timeout_seconds")
        limit = min(own, seconds) if isinstance(own, int | float) and not isinstance(own, bool) else seconds
        nodes.append({**node, "timeout_seconds": limit})
    return {**raw, "nodes": nodes}


def side_effect_nodes(raw: Mapping[str, Any], catalog: Catalog) -> list[str]:
    found = []
    for node in raw.get("nodes", []):
        node_type = catalog.get(node.get("type"))
        if node_type is not None and node_type.side_effects:
            found.append(node["id"])
    return found


@dataclass
class Preview:
    flow_id: str
    node: str
    params: dict[str, Any]
    sample_rows: int | None
    outputs: dict[str, Any] | None  # output name -> value; None: the node did not run
    sources: dict[str, Any]  # source node id -> the table (or value) it gave
    stand_ins: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def view(self) -> dict[str, Any]:
        def shown(value: Any) -> dict[str, Any]:
            return {"kind": "skipped"} if value is SKIPPED else value_view(value)

        return {
            "flow": self.flow_id,
            "node": self.node,
            "ok": not self.problems and self.outputs is not None,
            "sample_rows": self.sample_rows,
            "seconds": round(self.seconds, 3),
            "stand_ins": self.stand_ins,
            "problems": self.problems,
            "outputs": {name: shown(v) for name, v in (self.outputs or {}).items()},
            "sources": {node: shown(_first(v)) for node, v in self.sources.items()},
        }


def _first(outputs: Mapping[str, Any]) -> Any:
    return next(iter(outputs.values()), SKIPPED)


class PreviewService:
    """Runs previews one at a time (a preview runs in this process; two at once would only
    compete for the same cores), with one flow-test runner kept between them."""

    def __init__(self, catalog: Catalog, flows_root: Path | None = None):
        self.catalog = catalog
        self.flows_root = flows_root
        self._sample = _Sample()
        # One thread runs every preview: one at a time, and the ephemeral Dagster instance of
        # each (SQLite in memory) is made and dropped in the thread that may use it.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dp-preview")
        self._runner: Any = None
        self._instance: Any = None

    def _get_runner(self) -> Any:
        import dagster as dg

        from dp_assets.flowtest.runner import FlowTestRunner
        from dp_resources.files import FilesResource

        if self._runner is None:
            sampled = Catalog(_sampling(node_type, self._sample) for node_type in self.catalog.values())
            # The real data root and flows folder: a preview reads the flow's own data; it writes
            # nothing, since every side-effecting node is a stand-in.
            roots = {"flows": str(self.flows_root)} if self.flows_root else {}
            self._instance = dg.DagsterInstance.ephemeral()  # one for every preview, made in this thread
            self._runner = FlowTestRunner(
                catalog=sampled,
                resources={"files": FilesResource(read_roots=roots)},
                flows_root=self.flows_root,
                instance=self._instance,
            )
        return self._runner

    def close(self) -> None:
        if self._runner is not None:
            self._worker.submit(self._close_in_worker).result()
        self._worker.shutdown()

    def _close_in_worker(self) -> None:
        self._runner.close()
        if self._instance is not None:
            self._instance.dispose()

    def _run_case(
        self, cut: dict[str, Any], case: Any, sources: frozenset[str], sample_rows: int | None
    ) -> tuple[Any, dict[str, Any]]:
        runner = self._get_runner()
        self._sample.sources, self._sample.rows = sources, sample_rows
        # The whole draft was validated with its column schemas just before; the cut is a part of it.
        cut_flow = validate_spec(cut, self.catalog, check_schemas=False, check_compiles=False)
        # Sources read only the rows the sample keeps, where that gives the same rows (first_rows.py).
        with first_rows_only(sample_rows), tempfile.TemporaryDirectory(prefix="dp-preview-") as folder:
            result = runner.run_case(cut_flow, case, Path(folder) / "preview.yaml")
        records = dict(runner.harness.records)
        self._instance.wipe()  # a preview keeps no run: the shared instance stays empty
        return result, records

    def run(self, validated: ValidatedFlow, node: str, params: Mapping[str, Any], sample_rows: int | None) -> Preview:
        from dp_assets.flowtest.model import Sink, TestCase

        cut = time_limited(cut_to(validated.raw, node), max(PREVIEW_SECONDS, 1.0))
        sources = [n["id"] for n in cut["nodes"] if not _upstreams(n)]
        case = TestCase(
            name="preview",
            params=dict(params),
            sinks={node_id: Sink(real=False) for node_id in side_effect_nodes(cut, self.catalog)},
        )
        started = time.perf_counter()
        running = self._worker.submit(self._run_case, cut, case, frozenset(sources), sample_rows)
        try:
            result, records = running.result(timeout=PREVIEW_SECONDS)
        except FutureTimeout:
            raise ApiError(
                504, f"the preview of node '{node}' took over {PREVIEW_SECONDS:g} s: preview on a row sample"
            ) from None
        return Preview(
            flow_id=validated.id,
            node=node,
            params=dict(params),
            sample_rows=sample_rows,
            outputs=records.get(node),
            sources={s: records[s] for s in sources if s in records},
            stand_ins=result.stand_ins,
            problems=result.problems,
            seconds=time.perf_counter() - started,
        )


def test_case(preview: Preview, name: str, flow_raw: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
    """A ``dp test`` case of ``preview``: its sources' tables as fixtures, the node's outputs as
    the expectations; checked against the test-file model before it is handed out."""
    from dp_assets.flowtest.model import TestCase

    if preview.outputs is None or preview.problems:
        raise ApiError(422, f"the preview of node '{preview.node}' did not give a value: {'; '.join(preview.problems)}")
    fixtures: dict[str, Any] = {}
    for source, outputs in preview.sources.items():
        fixtures[source] = _fixture(source, _first(outputs))
    expect: dict[str, Any] = {}
    node_type = catalog[_type_of(flow_raw, preview.node)]
    for output, value in preview.outputs.items():
        target = preview.node if output == node_type.outputs[0] else f"{preview.node}.{output}"
        expect[target] = {"skipped": True} if value is SKIPPED else _expectation(target, value)
    fixed = set(fixtures)
    sinks = {n: {"real": False} for n in side_effect_nodes(flow_raw, catalog) if n not in fixed}
    case: dict[str, Any] = {"name": name}
    if preview.params:
        case["params"] = preview.params
    case["fixtures"] = fixtures
    if sinks:
        case["sinks"] = sinks
    case["expect"] = expect
    TestCase.model_validate(case)
    return case


test_case.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _type_of(raw: Mapping[str, Any], node_id: str) -> str:
    return next(n["type"] for n in raw["nodes"] if n["id"] == node_id)


def _too_big(what: str, rows: int) -> ApiError:
    return ApiError(
        422,
        f"{what} has {rows} rows; a test case keeps at most {MAX_CASE_ROWS}: preview on a row sample "
        f"(sample_rows <= {MAX_CASE_ROWS})",
    )


def _fixture(source: str, value: Any) -> dict[str, Any]:
    if value is SKIPPED:
        return {"value": None}
    if not is_dataframe(value):
        return {"value": value_view(value)["value"]}
    if len(value) > MAX_CASE_ROWS:
        raise _too_big(f"source '{source}'", len(value))
    if not len(value):  # records without rows carry no columns: the fixture would lose them
        raise ApiError(422, f"source '{source}' gave no rows: a test case needs rows to keep as its fixture")
    fixture: dict[str, Any] = {"rows": json_records(value)}
    dates = [str(c) for c, t in value.dtypes.items() if str(t).startswith("datetime64")]
    if dates:
        fixture["parse_dates"] = dates
    return fixture


def _expectation(target: str, value: Any) -> dict[str, Any]:
    if not is_dataframe(value):
        return {"value": value_view(value)["value"]}
    if len(value) > MAX_CASE_ROWS:
        raise _too_big(f"the output of '{target}'", len(value))
    return {"rows": len(value), "columns": [str(c) for c in value.columns], "equals": json_records(value)}
