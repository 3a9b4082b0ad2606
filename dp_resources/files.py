"""File access for file nodes: every path from a spec is resolved under a configured root.

Specs name a path relative to a named root (``data`` by default, writable; ``flows`` read-only,
for sample data shipped beside example flows). Absolute paths, ``..``, symlinks that leave the
root, and Dagster's own storage folder are refused (reliability test V3).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from dagster import ConfigurableResource
from pydantic import Field

from dp_resources import settings


class PathNotAllowed(ValueError):
    pass


class FilesResource(ConfigurableResource):
    """Named roots that file nodes may read from and write to."""

    data_dir: str = Field(default="", description="Writable root 'data' (default: DP_DATA_DIR).")
    read_roots: dict[str, str] = Field(
        default_factory=dict, description="Extra read-only roots by name, e.g. {'flows': '/srv/flows'}."
    )

    def roots(self) -> dict[str, Path]:
        roots = {"data": Path(self.data_dir or settings.data_dir()).resolve()}
        flows = settings.flows_dir()
        if flows is not None:
            roots["flows"] = flows
        roots.update({name: Path(path).resolve() for name, path in self.read_roots.items()})
        return roots

    def resolve(self, path: str, root: str = "data", *, for_write: bool = False) -> Path:
        roots = self.roots()
        if root not in roots:
            raise PathNotAllowed(f"unknown file root '{root}'; known roots: {', '.join(roots)}")
        if for_write and root != "data":
            raise PathNotAllowed(f"root '{root}' is read-only; write under the 'data' root")
        base = roots[root]
        relative = PurePosixPath(path)
        if not path or relative.is_absolute() or os.path.isabs(path) or ".." in relative.parts:
            raise PathNotAllowed(
                f"path '{path}' must be relative to the '{root}' root, without '..'"
            )
        target = (base / relative).resolve()
        if not target.is_relative_to(base):
            raise PathNotAllowed(f"path '{path}' leaves the '{root}' root (through a symlink?)")
        storage = settings.dagster_home()
        if storage is not None and target.is_relative_to(storage):
            raise PathNotAllowed(f"path '{path}' points into Dagster's storage folder")
        outputs = settings.outputs_url()
        if "://" not in outputs and target.is_relative_to(Path(outputs).resolve()):
            raise PathNotAllowed(f"path '{path}' points into the run outputs folder")
        if for_write:
            target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def glob(self, pattern: str, root: str = "data") -> list[Path]:
        """Files matching a glob under a root, each checked like a single path."""
        base = self.resolve(".", root) if pattern else None
        if base is None or ".." in PurePosixPath(pattern).parts or os.path.isabs(pattern):
            raise PathNotAllowed(f"glob '{pattern}' must be relative to the '{root}' root")
        return sorted(self.resolve(str(p.relative_to(base)), root) for p in base.glob(pattern) if p.is_file())
