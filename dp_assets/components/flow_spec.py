"""One flow spec as a Dagster component: a ``defs.yaml`` whose ``attributes`` are the spec.

    type: dp_assets.components.FlowSpecComponent
    attributes:
      id: daily_sales
      nodes: [...]

``dg check yaml`` checks the attributes against the flow spec's JSON Schema (the pydantic model
the designer's forms come from); loading the component (``dg check defs``, ``dg dev``) validates
the spec as ``dp validate`` does and compiles it as the code location compiles a published flow.
Dagster's own templating is not applied to the attributes: ``{{ params.x }}`` stays the spec's.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar, Self

import dagster as dg
from pydantic import BaseModel, ConfigDict

from dp_assets import compiled_flows as compiled_cache
from dp_assets.catalog import default_catalog
from dp_assets.components.platform import platform_pieces
from dp_assets.dagster_internals import validating_definitions
from dp_assets.location import LoadReport
from dp_assets.spec.validation import FlowValidationError, validate_spec
from dp_settings import load, using

log = logging.getLogger("dp.components")


class FlowSpecAttributes(BaseModel):
    """A flow spec as written (any keys: ``validate_spec`` judges them); its JSON Schema is the
    flow spec's, so that ``dg check yaml`` and editors check the attributes against it."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The flow spec's schema, whole (its own ``$defs``): what dg asks of a component type."""
        from dp_assets.spec.model import flow_json_schema

        return flow_json_schema(default_catalog())


class FlowSpecScaffolder(dg.Scaffolder):
    """``dg scaffold defs dp_assets.components.FlowSpecComponent FOLDER``: a ``defs.yaml`` with a
    small flow that validates, named after the folder, to grow from (docs/flow-spec.md)."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        flow_id = re.sub(r"[^a-z0-9_]", "_", request.target_path.name.lower()).lstrip("_0123456789")[:64] or "flow"
        spec = {
            "id": flow_id,
            "description": "A flow written as a component (docs/dg.md).",
            "nodes": [
                {"id": "rows", "type": "StaticData", "params": {"rows": [{"region": "north", "amount": 3}]}},
                {"id": "shown", "type": "DisplayResults", "inputs": ["rows"]},
            ],
        }
        dg.scaffold_component(request, spec)


@dg.scaffold_with(FlowSpecScaffolder)
class FlowSpecComponent(dg.Component):
    """A flow spec in a ``defs.yaml``: the flow's assets, job, schedules, sensors and checks,
    exactly as the code location compiles the same spec once published."""

    problem_group: ClassVar[str] = "dp_platform"
    #: A problem's text is cut here, as in the location's load report (a hostile spec's error
    #: can quote megabytes of it).
    max_problem_chars: ClassVar[int] = LoadReport.MAX_PROBLEM_CHARS

    def __init__(self, spec: dict[str, Any], folder: Path = Path("flow")) -> None:
        self.spec = spec
        self.folder = folder

    @property
    def where(self) -> str:
        return str(self.folder / "defs.yaml")

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        return FlowSpecAttributes

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> Self:
        spec = attributes.model_dump() if attributes is not None else {}
        return cls(spec, folder=context.path)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        settings = load()
        resources, executors = platform_pieces(settings)
        catalog = default_catalog()
        compiled_flows = compiled_cache.compiled_flows()
        with using(settings):
            try:
                validated = validate_spec(self.spec, catalog, cache=compiled_flows.records())
                compiled = compiled_flows.get(validated.id, validated.version, validated.raw, catalog, None, executors)
                flow = compiled.definitions(resources, executors.default)
            except Exception as exc:  # noqa: BLE001 - one bad spec must not stop the location (but fails a check)
                text = str(exc) if isinstance(exc, FlowValidationError) else f"{type(exc).__name__}: {exc}"
                if validating_definitions():
                    raise dg.DagsterInvalidDefinitionError(f"{self.where}: {text}") from None
                log.error("%s was left out: %s", self.where, text)
                return dg.Definitions(assets=[self._problem_asset(text)], resources=resources)
        # The platform's resources, the same objects the flow store component gives (a project
        # of spec components alone runs too): Dagster merges them as one.
        return dg.Definitions.merge(flow, dg.Definitions(resources=resources))

    def _problem_asset(self, text: str) -> dg.AssetsDefinition:
        """A bad spec is one visible problem, not a code location that fails to load."""
        if len(text) > self.max_problem_chars:
            text = text[: self.max_problem_chars] + f"... ({len(text):,} characters in all)"
        name = re.sub(r"[^A-Za-z0-9_]", "_", self.folder.name) or "flow"
        where = self.where

        @dg.asset(
            key=dg.AssetKey(["dp_platform", "spec_component_problems", name]),
            group_name=self.problem_group,
            description=f"The flow spec in {where} is invalid and was left out:\n\n```\n{text}\n```",
        )
        def spec_component_problem() -> dg.MaterializeResult:
            raise dg.Failure(f"{where} is invalid:\n{text}")

        return spec_component_problem
