"""What a load of the code location has to compile: every flow, or only the flows a run needs.

A code server compiles every published flow once and pins the versions it compiled in the
location's reconstruction metadata (Dagster carries it to run and step workers with the run's
execution plan). A run worker, a multiprocess child or a Celery step worker only reconstructs
the job it executes, so compiling 1,000 flows there would make every run start pay for the whole
location. :meth:`LoadScope.current` finds that job and returns the flows it needs, at the
versions the code server planned the run with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from dp_assets.dagster_internals import (
    IMPLICIT_ASSET_JOB_NAME,
    add_reconstruction_metadata,
    job_being_reconstructed,
    reconstruction_metadata,
)

VERSIONS_KEY = "dp/flow_versions"
#: The job Dagster launches when assets are materialised from the asset graph rather than a job.
IMPLICIT_ASSET_JOB = IMPLICIT_ASSET_JOB_NAME


@dataclass(frozen=True)
class LoadScope:
    """``flows=None``: the whole location. Otherwise only these flows, at ``versions`` where pinned."""

    flows: frozenset[str] | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    wanted_keys: frozenset[dg.AssetKey] = frozenset()

    @property
    def is_whole(self) -> bool:
        return self.flows is None

    @classmethod
    def whole(cls) -> LoadScope:
        return cls()

    @classmethod
    def for_job(
        cls,
        job_name: str,
        asset_selection: Iterable[dg.AssetKey] | None,
        versions: Mapping[str, str] | None = None,
    ) -> LoadScope:
        """The flows a job needs: the flow named like the job, or the flows of the selected assets
        when the implicit asset job runs (asset keys start with the flow id)."""
        versions = dict(versions or {})
        if job_name != IMPLICIT_ASSET_JOB:
            return cls(frozenset([job_name]), versions)
        keys = frozenset(asset_selection or ())
        if not keys:
            return cls.whole()
        return cls(frozenset(key.path[0] for key in keys), versions, keys)

    @classmethod
    def current(cls) -> LoadScope:
        """Whole on a code server or a plain import; the reconstructed job's flows in a worker."""
        metadata = reconstruction_metadata()
        if metadata is None:
            return cls.whole()
        job = job_being_reconstructed()
        if job is None:
            return cls.whole()
        return cls.for_job(job.name, job.asset_selection, pinned_versions(metadata))

    def covers(self, asset_keys: Iterable[dg.AssetKey]) -> bool:
        """Whether a scoped build holds every selected asset; if not, build the whole location."""
        return self.wanted_keys <= set(asset_keys)


def pin_versions(versions: Mapping[str, str]) -> None:
    """On a code server, record the compiled versions: Dagster hands them to the workers of every
    run it plans, so they rebuild exactly the flows the run was planned on."""
    add_reconstruction_metadata(VERSIONS_KEY, json.dumps(dict(versions), sort_keys=True))


def pinned_versions(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The versions :func:`pin_versions` recorded, from a worker's reconstruction metadata."""
    raw = metadata.get(VERSIONS_KEY)
    return json.loads(raw) if raw else {}
