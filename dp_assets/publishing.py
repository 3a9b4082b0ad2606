"""Validate-then-store: the only way specs enter the flow store.

Used by ``dp publish`` (through ``dp_assets.store_api``) and by the code location when it
imports ``DP_FLOWS_DIR``; a bad spec is reported with every error and never stored, and it never
stops the other files. Which file may publish what is decided by ``dp_resources.store.file_sync``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dp_assets.catalog.base import Catalog
from dp_assets.spec.loading import SPEC_SUFFIXES, SpecLoadError, parse_spec_text, read_spec_text
from dp_assets.spec.validation import FlowValidationError, ValidatedFlow, validate_spec
from dp_resources.store import FlowStore, SaveResult
from dp_resources.store.file_sync import (
    UNPUBLISHED,
    FileChange,
    FileRecord,
    Outcome,
    apply_change,
    file_records,
    mark_missing,
    revisit,
)

log = logging.getLogger("dp.publishing")


@dataclass
class ImportReport:
    """What an import of a folder did: see ``dp_resources.store.file_sync`` for the rules."""

    published: list[SaveResult] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # file -> error text
    conflicts: dict[str, str] = field(default_factory=dict)  # flow -> what to do
    sources: dict[str, str] = field(default_factory=dict)  # flow -> the file it comes from
    gone: dict[str, str] = field(default_factory=dict)  # flow -> its removed file
    newly_gone: set[str] = field(default_factory=set)  # flows whose file went since the last load
    unchanged: int = 0  # files not read again: size and modification time as recorded


def publish_spec(
    store: FlowStore,
    data: Mapping[str, Any],
    catalog: Catalog,
    *,
    workspace: str = "default",
    message: str = "",
    publish: bool = True,
    check_compiles: bool = True,
    author: str | None = None,
    layout: Mapping[str, Any] | None = None,
) -> tuple[ValidatedFlow, SaveResult]:
    validated = validate_spec(data, catalog, check_compiles=check_compiles)
    result = store.save(
        validated.id,
        validated.version,
        validated.raw,
        workspace=workspace,
        message=message,
        publish=publish,
        author=author,
        layout=layout,
    )
    return validated, result


# Folders beside specs that hold sample data, flow tests or fixtures, not specs.
NOT_SPEC_FOLDERS = frozenset({"data", "tests", "fixtures", "golden"})


def spec_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in SPEC_SUFFIXES
        and p.is_file()
        and not p.name.startswith(".")
        and not NOT_SPEC_FOLDERS & set(p.relative_to(folder).parts[:-1])
    )


def import_folder(store: FlowStore, folder: Path, catalog: Catalog) -> ImportReport:
    """Import the spec files of a folder that changed since they were last imported; report
    the others, the conflicts with versions published since, and the files that are gone.

    A file is read only when its size or modification time differs from the record, parsed
    only when its content hash differs, and never replaces a version published since it was
    last applied (``dp_resources.store.file_sync``)."""
    report = ImportReport()
    records = file_records(store)
    root = folder.resolve()
    seen: set[str] = set()
    for path in spec_files(folder):
        key = str(path.resolve())
        seen.add(key)
        try:
            _import_file(store, path, key, records.get(key), catalog, report)
        except (SpecLoadError, FlowValidationError) as exc:
            report.problems[str(path)] = str(exc)
            log.error("flow spec %s was not published:\n%s", path, exc)
        except Exception as exc:  # one file must never stop the others importing
            report.problems[str(path)] = f"not published: {type(exc).__name__}: {exc}"
            log.exception("flow spec %s was not published", path)
    gone = [key for key in records if key not in seen and Path(key).is_relative_to(root)]
    newly = set(mark_missing(store, gone))
    for key in gone:
        flow_id = records[key].flow_id
        report.gone[flow_id] = key
        if key in newly:
            report.newly_gone.add(flow_id)
            log.warning(
                "spec file %s of flow '%s' was removed; the flow stays in the store (`dp delete %s` retires it)",
                key,
                flow_id,
                flow_id,
            )
    return report


def _import_file(
    store: FlowStore,
    path: Path,
    key: str,
    record: FileRecord | None,
    catalog: Catalog,
    report: ImportReport,
) -> None:
    stat = path.stat()
    if (
        record is not None
        and record.conflict_with is None
        and record.missing_since is None
        and record.same_stat(stat.st_size, stat.st_mtime_ns)
    ):
        report.unchanged += 1
        report.sources[record.flow_id] = key
        return
    text = read_spec_text(path)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if record is not None and record.content_hash == digest:
        record = revisit(store, record, stat.st_size, stat.st_mtime_ns)
        report.sources[record.flow_id] = key
        if record.conflict_with is not None:
            _conflict(report, path, record.flow_id, record.version, record.conflict_with)
        return
    # The code location compiles every published flow right after this import and reports
    # the ones that fail, so compiling each file here too would be twice the work.
    validated = validate_spec(parse_spec_text(text, source=str(path)), catalog, check_compiles=False)
    result = apply_change(
        store,
        FileChange(
            path=key,
            content_hash=digest,
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            flow_id=validated.id,
            version=validated.version,
            spec=validated.raw,
            message=f"imported from {path.name}",
        ),
    )
    report.sources[validated.id] = key
    if result.outcome is Outcome.PUBLISHED:
        report.published.append(SaveResult(validated.id, validated.version, created=True, published=True))
        log.info("flow '%s' version %s published from %s", validated.id, validated.version, path)
    elif result.outcome is Outcome.CONFLICT:
        _conflict(report, path, validated.id, validated.version, result.published_version or UNPUBLISHED)
    elif result.outcome is Outcome.FLOW_DELETED:
        report.conflicts[validated.id] = (
            f"{path} changed (version {validated.version}, stored unpublished), but flow "
            f"'{validated.id}' was deleted: `dp restore {validated.id}` brings it back, then "
            f"`dp publish {path}` publishes the file's version"
        )
        log.warning("flow '%s': %s", validated.id, report.conflicts[validated.id])


def _conflict(report: ImportReport, path: Path, flow_id: str, file_version: str, published: str) -> None:
    if published == UNPUBLISHED:
        since = "the flow was unpublished since the file was last imported; it stays unpublished"
    else:
        since = (
            f"version {published} was published since the file was last imported (by "
            f"`dp publish` or another client); {published} stays published"
        )
    report.conflicts[flow_id] = (
        f"{path} changed (version {file_version}) but {since}. To publish the file's version: "
        f"`dp publish {path}`; to make the file the published spec: `dp show {flow_id} > {path}`"
    )
    log.warning("flow '%s': %s", flow_id, report.conflicts[flow_id])
