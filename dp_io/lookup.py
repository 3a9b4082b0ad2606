"""Finding an asset's stored value through the Dagster event log.

The run-scoped layout means "the value of asset X" is not one fixed path: it is the ``path``
metadata of X's latest materialisation (or, for a re-execution, of the materialisation in the
run's own lineage). These functions are what the IO manager's cross-run reads use, and what the
compiler calls for upstream nodes of a flow that are not selected in the current run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import dagster as dg

from dp_io.errors import NeverMaterializedError, OutputNotFoundError

_MAX_LINEAGE = 1000


@dataclass(frozen=True)
class MaterializationRef:
    """Where one materialisation's value was stored, as recorded in its metadata."""

    asset_key: dg.AssetKey
    run_id: str
    partition: str | None
    path: str | None
    format: str | None
    storage_id: int | None = None

    @property
    def label(self) -> str:
        where = f" partition {self.partition!r}" if self.partition is not None else ""
        return f"asset {self.asset_key.to_user_string()}{where} (run {self.run_id})"


class RefLoader(Protocol):
    """Reads a stored value given where a materialisation recorded it
    (``RunScopedIOManager.load_ref``)."""

    def load_ref(self, ref: MaterializationRef, *, parts: bool = False) -> Any: ...


def ref_from_entry(entry: dg.EventLogEntry, storage_id: int | None = None) -> MaterializationRef:
    materialization = entry.asset_materialization
    if materialization is None:
        raise ValueError(f"event {storage_id} of run {entry.run_id} is not a materialisation")
    metadata = materialization.metadata
    path = metadata.get("path")
    fmt = metadata.get("format")
    return MaterializationRef(
        asset_key=materialization.asset_key,
        run_id=entry.run_id,
        partition=materialization.partition,
        path=str(path.value) if path is not None else None,
        format=str(fmt.value) if fmt is not None else None,
        storage_id=storage_id,
    )


def run_lineage(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """``run_id`` followed by its parent, grandparent, ... (re-executions point at parents)."""
    lineage: list[str] = []
    current: str | None = run_id
    while current and current not in lineage and len(lineage) < _MAX_LINEAGE:
        lineage.append(current)
        run = instance.get_run_by_id(current)
        current = run.parent_run_id if run is not None else None
    return lineage


def materializations_in_run(instance: dg.DagsterInstance, run_id: str) -> list[MaterializationRef]:
    """Every materialisation a run recorded, oldest first."""
    connection = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return [ref_from_entry(r.event_log_entry, r.storage_id) for r in connection.records]


def latest_materialization(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str | None = None
) -> MaterializationRef | None:
    if partition_key is None:
        entry = instance.get_latest_materialization_event(asset_key)
        return ref_from_entry(entry) if entry is not None else None
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
    )
    if not result.records:
        return None
    record = result.records[0]
    return ref_from_entry(record.event_log_entry, record.storage_id)


def still_latest_in(
    instance: dg.DagsterInstance,
    run_id: str,
    cache: dict[tuple[dg.AssetKey, str | None], MaterializationRef | None],
) -> list[MaterializationRef]:
    """The materialisations of ``run_id`` that are still their asset's latest (per partition).
    ``cache`` keeps each asset's latest across calls (retention asks for many old runs)."""
    found = []
    for ref in materializations_in_run(instance, run_id):
        key = (ref.asset_key, ref.partition)
        if key not in cache:
            cache[key] = latest_materialization(instance, ref.asset_key, ref.partition)
        latest = cache[key]
        if latest is not None and latest.run_id == run_id:
            found.append(ref)
    return found


def find_materialization(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    *,
    partition_key: str | None = None,
    lineage_of: str | None = None,
) -> MaterializationRef | None:
    """The materialisation whose value a reader should get.

    With ``lineage_of`` (a run id), a materialisation made by that run or one of its ancestors
    wins, newest ancestor first: a re-execution reads what its parent produced even if another
    run materialised the asset since. Otherwise, or when the lineage has none, the latest.
    """
    if lineage_of is not None:
        for run_id in run_lineage(instance, lineage_of):
            matches = [
                ref
                for ref in materializations_in_run(instance, run_id)
                if ref.asset_key == asset_key and ref.partition == partition_key
            ]
            if matches:
                return matches[-1]
    return latest_materialization(instance, asset_key, partition_key)


def require_path(ref: MaterializationRef) -> str:
    if not ref.path:
        raise OutputNotFoundError(
            f"{ref.label} recorded no 'path' metadata, so its value was not stored by "
            "RunScopedIOManager; check the io_manager_key of the asset that produced it"
        )
    return ref.path


def load_latest_output(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    io_manager: RefLoader,
    *,
    partition_key: str | None = None,
    lineage_of: str | None = None,
    parts: bool = False,
) -> Any:
    """The value of ``asset_key``'s latest materialisation, read through ``io_manager``.

    For the compiler: upstream nodes that are not selected in a run are read with this.
    ``lineage_of=context.run_id`` prefers the run's own re-execution lineage (see
    :func:`find_materialization`); ``parts=True`` returns a streamed output as an iterator of
    its parts. Raises :class:`NeverMaterializedError` when there is nothing to read.
    """
    ref = find_materialization(instance, asset_key, partition_key=partition_key, lineage_of=lineage_of)
    if ref is None:
        where = f" (partition {partition_key!r})" if partition_key is not None else ""
        raise NeverMaterializedError(
            f"asset {asset_key.to_user_string()}{where} has never been materialised, so there "
            "is no stored value to read: materialise it first (select it in the Dagster UI and "
            "click Materialize, or run its flow)"
        )
    return io_manager.load_ref(ref, parts=parts)


def reusable_parent_outputs(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    asset_keys: Iterable[dg.AssetKey],
    *,
    partition_key: str | None = None,
) -> Mapping[dg.AssetKey, MaterializationRef]:
    """For a re-execution from failure: the outputs its ancestors already stored, by asset.

    A flow is one step, so Dagster re-runs the whole step after a failure; the compiler skips
    the nodes listed here and reads their values with ``io_manager.load_ref``. Empty unless the
    run is a resume retry (``dagster/is_resume_retry``, set by "Re-execute from failure" and by
    run retries with the FROM_FAILURE strategy).
    """
    if not run.is_resume_retry or run.parent_run_id is None:
        return {}
    wanted = set(asset_keys)
    found: dict[dg.AssetKey, MaterializationRef] = {}
    for run_id in run_lineage(instance, run.parent_run_id):
        for ref in reversed(materializations_in_run(instance, run_id)):
            if ref.asset_key in wanted and ref.asset_key not in found and ref.partition == partition_key and ref.path:
                found[ref.asset_key] = ref
        if len(found) == len(wanted):
            break
    return found
