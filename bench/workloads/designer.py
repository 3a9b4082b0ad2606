"""Workload 10, the designer's validation round trip: what every edit on the canvas waits for.

``POST /api/validate`` of a flow of 100 and 300 nodes (a source and a chain of column
selections, filters and derived columns, so that column schemas propagate along every edge),
through the designer's ASGI app in process (Starlette's TestClient: request parsing, JSON both
ways, the check, the answer). Anchor: ``validate_spec`` called directly on the same spec, the
floor of the round trip. Targets from issue 18: p95 under 200 ms (100 nodes in this slice; 300
nodes is the issue's figure for the full designer).
"""

from __future__ import annotations

import tempfile
import time
from typing import TYPE_CHECKING, Any

from bench.harness import median, percentile
from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

TITLE = "10. Designer: validation round trip"


def chain_spec(nodes: int) -> dict[str, Any]:
    """A source and ``nodes - 1`` transforms in a chain, each reading the one before."""
    spec_nodes: list[dict[str, Any]] = [
        {"id": "n0", "type": "StaticData", "params": {"rows": [{"region": "EU", "amount": 1.5, "qty": 2}]}}
    ]
    kinds = [
        ("FilterRows", {"condition": "amount > 0"}),
        ("SelectColumns", {"columns": ["region", "amount", "qty"]}),
        ("SortData", {"by": ["amount"]}),
    ]
    for i in range(1, nodes):
        kind, params = kinds[i % len(kinds)]
        spec_nodes.append({"id": f"n{i}", "type": kind, "inputs": [f"n{i - 1}"], "params": params})
    return {"id": f"chain_{nodes}", "nodes": spec_nodes}


def measure(nodes: int, repeats: int) -> tuple[list[float], list[float], str]:
    from starlette.testclient import TestClient

    from dp_assets.catalog import default_catalog
    from dp_assets.spec.validation import validate_spec
    from dp_assets.store_api import FlowStoreAPI
    from dp_designer.app import build_app
    from dp_designer.runs_api import RunsService
    from dp_resources.store import FlowStore

    spec = chain_spec(nodes)
    catalog = default_catalog()
    with tempfile.TemporaryDirectory(prefix="dp-bench-designer-") as home:
        api = FlowStoreAPI(FlowStore(f"sqlite:///{home}/store.db"), catalog)
        client = TestClient(build_app(api, RunsService("http://127.0.0.1:9/graphql"), client_dist=None))
        first = client.post("/api/validate", json={"document": spec}).json()  # warm-up, and the check
        check = "ok" if first["valid"] and len(first["schemas"]) == nodes else f"FAILED: {str(first)[:300]}"
        trips, direct = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            client.post("/api/validate", json={"document": spec})
            trips.append(time.perf_counter() - started)
            started = time.perf_counter()
            validate_spec(spec, catalog, check_compiles=False)
            direct.append(time.perf_counter() - started)
    return trips, direct, check


def run(ctx: RunContext) -> WorkloadResult:
    repeats = 5 if ctx.smoke else 40
    result = WorkloadResult("designer", TITLE)
    for nodes in (100, 300):
        trips, direct, check = measure(nodes, repeats)
        p95 = percentile(trips, 95) * 1000
        result.rows.append(
            ctx.row(
                "designer",
                f"{nodes} nodes",
                "POST /api/validate p95",
                p95,
                "ms",
                anchor=percentile(direct, 95) * 1000,
                anchor_label="validate_spec in process",
                target="< 200 ms",
                met=p95 < 200,
                check=check,
                notes=f"median {median(trips) * 1000:.0f} ms over {repeats} round trips; not compiled (a draft)",
            )
        )
    return result
