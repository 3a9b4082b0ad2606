"""File access for file nodes: every path from a spec is resolved under a configured root.

Specs name a path relative to a named root (``data`` by default, writable; ``flows`` read-only,
for sample data shipped beside example flows). Absolute paths, ``..``, symlinks that leave the
root, and Dagster's own storage folder are refused (reliability test V3).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from dp_resources.paths import NAME_MAX, PathNotAllowed, checked_relative, glob_error, shown
from dp_settings import current


class FilesResource(ConfigurableResource):
    """Named roots that file nodes may read from and write to."""

    data_dir: str = Field(default="", description="Writable root 'data' (default: DP_DATA_DIR).")
    read_roots: dict[str, str] = Field(
        default_factory=dict, description="Extra read-only roots by name, e.g. {'flows': '/srv/flows'}."
    )

    def roots(self) -> dict[str, Path]:
        settings = current()  # a resource: Dagster calls it in the run, with no settings of ours
        roots = {"data": Path(self.data_dir or settings.data_folder()).resolve()}
        flows = settings.flows_folder()
        if flows is not None:
            roots["flows"] = flows
        roots.update({name: Path(path).resolve() for name, path in self.read_roots.items()})
        return roots

    def resolve(self, path: str, root: str = "data", *, for_write: bool = False, where: str = "") -> Path:
        """The real file ``path`` names under ``root``, or ``PathNotAllowed`` saying why.

        Every failure, including the operating system's (a name too long, a symlink loop), is a
        ``PathNotAllowed`` whose message starts with ``where`` (the flow, node and field).
        """
        lead = f"{where}: " if where else ""
        relative = checked_relative(path, lead)
        roots = self.roots()
        if not isinstance(root, str) or root not in roots:
            raise PathNotAllowed(f"{lead}unknown file root {shown(root)}; known roots: {', '.join(roots)}")
        if for_write and root != "data":
            raise PathNotAllowed(f"{lead}root '{root}' is read-only; write under the 'data' root")
        base = roots[root]
        try:
            target = (base / relative).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: a symlink loop
            raise PathNotAllowed(f"{lead}path {shown(path)} cannot be resolved: {_reason(exc)}") from None
        if not target.is_relative_to(base):
            raise PathNotAllowed(f"{lead}path {shown(path)} leaves the '{root}' root (through a symlink?)")
        settings = current()
        storage = settings.dagster_home_folder()
        if storage is not None and target.is_relative_to(storage):
            raise PathNotAllowed(f"{lead}path {shown(path)} points into Dagster's storage folder")
        outputs = settings.outputs_base()
        if "://" not in outputs and target.is_relative_to(Path(outputs).resolve()):
            raise PathNotAllowed(f"{lead}path {shown(path)} points into the run outputs folder")
        if for_write:
            _prepare_write(target, path, lead)
        return target

    def glob(self, pattern: str, root: str = "data", *, where: str = "") -> list[Path]:
        """Files matching a glob under a root, each checked like a single path."""
        lead = f"{where}: " if where else ""
        problem = glob_error(pattern)
        if problem is not None:
            raise PathNotAllowed(lead + problem)
        base = self.resolve(".", root, where=where)
        try:
            matches = [p for p in base.glob(pattern) if p.is_file()]
        except (OSError, RuntimeError, ValueError) as exc:
            raise PathNotAllowed(f"{lead}glob {shown(pattern)} cannot be read: {_reason(exc)}") from None
        return sorted(self.resolve(str(p.relative_to(base)), root, where=where) for p in matches)


def _prepare_write(target: Path, path: str, lead: str) -> None:
    from dp_resources.temp_names import temp_name, writer_token

    if target.is_dir():
        raise PathNotAllowed(f"{lead}path {shown(path)} is a folder; name a file to write")
    # Files are written under a longer temporary name first (temp_names): it must fit too.
    spare = NAME_MAX - len(os.fsencode(temp_name("", writer_token())))
    if len(os.fsencode(target.name)) > spare:
        raise PathNotAllowed(f"{lead}path {shown(path)}: a file written must have a name of at most {spare} bytes")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathNotAllowed(f"{lead}cannot create the folder of {shown(path)}: {_reason(exc)}") from None
    except RecursionError:  # mkdir(parents=True) recurses once per missing folder: ~1,000 fit in PATH_MAX
        raise PathNotAllowed(f"{lead}path {shown(path)} nests too many new folders; write fewer levels") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
