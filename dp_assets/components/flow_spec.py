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
import os
import re
from typing import Any, ClassVar, Self

import dagster as dg
from pydantic import BaseModel, ConfigDict

from dp_assets.catalog import default_catalog
from dp_assets.components.platform import platform_pieces
from dp_assets.spec.validation import FlowValidationError, validate_spec
from dp_settings import load, using

log = logging.getLogger("dp.components")

#: Set by ``dg check defs`` (Dagster's documented switch for validation mode): a bad spec fails
#: the check there, while a serving code location reports it and loads every other flow.
VALIDATION_CLI_ENV = "DAGSTER_IS_DEFS_VALIDATION_CLI"


class FlowSpecAttributes(BaseModel):
    """A flow spec as written (any keys: ``validate_spec`` judges them); its JSON Schema is the
    flow spec's, so that ``dg check yaml`` and editors check the attributes against it."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The flow spec's schema, whole (its own ``$defs``): what dg asks of a component type."""
        from dp_assets.spec.model import flow_json_schema

        return flow_json_schema(default_catalog())


class FlowSpecComponent(dg.Component):
    """A flow spec in a ``defs.yaml``: the flow's assets, job, schedules, sensors and checks,
    exactly as the code location compiles the same spec once published."""

    problem_group: ClassVar[str] = "dp_platform"

    def __init__(self, spec: dict[str, Any], where: str = "defs.yaml") -> None:
        self.spec = spec
        self.where = where

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        return FlowSpecAttributes

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> Self:
        spec = attributes.model_dump() if attributes is not None else {}
        return cls(spec, where=str(context.path / "defs.yaml"))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from dp_assets.location import _compiled

        settings = load()
        resources, executors = platform_pieces(settings)
        catalog = default_catalog()
        with using(settings):
            try:
                validated = validate_spec(self.spec, catalog, cache=_compiled.records())
            except FlowValidationError as exc:
                if os.environ.get(VALIDATION_CLI_ENV):
                    raise dg.DagsterInvalidDefinitionError(f"{self.where}: {exc}") from None
                log.error("%s was left out: %s", self.where, exc)
                return dg.Definitions(assets=[self._problem_asset(str(exc))], resources=resources)
            compiled = _compiled.get(validated.id, validated.version, validated.raw, catalog, None, executors)
            flow = compiled.definitions(resources, executors.default)
            # The platform's resources, the same objects the flow store component gives (a
            # project of spec components alone runs too): Dagster merges them as one.
            return dg.Definitions.merge(flow, dg.Definitions(resources=resources))

    def _problem_asset(self, text: str) -> dg.AssetsDefinition:
        """A bad spec is one visible problem, not a code location that fails to load."""
        name = re.sub(r"[^A-Za-z0-9_]", "_", self.where.rsplit("/", 2)[-2] if "/" in self.where else self.where)

        @dg.asset(
            key=dg.AssetKey(["dp_platform", "spec_component_problems", name]),
            group_name=self.problem_group,
            description=f"The flow spec in {self.where} is invalid and was left out:\n\n```\n{text}\n```",
        )
        def spec_component_problem() -> dg.MaterializeResult:
            raise dg.Failure(f"{self.where} is invalid:\n{text}")

        return spec_component_problem
