"""RunScopedIOManager: every output of every run kept under its run id, read back across runs.

Dagster's stock filesystem IO manager keeps one file per asset and overwrites it on each
materialisation, in place. Here each run writes under its own folder,
``{base}/{run_id}/{flow_id}/{node_id}[/{partition}]{suffix}``, atomically, and records the path
in the materialisation metadata. A reader then finds its upstream value in this order:

1. the upstream ran in this run's plan, or in the parent run of a re-execution (Dagster tells us
   which run produced it): that run's folder, so two concurrent runs never read each other;
2. otherwise (the upstream was not selected): the ``path`` of the asset's latest
   materialisation in the event log.

Shaped like Dagster's ``UPathIOManager``: path policy in small methods (``key_path``,
``output_stem``), serialisation in ``dump``/``load`` hooks, formats in :mod:`dp_io.formats`.
What a flow's step asks of it beyond Dagster's interface is :class:`dp_io.contract.RunOutputStore`.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from dp_instance.run_internals import RUN_ID_PLACEHOLDER
from dp_io.contract import partition_name
from dp_io.errors import OutputNotFoundError
from dp_io.formats import (
    DEFAULT_FRAME_FORMAT,
    FORMAT_METADATA_KEY,
    FRAME_FORMATS,
    Encoded,
    check_format,
    decode,
    encode,
)
from dp_io.layout import StoredOutput
from dp_io.lookup import MaterializationRef, find_materialization, load_latest_output, require_path
from dp_io.metadata import output_metadata
from dp_io.parts import read_part, read_parts, write_parts
from dp_io.store import OutputStore
from dp_io.write_behind import WriteBehind

if TYPE_CHECKING:
    from dp_io.contract import RunOutputStore

# Input metadata key: read a streamed upstream part by part (an iterator) instead of as one value.
PARTS_METADATA_KEY = "dp/parts"


class RunScopedIOManager(dg.ConfigurableIOManager):
    """Keeps every output per run (Arrow/Parquet for DataFrames, JSON or pickle otherwise)."""

    base_url: str | None = Field(
        default=None,
        description=(
            "Folder or fsspec URL (file://, memory://, s3://...) under which runs are stored. "
            "Default: DP_OUTPUTS_URL, else DP_HOME/outputs (read when used, not at import)."
        ),
    )
    default_format: str = Field(
        default=DEFAULT_FRAME_FORMAT,
        description=(
            "Format of DataFrame outputs unless the output's metadata sets 'dp/format': "
            "'arrow' (Arrow IPC, uncompressed), 'arrow-lz4', 'parquet' or 'pickle'."
        ),
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options (credentials via EnvVar), e.g. for s3fs.",
    )
    fsync: bool = Field(
        default=False,
        description="fsync each file and its folder before it becomes visible (power-loss safety).",
    )
    stale_after_seconds: float = Field(
        default=3600.0,
        description="Temporary files of writers on other hosts older than this are removed.",
    )
    direct_writes: bool = Field(
        default=True,
        description=(
            "Write a frame that no other step of the run reads past the page cache (O_DIRECT, "
            "local filesystems that allow it): the run does not fill memory with pages nobody "
            "reads now (docs/io.md)."
        ),
    )
    # Writes a step started behind its computation (dp_io.write_behind), per instance: Dagster
    # hands this same instance to the step and to handle_output, and tears it down after.
    _writes: WriteBehind = PrivateAttr(default_factory=WriteBehind)

    # ---- path policy -------------------------------------------------------------------------

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url
        from dp_settings import current  # an IO manager: Dagster calls it with no settings of ours

        return current().outputs_base()

    def store(self) -> OutputStore:
        return OutputStore(
            self.resolved_base_url(),
            self.storage_options,
            fsync=self.fsync,
            stale_after_seconds=self.stale_after_seconds,
        )

    def key_path(self, context: dg.InputContext | dg.OutputContext) -> tuple[str, ...]:
        """``(flow_id, node_id)`` for a flow asset; ``(step_key, output)`` for an op output (an
        op's input reads the path of the output that feeds it)."""
        if context.has_asset_key:
            return tuple(context.asset_key.path)
        if isinstance(context, dg.InputContext):
            if context.upstream_output is None:
                raise OutputNotFoundError(f"{_input_label(context)}: no output feeds it")
            output = context.upstream_output
        else:
            output = context
        path = (output.step_key, output.name)
        mapping_key = getattr(output, "mapping_key", None)
        return path + ((mapping_key,) if mapping_key else ())

    def output_partition(self, context: dg.OutputContext) -> str | None:
        if not (context.has_asset_key and context.has_asset_partitions):
            return None
        # A run over a range (a single-run backfill) stores one value for the whole range under
        # "first...last" (Dagster's range notation); each partition's materialisation records it.
        keys = context.asset_partition_key_range
        return partition_name(str(keys.start), str(keys.end))

    def output_stem(self, store: OutputStore, run_id: str, key_path: tuple[str, ...], partition: str | None) -> str:
        return store.output_stem(run_id, key_path, partition)

    def frame_format(self, context: dg.OutputContext) -> str:
        value = (context.definition_metadata or {}).get(FORMAT_METADATA_KEY)
        chosen = str(value) if value else self.default_format
        try:
            return check_format(chosen)
        except ValueError as exc:
            where = ".".join(self.key_path(context))
            raise dg.DagsterInvalidDefinitionError(f"{where}: {exc}") from exc

    # ---- dump/load hooks ---------------------------------------------------------------------

    def dump(self, store: OutputStore, stem: str, obj: Any, frame_format: str) -> dict[str, Any]:
        """Write one value or a stream; returns what the metadata needs."""
        from dp_io.formats import is_stream

        if is_stream(obj):
            result = write_parts(store, stem, obj, frame_format)
            return {
                "path": result.path,
                "bytes": result.bytes,
                "format": "+".join(sorted(result.formats)) or frame_format,
                "rows": result.rows,
                "columns": result.columns,
                "parts": result.parts,
                "note": "; ".join(result.notes) or None,
            }
        return self.store_encoded(store, stem, encode(obj, frame_format))

    def store_encoded(self, store: OutputStore, stem: str, encoded: Encoded) -> dict[str, Any]:
        path = stem + encoded.suffix
        store.atomic_write(path, encoded.write)
        return {
            "path": path,
            "bytes": store.size(path),
            "format": encoded.format,
            "rows": encoded.rows,
            "columns": encoded.columns,
            "parts": None,
            "note": encoded.note,
        }

    def load(self, store: OutputStore, stored: StoredOutput, *, parts: bool = False) -> Any:
        if stored.is_parts:
            return read_parts(store, stored.path, lazy=parts)
        value = decode(store.source(stored.path), stored.suffix)
        return iter([value]) if parts else value

    # ---- Dagster entry points ----------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        store = self.store()
        stem = self.output_stem(store, context.run_id, self.key_path(context), self.output_partition(context))
        frame_format = self.frame_format(context)
        queued = self._writes.take((context.run_id, stem, frame_format))
        # A write the step queued when it computed the value (dp_io.write_behind): wait for it.
        info = queued.result() if queued is not None else self.dump(store, stem, obj, frame_format)
        info["path"] = store.to_url(info["path"])
        context.add_output_metadata(output_metadata(**info))

    def write_behind(
        self,
        run_id: str,
        key_path: tuple[str, ...],
        partition: str | None,
        obj: Any,
        frame_format: str | None = None,
        *,
        read_soon: bool = True,
    ) -> Future[Any] | None:
        """Start storing ``obj`` on the background writer; ``handle_output`` of the same run,
        key and partition waits for it. The format is the one ``handle_output`` will choose.
        ``read_soon=False`` (no other step of the run reads it) lets it bypass the page cache.
        Returns the write (a future; done once stored), or ``None`` when nothing was queued."""
        try:
            chosen = check_format(frame_format or self.default_format)
        except ValueError:
            return None  # handle_output reports the bad format, synchronously
        store = self.store()
        stem = self.output_stem(store, run_id, key_path, partition)
        # Encoded here, on the caller's thread: an Arrow table is immutable, so the writer
        # thread never reads the DataFrame while the step goes on using it. A frame that is
        # pickled (no Arrow) is written here as well.
        encoded = encode(obj, chosen)
        encoded.direct = self.direct_writes and not read_soon
        key = (run_id, stem, chosen)
        if encoded.format in FRAME_FORMATS:
            return self._writes.submit(key, lambda: self.store_encoded(store, stem, encoded))
        return self._writes.submit_done(key, self.store_encoded(store, stem, encoded))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """The run (or step) is over: stop the background writer."""
        untaken = self._writes.close()
        if untaken and context.log is not None:  # its materialisation was never logged
            context.log.warning(f"{untaken} output write(s) were never reported")

    def load_input(self, context: dg.InputContext) -> Any:
        parts = bool((context.definition_metadata or {}).get(PARTS_METADATA_KEY))
        if context.has_asset_key and context.has_asset_partitions:
            keys = [str(k) for k in context.asset_partition_keys]
            if not keys:  # as Dagster's UPathIOManager: an input mapped to no partition
                return None
            values = {k: self._load_one(context, k, parts) for k in keys}
            return values[keys[0]] if len(keys) == 1 else values
        return self._load_one(context, None, parts)

    def _load_one(self, context: dg.InputContext, partition: str | None, parts: bool) -> Any:
        run_id = self._producing_run_id(context, partition)
        if run_id is not None:
            store = self.store()
            stored = self._run_output(store, run_id, self.key_path(context), partition)
            self._note_source(context, run_id, store.to_url(stored.path))
            return self.load(store, stored, parts=parts)
        if not context.has_asset_key:
            raise OutputNotFoundError(f"{_input_label(context)}: no run produced it and it is not an asset")
        ref = find_materialization(context.instance, context.asset_key, partition_key=partition)
        if ref is None:
            where = f" partition {partition!r}" if partition is not None else ""
            raise OutputNotFoundError(
                f"{_input_label(context)} reads asset {context.asset_key.to_user_string()}{where}, "
                "which has never been materialised: materialise it first"
            )
        self._note_source(context, ref.run_id, ref.path)
        return self.load_ref(ref, parts=parts)

    def load_run_output(
        self,
        run_id: str,
        key_path: tuple[str, ...],
        partition: str | None = None,
        *,
        parts: bool = False,
    ) -> Any:
        """What run ``run_id`` stored for ``key_path`` (the compiler reads a streamed output back
        this way for the nodes of its own step)."""
        store = self.store()
        return self.load(store, self._run_output(store, run_id, tuple(key_path), partition), parts=parts)

    def _run_output(
        self, store: OutputStore, run_id: str, key_path: tuple[str, ...], partition: str | None
    ) -> StoredOutput:
        stem = self.output_stem(store, run_id, key_path, partition)
        stored = store.find_output(stem)
        if stored is None:
            raise OutputNotFoundError(
                f"{'.'.join(key_path)} was produced by run {run_id} but nothing is stored at "
                f"{store.to_url(stem)}.*; was it pruned, or written with another base_url?"
            )
        return stored

    def _producing_run_id(self, context: dg.InputContext, partition: str | None) -> str | None:
        """The run whose folder holds the upstream value, when Dagster knows it.

        None for an upstream that is not part of this run (not selected): Dagster then hands us
        an artificial upstream context with a placeholder run id.
        """
        upstream = context.upstream_output
        if upstream is None:
            return None
        try:
            run_id = upstream.run_id
        except dg.DagsterInvariantViolationError:
            return None
        if not run_id or run_id == RUN_ID_PLACEHOLDER:
            return None
        if partition is not None:
            try:
                produced = {str(k) for k in upstream.asset_partition_keys}
            except Exception:  # noqa: BLE001 - an upstream without partitions of its own
                produced = set()
            if partition not in produced:
                return None
        return run_id

    def _note_source(self, context: dg.InputContext, run_id: str, path: str | None) -> None:
        context.log.debug(f"{_input_label(context)}: reading run {run_id} output {path}")
        context.add_input_metadata({"dp/source_run_id": run_id, "dp/source_path": path or ""})

    # ---- reading by reference (cross-run, retention, CLI) ------------------------------------

    def load_path(self, url: str, *, parts: bool = False, part: int | None = None) -> Any:
        """Read a stored output given its recorded ``path`` (a path or URL); with ``part``, only
        that part of a streamed output (a single value is its own part 0)."""
        store = self.store_for(url)
        path = store.to_path(url)
        stored = store.classify(path)
        if not store.exists(path):
            raise OutputNotFoundError(f"stored output {url} does not exist (pruned, or on another machine/base)")
        if part is not None and stored.is_parts:
            return read_part(store, path, part)
        if part not in (None, 0):
            raise OutputNotFoundError(f"{url} is one value, not parts: there is no part {part}")
        return self.load(store, stored, parts=parts)

    def load_latest(
        self,
        instance: dg.DagsterInstance,
        asset_key: dg.AssetKey,
        *,
        definition_metadata: Any = None,
        lineage_of: str | None = None,
        partition_key: str | None = None,
        parts: bool = False,
    ) -> Any:
        """The value of the asset's latest materialisation (see :func:`load_latest_output`)."""
        return load_latest_output(
            instance, asset_key, self, partition_key=partition_key, lineage_of=lineage_of, parts=parts
        )

    def load_ref(self, ref: MaterializationRef, *, parts: bool = False) -> Any:
        try:
            return self.load_path(require_path(ref), parts=parts)
        except OutputNotFoundError as exc:
            raise OutputNotFoundError(f"{ref.label}: {exc}") from exc

    def store_for(self, url: str) -> OutputStore:
        """A store on the filesystem of ``url`` (usually the configured base's)."""
        import posixpath

        base = self.store()
        if (base.local and "://" not in url) or url.startswith(base.fs.unstrip_protocol(base.root)):
            return base
        return OutputStore(
            posixpath.dirname(url.rstrip("/")),
            self.storage_options,
            fsync=self.fsync,
            stale_after_seconds=self.stale_after_seconds,
        )


def _input_label(context: dg.InputContext) -> str:
    try:
        return f"input {context.name!r}"
    except dg.DagsterInvariantViolationError:
        return "input"


if TYPE_CHECKING:  # the type checker holds the class to the contract the runtime relies on
    _contract: type[RunOutputStore] = RunScopedIOManager
