"""The flow store as a state-backed Dagster component (``dg``; docs/dg.md).

The state is what the store publishes: flow -> version, and what importing the flows folder
reported. ``dg dev`` refreshes it at every load, ``dg utils refresh-defs-state`` on demand, and a
code server with ``management_type: LEGACY_CODE_SERVER_SNAPSHOTS`` at every start and reload (its
run workers then rebuild from the same state). Without a state (never refreshed here) the
component reads the store as it is now, as ``dp_assets.definitions`` does. Either way the
definitions are those ``build_code_location`` makes for the same versions (tests/components).
"""

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import dagster as dg
from dagster.components import DefsStateConfig, DefsStateConfigArgs, ResolvedDefsStateConfig
from pydantic import BaseModel, ConfigDict, ValidationError

from dp_assets.catalog import default_catalog
from dp_assets.components.platform import platform_pieces
from dp_assets.loading import LoadScope
from dp_assets.publishing import ImportReport
from dp_resources.store import FlowStore
from dp_settings import PlatformSettings, load, using

log = logging.getLogger("dp.components")

#: The state's layout; a state of another layout is ignored (the store is read as it is now).
STATE_FORMAT = 1
DEFAULT_STATE_KEY = "dp_platform.flow_store"


class ImportedFolder(BaseModel):
    """What importing the flows folder reported when the state was taken (``ImportReport``
    without what it saved, which the versions hold)."""

    model_config = ConfigDict(extra="forbid")

    problems: dict[str, str] = {}
    conflicts: dict[str, str] = {}
    sources: dict[str, str] = {}
    gone: dict[str, str] = {}
    newly_gone: list[str] = []
    unchanged: int = 0

    def report(self) -> ImportReport:
        fields = self.model_dump()
        fields["newly_gone"] = set(fields["newly_gone"])
        return ImportReport(**fields)


class FlowStoreState(BaseModel):
    """The component's state file: the store's published versions, and which store they are of
    (a hash of its URL: the URL may hold a password)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1]
    store: str
    versions: dict[str, str]
    imported: ImportedFolder = ImportedFolder()


@dataclass
class FlowStoreComponent(dg.StateBackedComponent, dg.Resolvable):
    """Every published flow of the platform's flow store (``DP_STORE_URL``, else the embedded
    store in ``DP_HOME``), each compiled to its assets, job, schedules, sensors and checks, with
    the platform's resources, the flow load report and the retention schedule."""

    import_flows_folder: Annotated[
        bool,
        dg.Resolver.default(
            description="Publish what changed in the flows folder (DP_FLOWS_DIR) when the state is taken."
        ),
    ] = True
    defs_state: ResolvedDefsStateConfig = field(default_factory=DefsStateConfigArgs.local_filesystem)

    @property
    def defs_state_config(self) -> DefsStateConfig:
        return DefsStateConfig.from_args(self.defs_state, default_key=DEFAULT_STATE_KEY)

    def write_state_to_path(self, state_path: Path) -> None:
        settings = load()
        with using(settings):
            state = take_state(settings, self.import_flows_folder)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(state.model_dump_json(indent=1))

    def build_defs_from_state(self, context: dg.ComponentLoadContext, state_path: Path | None) -> dg.Definitions:
        from dp_assets.location import build_code_location, compile_published

        settings = load()
        resources, _executors = platform_pieces(settings)
        scope = LoadScope.current()
        if not scope.is_whole:  # a run or step worker: only its flows, at the versions its run was planned with
            return build_code_location(scope=scope, settings=settings, resources=resources)
        with using(settings):
            state = read_state(state_path, settings)
            if state is None:
                return build_code_location(
                    settings=settings,
                    resources=resources,
                    flows_folder="env" if self.import_flows_folder else None,
                )
            store = _store(settings)
            try:
                imported = state.imported.report()
                return compile_published(store, imported, default_catalog(), None, resources, versions=state.versions)
            finally:
                store.engine.dispose()  # read once per load: no idle connection kept (F5, docs/deploy.md)


def take_state(settings: PlatformSettings, import_flows_folder: bool = True) -> FlowStoreState:
    """The store's published versions now (after importing the flows folder, as a load does)."""
    from dp_assets.location import import_flows_folder as import_folder
    from dp_assets.location import published_versions

    store = _store(settings)
    try:
        folder = settings.flows_folder() if import_flows_folder else None
        imported = import_folder(store, folder, default_catalog())
        versions = published_versions(store)
    finally:
        store.engine.dispose()
    report = ImportedFolder(
        problems=imported.problems,
        conflicts=imported.conflicts,
        sources=imported.sources,
        gone=imported.gone,
        newly_gone=sorted(imported.newly_gone),
        unchanged=imported.unchanged,
    )
    return FlowStoreState(format=STATE_FORMAT, store=_store_fingerprint(settings), versions=versions, imported=report)


def read_state(state_path: Path | None, settings: PlatformSettings) -> FlowStoreState | None:
    """The state at ``state_path``, or None when there is none, it is not a state of this layout,
    or it was taken from another store (a state file left by another DP_HOME or DP_STORE_URL)."""
    if state_path is None or not state_path.is_file():
        return None
    try:
        state = FlowStoreState.model_validate_json(state_path.read_bytes())
    except (OSError, ValidationError) as exc:
        log.warning("flow store state %s is not one this platform reads (%s); reading the store now", state_path, exc)
        return None
    if state.store != _store_fingerprint(settings):
        log.warning("flow store state %s was taken from another store; reading this one as it is now", state_path)
        return None
    return state


def _store(settings: PlatformSettings) -> FlowStore:
    return FlowStore(settings.store_url())


def _store_fingerprint(settings: PlatformSettings) -> str:
    """Which store a state came from, without writing its URL (it may hold a password) to disk."""
    return hashlib.sha256(settings.store_url().encode()).hexdigest()[:16]
