"""Helpers shared by the trigger tests (a uniquely named module: pytest puts test folders on
sys.path, so a plain ``helpers`` would clash with other folders)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec

STATIC = {"id": "rows", "type": "StaticData", "params": {"rows": [{"x": 1}, {"x": 2}]}}


def flow_spec(flow_id: str, **extra: Any) -> dict[str, Any]:
    """A one-node flow (StaticData) with the given params, triggers, policies or notify."""
    return {"id": flow_id, "nodes": [STATIC], **extra}


def compile_flows(*specs: dict[str, Any], resources: dict[str, Any] | None = None) -> dg.Definitions:
    catalog = default_catalog()
    flows = [build_flow_definitions(validate_spec(spec, catalog), catalog) for spec in specs]
    return dg.Definitions.merge(*flows, dg.Definitions(resources=resources or {}))


def write_flows(folder: Any, *specs: dict[str, Any]) -> Any:
    """Spec files for ``DP_FLOWS_DIR`` (the code location imports them when it loads)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        (folder / f"{spec['id']}.json").write_text(json.dumps(spec, indent=2))
    return folder


def in_process_location(location_name: str = "dp_platform") -> Any:
    """The real code location (``dp_assets.definitions``) loaded in this process, for driving
    Dagster's own daemon iterations (scheduler, sensors) without a gRPC server."""
    import sys

    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="dp_assets.definitions", attribute="defs"),
        location_name=location_name,
    )
    return InProcessWorkspaceLoadTarget(origin)
