"""The file-sync rules (``dp_resources.store.file_sync``, through ``publishing.import_folder`` as the
code location runs them) as a state machine against a simple model: a spec file is edited or
removed, the same flow is published, unpublished, deleted and restored through the store API, and
the folder is imported again (a code-location load). After every import:

- a publish is never undone by an unchanged file: the published version is what it was;
- a changed file whose flow nobody published since the file was last applied is published;
- a changed file AND a different version published since: the published one is kept, and the
  conflict is reported naming both versions (a deleted flow stays deleted, reported too).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from dp_assets.catalog import default_catalog
from dp_assets.publishing import import_folder
from dp_assets.spec.validation import validate_spec
from dp_assets.store_api import FlowStoreAPI
from dp_resources.store import FlowStore
from tests.fuzzing import fuzz_settings

CATALOG = default_catalog()
FLOW = "synced"
ROWS = st.integers(0, 3)  # few contents, so that a file often returns to an earlier version


def _spec(n: int) -> dict:
    return {"id": FLOW, "nodes": [{"id": "a", "type": "StaticData", "params": {"rows": [{"x": n}]}}]}


def _version(n: int) -> str:
    return validate_spec(_spec(n), CATALOG, check_compiles=False).version


class FileSyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="dp-file-sync-"))
        self.folder = self.tmp / "flows"
        self.folder.mkdir()
        self.file = self.folder / "synced.json"
        self.store = FlowStore(f"sqlite:///{self.tmp / 'store.db'}")
        self.store.upgrade()
        self.api = FlowStoreAPI(self.store, CATALOG)
        self.clock = 1_700_000_000_000_000_000
        self.on_disk: int | None = None  # the file's content (None: no file)
        self.imported: int | None = None  # the content last imported
        self.base: str | None = None  # the version the file last left published (file_sync's base_version)
        self.deleted = False

    def teardown(self) -> None:
        self.store.engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _published(self) -> str | None:
        return {f.id: f.published_version for f in self.store.list_flows()}.get(FLOW)

    @rule(n=ROWS)
    def edit_file(self, n: int) -> None:
        self.file.write_text(json.dumps(_spec(n)))
        self.clock += 1_000_000_000  # a new modification time, as an editor's save gives
        os.utime(self.file, ns=(self.clock, self.clock))
        self.on_disk = n

    @precondition(lambda self: self.on_disk is not None)
    @rule()
    def remove_file(self) -> None:
        self.file.unlink()
        self.on_disk = None

    @rule(n=ROWS)
    def publish_through_the_api(self, n: int) -> None:
        self.api.publish(_spec(n))
        self.deleted = False

    @precondition(lambda self: self._published() is not None)
    @rule()
    def unpublish(self) -> None:
        self.api.unpublish(FLOW)

    @precondition(lambda self: self._published() is not None and not self.deleted)
    @rule()
    def delete(self) -> None:
        self.api.delete(FLOW)
        self.deleted = True

    @precondition(lambda self: self.deleted)
    @rule()
    def restore(self) -> None:
        self.api.restore(FLOW)
        self.deleted = False

    @rule()
    def reload(self) -> None:
        before = self._published()
        existed = FLOW in {f.id for f in self.store.list_flows()}
        report = import_folder(self.store, self.folder, CATALOG)
        after = self._published()
        if self.on_disk is None or self.on_disk == self.imported:
            assert after == before, "an unchanged (or removed) file changed the published version"
            if self.on_disk is not None and after == _version(self.on_disk):
                self.base = after  # a conflict settled: the file's version was published since
            return
        file_version = _version(self.on_disk)
        if self.deleted:
            assert after == before and "deleted" in report.conflicts[FLOW]
        elif before == file_version:
            assert after == before
            self.base = file_version
        elif not existed or (self.base is not None and before == self.base):
            assert after == file_version, report.conflicts
            self.base = file_version
        else:
            assert after == before, "a version published since the file was last applied was replaced"
            text = report.conflicts[FLOW]
            assert file_version in text and (before or "unpublished") in text, text
        self.imported = self.on_disk  # recorded whatever the outcome: the next load does not re-import it


FileSyncMachine.TestCase.settings = fuzz_settings(40, stateful_step_count=12)
test_file_sync_rules = FileSyncMachine.TestCase
