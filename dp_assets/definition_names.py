"""The names Dagster wants unique in a repository, claimed flow by flow as the location loads
(``dp_assets.location``)."""

from collections.abc import Iterator

import dagster as dg


class DefinitionNames:
    """Names Dagster wants unique in a repository, claimed flow by flow.

    Each flow's names are unique within it, but names are made from ids (``<flow>__step``,
    ``<flow>_after_<up>_sensor``...), so two flows can make the same one; Dagster would then
    refuse the whole repository. The flow that comes later (by id) is reported instead; only the
    flows that passed the cross-flow check claim names."""

    #: What the platform itself defines beside the flows (the load report, the retention schedule).
    PLATFORM = (
        ("asset", "dp_platform/flow_load_report"),
        ("job or op", "flow_load_report"),
        ("job or op", "dp_retention_job"),
        ("job or op", "dp_retention_prune"),
        ("schedule or sensor", "dp_retention"),
    )

    def __init__(self, freshness_sensor: str) -> None:
        platform = [*self.PLATFORM, ("schedule or sensor", freshness_sensor)]
        self._owners: dict[tuple[str, str], str] = dict.fromkeys(platform, "the platform")

    def claim(self, flow_id: str, definitions: dg.Definitions) -> None:
        mine = set(self._names(definitions))
        taken = sorted(
            f"{kind} '{name}' (of {self._owners[(kind, name)]})" for kind, name in mine if (kind, name) in self._owners
        )
        if taken:
            raise ValueError(
                f"flow '{flow_id}' makes Dagster names another flow already has: "
                + ", ".join(taken)
                + "; rename the flow or the node"
            )
        self._owners.update(dict.fromkeys(mine, f"flow '{flow_id}'"))

    @staticmethod
    def _names(definitions: dg.Definitions) -> Iterator[tuple[str, str]]:
        # Jobs and ops (a step is an op) share one namespace; schedules and sensors another.
        for job in definitions.jobs or ():
            yield "job or op", job.name
        for asset in definitions.assets or ():
            assert isinstance(asset, dg.AssetsDefinition)  # a compiled flow's steps are multi-assets
            yield "job or op", asset.node_def.name
            for key in asset.keys:
                yield "asset", key.to_user_string()
        for instigator in [*(definitions.schedules or ()), *(definitions.sensors or ())]:
            yield "schedule or sensor", instigator.name
