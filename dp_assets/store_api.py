"""The one Python API to the flow store: ``dp``, the designer and other tools go through it.

Every rule about what a client may do to a stored flow lives here or below it (the store keeps
versions and pointers; ``dp_resources.store.file_sync`` decides what a spec file may publish):

- a spec is validated — and compiled, to prove Dagster takes it — before it is stored;
- versions are immutable and named by the hash of the spec; publishing moves a pointer;
- ``unpublish`` keeps the flow stored but not compiled; ``delete`` retires it from the code
  location, keeping its versions, runs and kept outputs; ``restore`` (or an explicit publish)
  brings it back;
- what was imported from which spec file, and file changes the store did not take, are part of
  every listing;
- the API acts for one caller (``actor``, the local admin unless told otherwise): it reads only
  the flows the caller may view, changes only those it may edit, and records every publish,
  delete, restore and unpublish in the audit trail (``dp_auth``, docs/security.md "Roles").
"""

from __future__ import annotations

import builtins
import copy
import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import Catalog
from dp_assets.publishing import publish_spec
from dp_assets.spec.loading import read_spec_file
from dp_assets.spec.validation import ValidatedFlow, validate_spec
from dp_auth.access import AccessStore
from dp_auth.permissions import LOCAL_ADMIN, Action, Forbidden, Grant, Principal, allows, require
from dp_resources.store import FlowInfo, FlowNotFound, FlowStore, SaveResult, VersionInfo, drafts
from dp_resources.store.drafts import Draft
from dp_resources.store.file_sync import UNPUBLISHED, FileRecord, file_records
from dp_settings import load

__all__ = [
    "LAYOUT_KEY",
    "Draft",
    "FlowListing",
    "FlowNotFound",
    "FlowStoreAPI",
    "Forbidden",
    "PublishResult",
    "join_layout",
    "split_layout",
]

#: The section of a designer document that holds node positions: stored beside the spec, never
#: part of it, so moving a node does not change the version.
LAYOUT_KEY = "layout"


def split_layout(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(spec, layout)`` of a document; a layout that is not a mapping is left in the spec for
    validation to report."""
    layout = data.get(LAYOUT_KEY)
    if not isinstance(layout, Mapping):
        return dict(data), {}
    return {k: v for k, v in data.items() if k != LAYOUT_KEY}, dict(layout)


def join_layout(spec: Mapping[str, Any], layout: Mapping[str, Any] | None) -> dict[str, Any]:
    """The designer document of a spec and its node positions: ``split_layout`` undone."""
    return {**spec, LAYOUT_KEY: dict(layout or {})}


@dataclass(frozen=True)
class PublishResult:
    flow_id: str
    version: str
    created: bool  # a new version was stored
    published: bool  # the published pointer moved to it
    restored: bool = False  # the flow had been deleted and is back


@dataclass(frozen=True)
class FlowListing:
    info: FlowInfo
    source: str | None  # the spec file the flow was imported from, if any
    source_removed: bool
    conflict: str | None  # a file change the store did not take, naming both versions

    @property
    def id(self) -> str:
        return self.info.id


@dataclass
class _AccessReads:
    """What one request has read of the access tables: the actor's grants and the workspaces of
    the flows it viewed. A listing checks every flow it shows several times (view, history,
    spec); with these it reads the grants once, not once per check, and no flow's workspace."""

    held: list[Grant] | None = None
    workspaces: dict[str, str] = field(default_factory=dict)
    every_flow: bool = False  # a listing filled workspaces with every stored flow: one it lacks is not stored

    def forget_workspaces(self) -> None:
        self.workspaces, self.every_flow = {}, False


class FlowStoreAPI:
    def __init__(self, store: FlowStore | None = None, catalog: Catalog | None = None, actor: Principal = LOCAL_ADMIN):
        self.store = store or FlowStore(load().store_url())
        self.catalog = catalog or default_catalog()
        self.store.upgrade()
        self.access = AccessStore(self.store)
        self.actor = actor
        self._reads: _AccessReads | None = None  # only on a copy for one request (acting_as)

    def acting_as(self, actor: Principal) -> FlowStoreAPI:
        """The same API (store, catalog) acting for ``actor``: one per request (or command),
        which reads the actor's grants once."""
        bound = copy.copy(self)
        bound.actor = actor
        bound._reads = _AccessReads()
        return bound

    def _held(self) -> list[Grant]:
        if self._reads is None:
            return self.access.grants(self.actor)
        if self._reads.held is None:
            self._reads.held = self.access.grants(self.actor)
        return self._reads.held

    def _workspace_of(self, flow_id: str, *, fresh: bool = False) -> str | None:
        """The stored flow's workspace. ``fresh`` (before a change): read from the store, and
        forget what this request read, which the change may end (a new flow is stored next)."""
        reads = self._reads
        if reads is not None and fresh:
            reads.forget_workspaces()
        elif reads is not None and (flow_id in reads.workspaces or reads.every_flow):
            return reads.workspaces.get(flow_id)
        found = self.access.workspace_of(flow_id)
        if reads is not None and not fresh and found is not None:
            reads.workspaces[flow_id] = found
        return found

    def _check(self, action: Action, flow_id: str, new_in: str = "default") -> str:
        """Refuse (:class:`Forbidden`) unless the actor may; the flow's workspace."""
        workspace = self._workspace_of(flow_id, fresh=action is not Action.view) or new_in
        if not self.actor.local_admin:
            require(self.actor, self._held(), action, workspace, flow_id)
        return workspace

    def _audit(self, action: str, flow_id: str, workspace: str, **detail: Any) -> None:
        self.access.record(self.actor, action, workspace=workspace, flow_id=flow_id, detail=detail)

    def may(self, action: Action, flow_id: str) -> bool:
        try:
            self._check(action, flow_id)
        except Forbidden:
            return False
        return True

    # --- writing -----------------------------------------------------------------------------

    def validate(self, spec: Mapping[str, Any]) -> ValidatedFlow:
        return validate_spec(spec, self.catalog)

    def publish(
        self,
        spec: Mapping[str, Any] | str | Path,
        *,
        message: str = "",
        workspace: str = "default",
        author: str | None = None,
    ) -> PublishResult:
        """Validate, store as a version and publish a spec (a mapping or a spec file). Publishing
        a deleted flow brings it back: a publish says the flow should run. A ``layout`` section
        (node positions) is stored beside the version, not in it."""
        data, layout = split_layout(read_spec_file(spec) if isinstance(spec, str | Path) else spec)
        workspace = self._check(Action.edit, self._flow_id_of(data), workspace)
        if author is None and not self.actor.local_admin:
            author = self.actor.label  # who stored it, when the caller names no one
        _, saved = publish_spec(
            self.store, data, self.catalog, workspace=workspace, message=message, author=author, layout=layout
        )
        if saved.created or saved.published:
            self._audit("publish", saved.flow_id, workspace, version=saved.version, published=saved.published)
        return self._published(saved)

    @staticmethod
    def _flow_id_of(data: Mapping[str, Any]) -> str:
        # Checked before validation, which names a missing or odd id itself: such a spec is refused
        # there, so the check needs only a string to look the flow up by.
        flow_id = data.get("id")
        return flow_id if isinstance(flow_id, str) else ""

    def save_draft(self, spec: Mapping[str, Any], *, message: str = "", workspace: str = "default") -> SaveResult:
        """Store a validated version without publishing it (what runs does not change)."""
        workspace = self._check(Action.edit, self._flow_id_of(spec), workspace)
        return publish_spec(self.store, spec, self.catalog, workspace=workspace, message=message, publish=False)[1]

    def publish_version(self, flow_id: str, version: str | None = None) -> PublishResult:
        """Publish a stored version (a prefix will do; the newest when none is named)."""
        workspace = self._check(Action.edit, flow_id)
        wanted = version or self.store.history(flow_id)[-1].version
        before = self.store.info(flow_id).published_version
        found = self.store.publish(flow_id, wanted)
        if found != before:
            self._audit("publish", flow_id, workspace, version=found, published=True)
        return self._published(SaveResult(flow_id, found, created=False, published=found != before))

    def _published(self, saved: SaveResult) -> PublishResult:
        # Only a deleted flow needs the write that brings it back.
        restored = self.store.info(saved.flow_id).state == "deleted" and self.store.restore(saved.flow_id)
        return PublishResult(saved.flow_id, saved.version, saved.created, saved.published, restored)

    def unpublish(self, flow_id: str) -> bool:
        return self._change("unpublish", flow_id, self.store.unpublish)

    def delete(self, flow_id: str) -> bool:
        return self._change("delete", flow_id, self.store.delete)

    def restore(self, flow_id: str) -> bool:
        return self._change("restore", flow_id, self.store.restore)

    def _change(self, action: str, flow_id: str, change: Callable[[str], bool]) -> bool:
        workspace = self._check(Action.edit, flow_id)
        changed = change(flow_id)
        if changed:
            self._audit(action, flow_id, workspace)
        return changed

    # --- drafts: the designer's work in progress, never compiled ------------------------------

    def put_draft(
        self, flow_id: str, document: Mapping[str, Any], *, base_version: str | None = None, author: str | None = None
    ) -> Draft:
        """Save the flow's draft (valid or not); its ``layout`` section is kept apart."""
        self._check(Action.edit, flow_id)
        spec, layout = split_layout(document)
        return drafts.put_draft(self.store, flow_id, spec, layout=layout, base_version=base_version, author=author)

    def draft(self, flow_id: str) -> Draft | None:
        self._check(Action.view, flow_id)
        return drafts.get_draft(self.store, flow_id)

    def discard_draft(self, flow_id: str) -> bool:
        self._check(Action.edit, flow_id)
        return drafts.discard_draft(self.store, flow_id)

    def draft_flow_ids(self) -> dict[str, Any]:
        return drafts.draft_flow_ids(self.store)

    def restore_as_draft(self, flow_id: str, version: str, *, author: str | None = None) -> Draft:
        """An old version (with its node positions) becomes the flow's draft; nothing is published."""
        found, document = self.document(flow_id, version)
        return self.put_draft(flow_id, document, base_version=found, author=author)

    def document(self, flow_id: str, version: str | None = None) -> tuple[str, dict[str, Any]]:
        """``(version, spec with its layout section)``: a stored version as the designer opens it."""
        self._check(Action.view, flow_id)
        found, spec = self.store.get(flow_id, version)
        return found, join_layout(spec, self.store.layout(flow_id, found))

    # --- reading -----------------------------------------------------------------------------

    def list(self) -> list[FlowListing]:
        """Every flow the actor may view."""
        by_flow: dict[str, list[FileRecord]] = {}
        for file in file_records(self.store).values():
            by_flow.setdefault(file.flow_id, []).append(file)
        listings = []
        for info in self._viewable(self.store.list_flows()):
            records = sorted(by_flow.get(info.id, []), key=lambda r: (r.missing_since is not None, r.path))
            record = records[0] if records else None
            conflict = None
            if record is not None and record.conflict_with is not None:
                kept = "unpublished" if record.conflict_with == UNPUBLISHED else f"version {record.conflict_with}"
                conflict = (
                    f"{record.path} holds version {record.version}, not published: the store kept "
                    f"{kept} (published since the file was last imported)"
                )
            listings.append(
                FlowListing(info, record.path if record else None, bool(record and record.missing_since), conflict)
            )
        return listings

    def _viewable(self, infos: builtins.list[FlowInfo]) -> builtins.list[FlowInfo]:
        """The flows of ``infos`` (every stored flow) that the actor may view."""
        if self._reads is not None:
            self._reads.workspaces.update((info.id, info.workspace) for info in infos)
            self._reads.every_flow = True
        if self.actor.local_admin:
            return infos
        held = self._held()
        return [info for info in infos if allows(self.actor, held, Action.view, info.workspace, info.id)]

    def info(self, flow_id: str) -> FlowInfo:
        self._check(Action.view, flow_id)
        return self.store.info(flow_id)

    def get(self, flow_id: str, version: str | None = None) -> tuple[str, dict[str, Any]]:
        self._check(Action.view, flow_id)
        return self.store.get(flow_id, version)

    def history(self, flow_id: str) -> builtins.list[VersionInfo]:  # `list` here is the method above
        self._check(Action.view, flow_id)
        return self.store.history(flow_id)

    def spec_text(self, flow_id: str, version: str | None = None, fmt: str = "yaml") -> tuple[str, str]:
        self._check(Action.view, flow_id)
        found, spec = self.store.get(flow_id, version)
        text = (
            json.dumps(spec, indent=2, sort_keys=True) + "\n"
            if fmt == "json"
            else yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
        )
        return found, text

    def diff(self, flow_id: str, v1: str, v2: str) -> str:
        """A unified diff of two stored versions' specs, as YAML."""
        a_version, a = self.spec_text(flow_id, v1)
        b_version, b = self.spec_text(flow_id, v2)
        return "".join(
            difflib.unified_diff(
                a.splitlines(keepends=True),
                b.splitlines(keepends=True),
                fromfile=f"{flow_id}@{a_version}",
                tofile=f"{flow_id}@{b_version}",
            )
        )
