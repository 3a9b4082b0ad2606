"""Validated specs kept by version, so a restart or a second ``dp validate`` does not redo the work.

A flow version is the hash of its canonical spec (``spec.loading.spec_version``), and whether it
validates and compiles depends only on that spec and on the platform's code. So each version
that passed is recorded once, as a small JSON file under ``DP_HOME/cache/validated/<platform>/``:
the flow id, the version, the spec the model was checked with (params replaced by typed stand-ins,
see ``validation._with_placeholders``) and whether it was compiled in Dagster. ``<platform>`` is
:func:`platform_key`, a hash of the platform's source files and of the libraries that decide
validation (Dagster, pydantic), so a code change starts a new, empty folder.

- The code location restores a published version from its record (the model is built from the
  recorded spec, skipping the graph, template and rule checks) instead of validating it again.
- ``dp validate`` and ``dp publish`` skip compiling in Dagster (and importing it) a version that
  has compiled before; every other check still runs.

A record is a cache, never the truth: a missing, unreadable or foreign one is ignored, and a
folder that cannot be written costs only the saving. The records of the store's published
versions are also what a Dagster ``StateBackedComponent`` (issue 21) can keep as its state:
:meth:`ValidatedSpecs.record` gives one as a JSON-ready dict.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dp_assets.spec.ids import ID_PATTERN

if TYPE_CHECKING:
    from dp_assets.catalog.base import Catalog
    from dp_assets.spec.validation import ValidatedFlow

#: The packages whose code decides what validates and compiles.
PLATFORM_PACKAGES = ("dp_assets", "dp_sensors", "dp_io", "dp_resources", "dp_instance", "dp_settings")
LIBRARIES = ("dagster", "pydantic", "pydantic-core")
_ROOT = Path(__file__).resolve().parents[2]
_FLOW_ID = re.compile(ID_PATTERN)


@functools.cache
def platform_key() -> str:
    """A hash of the platform's source files (path, size, modification time) and library versions:
    any change to the code gives a new key, and so empty records."""
    digest = hashlib.sha256()
    for library in LIBRARIES:
        try:
            digest.update(f"{library}={metadata.version(library)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library}=?\n".encode())
    for package in PLATFORM_PACKAGES:
        for folder, dirs, files in os.walk(_ROOT / package):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(f for f in files if f.endswith(".py")):
                stat = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class ValidatedSpecs:
    """The records of one platform key in ``folder`` (None: keep nothing)."""

    def __init__(self, folder: Path | None):
        self.folder = folder / platform_key() if folder is not None else None

    @classmethod
    def for_home(cls, home: Path) -> ValidatedSpecs:
        return cls(home / "cache" / "validated")

    def _path(self, flow_id: str, version: str) -> Path | None:
        # The location asks with a store row's id before validating the spec: a name that is not
        # a flow id (``../x``, a NUL byte) names no record, never a file outside the folder.
        if self.folder is None or not version.isalnum() or not _FLOW_ID.fullmatch(flow_id):
            return None
        return self.folder / f"{flow_id}@{version}.json"

    def get(self, flow_id: str, version: str) -> dict[str, Any] | None:
        """The record of ``flow_id`` at ``version``, or None."""
        path = self._path(flow_id, version)
        if path is None:
            return None
        try:
            record = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("flow") != flow_id or record.get("version") != version:
            return None
        return record

    def compiled(self, flow_id: str, version: str) -> bool:
        record = self.get(flow_id, version)
        return record is not None and record.get("compiles") is True

    @staticmethod
    def record(validated: ValidatedFlow, checked: Mapping[str, Any], *, compiles: bool) -> dict[str, Any]:
        return {
            "flow": validated.id,
            "version": validated.version,
            "platform": platform_key(),
            "checked": checked,
            "compiles": compiles,
        }

    def put(self, validated: ValidatedFlow, checked: Mapping[str, Any], *, compiles: bool) -> None:
        """Record a version that passed (a compiled one is never downgraded to not compiled)."""
        path = self._path(validated.id, validated.version)
        if path is None or (not compiles and self.get(validated.id, validated.version) is not None):
            return
        self._write(path, self.record(validated, checked, compiles=compiles))

    @staticmethod
    def _write(path: Path, record: Mapping[str, Any]) -> None:
        try:
            text = json.dumps(record, sort_keys=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            temporary.write_text(text)
            os.replace(temporary, path)  # readers see the old record or the new one, never half
        except (OSError, TypeError, ValueError):
            pass  # a cache: a folder that cannot be written, or a spec JSON cannot hold, costs the saving

    def restore(self, record: Mapping[str, Any], raw: dict[str, Any], catalog: Catalog) -> ValidatedFlow | None:
        """The validated flow of a stored spec from its record; None when the record does not fit."""
        from dp_assets.spec.model import flow_model
        from dp_assets.spec.validation import ValidatedFlow, types_used

        checked = record.get("checked")
        if not isinstance(checked, dict) or checked.get("id") != record.get("flow"):
            return None
        try:
            flow = flow_model(catalog, types_used(checked, catalog)).model_validate(checked)
        except Exception:  # noqa: BLE001 - a record that no longer fits is validated afresh
            return None
        return ValidatedFlow(flow=flow, raw=raw, version=str(record["version"]), schemas={})
