"""Where run outputs live on a filesystem, and how they are written without ever being half there.

Layout: ``dp_io.layout`` (``{root}/{run_id}/{key segment}/.../{node}{suffix}``).

Atomicity: every file is written under a hidden temporary name (``.{name}.{token}.tmp``, see
``dp_resources/temp_names.py``) and renamed into place, so a reader finds the old file, the new
one or nothing, never a torn file.
On object stores (S3, GCS, Azure) a PUT is already atomic and a rename is a copy, so files are
written straight to their final key and an interrupted upload is aborted (``discard``).

The ``token`` names the writer (``pid-random-host``), which is how a later write or a cleanup
knows that a temporary file belongs to a dead writer and may be removed: same host and the pid
is gone, or another host and older than ``stale_after_seconds``.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from dp_io.layout import (
    MANIFEST_NAME,
    OUTPUT_SUFFIXES,
    PARTS_SUFFIX,
    StoredOutput,
    check_run_id,
    quote_segment,
    strip_output_suffix,
)
from dp_resources.temp_names import host_label, parse_temp_name, parse_token, temp_name, writer_token

T = TypeVar("T")

# Object stores whose PUT is atomic and whose "rename" is a copy: write to the final key.
DIRECT_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci"})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutputStore:
    """A root folder on a local or fsspec filesystem plus the write/read/cleanup rules above.

    Built per use from a URL (cheap: fsspec caches filesystem instances); holds no state beyond
    the filesystem handle, so it is safe to build in any process.
    """

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        fsync: bool = False,
        stale_after_seconds: float = 3600.0,
    ):
        from fsspec.core import url_to_fs
        from fsspec.implementations.local import LocalFileSystem

        self.url = url
        self.storage_options = dict(storage_options or {})
        self.fs, root = url_to_fs(url, **self.storage_options)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = self.fs._strip_protocol(root).rstrip("/") or "/"
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.direct_put = bool(DIRECT_PUT_PROTOCOLS.intersection(protocols))
        self.fsync = fsync
        self.stale_after_seconds = stale_after_seconds

    # ---- path policy -------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> str:
        return posixpath.join(self.root, check_run_id(run_id))

    def output_stem(self, run_id: str, key_path: tuple[str, ...], partition: str | None) -> str:
        """Path without suffix: ``{root}/{run_id}/{key...}[/{partition}]``."""
        segments = [quote_segment(s) for s in key_path]
        if partition is not None:
            segments.append(quote_segment(partition))
        return posixpath.join(self.run_dir(run_id), *segments)

    def to_url(self, path: str) -> str:
        """What goes into ``path`` metadata: a plain path locally, a URL elsewhere."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def to_path(self, url_or_path: str) -> str:
        return self.fs._strip_protocol(url_or_path).rstrip("/")

    # ---- listing -----------------------------------------------------------------------------

    def listdir(self, directory: str) -> list[str]:
        """Names in a folder ([] when it does not exist)."""
        if self.local:
            try:
                return os.listdir(directory)
            except (FileNotFoundError, NotADirectoryError):
                return []
        self.fs.invalidate_cache(directory)
        try:
            return [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(directory, detail=False)]
        except FileNotFoundError:
            return []

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path) if self.local else self.fs.isdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path) if self.local else self.fs.exists(path)

    def find_output(self, stem: str) -> StoredOutput | None:
        """The complete output stored at ``stem`` (any known suffix), or None.

        A ``.parts`` folder without its manifest is an interrupted write and counts as absent.
        """
        directory, base = posixpath.split(stem)
        names = set(self.listdir(directory))
        for suffix in OUTPUT_SUFFIXES:
            if base + suffix not in names:
                continue
            path = posixpath.join(directory, base + suffix)
            if suffix == PARTS_SUFFIX and not self.exists(posixpath.join(path, MANIFEST_NAME)):
                continue
            return StoredOutput(path, suffix)
        return None

    def classify(self, path: str) -> StoredOutput:
        for suffix in OUTPUT_SUFFIXES:
            if path.endswith(suffix):
                return StoredOutput(path, suffix)
        from dp_io.errors import UnsupportedFormatError

        raise UnsupportedFormatError(f"{path}: not a stored output (expected one of {', '.join(OUTPUT_SUFFIXES)})")

    def walk_outputs(self, directory: str) -> Iterator[tuple[tuple[str, ...], StoredOutput]]:
        """Every complete output below ``directory``: (relative segments, no suffix; output)."""
        yield from self._walk(directory, ())

    def _walk(self, directory: str, prefix: tuple[str, ...]):
        for name in sorted(self.listdir(directory)):
            if name.startswith("."):
                continue
            path = posixpath.join(directory, name)
            suffix = next((s for s in OUTPUT_SUFFIXES if name.endswith(s)), None)
            if suffix == PARTS_SUFFIX:
                if self.exists(posixpath.join(path, MANIFEST_NAME)):
                    yield (*prefix, name[: -len(suffix)]), StoredOutput(path, suffix)
            elif suffix is not None and not self.isdir(path):
                yield (*prefix, name[: -len(suffix)]), StoredOutput(path, suffix)
            elif self.isdir(path):
                yield from self._walk(path, (*prefix, name))

    def size(self, path: str) -> int:
        if not self.local:
            return int(self.fs.du(path, total=True))
        if not os.path.isdir(path):
            return os.path.getsize(path)
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)

    def mtime(self, path: str) -> float | None:
        """Modification time of a file (seconds since the epoch), None when unknown."""
        if self.local:
            try:
                return os.stat(path).st_mtime
            except FileNotFoundError:
                return None
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
            value = info.get(key)
            if value is None:
                continue
            if hasattr(value, "timestamp"):
                return float(value.timestamp())
            try:
                return float(value)
            except (TypeError, ValueError):
                continue
        return None

    def newest_mtime(self, directory: str) -> float | None:
        times = [t for p in self._files_under(directory) if (t := self.mtime(p)) is not None]
        return max(times) if times else None

    def _files_under(self, directory: str) -> list[str]:
        if self.local:
            return [os.path.join(d, f) for d, _, files in os.walk(directory) for f in files]
        try:
            return list(self.fs.find(directory))
        except FileNotFoundError:
            return []

    # ---- reading -----------------------------------------------------------------------------

    def source(self, path: str) -> str | bytes:
        """What a reader gets: the native path locally (Arrow can memory-map it), else bytes."""
        if self.local:
            if not os.path.exists(path):
                raise FileNotFoundError(path)
            return path
        return self.fs.cat_file(path)

    # ---- writing -----------------------------------------------------------------------------

    def makedirs(self, directory: str) -> None:
        if self.local:
            os.makedirs(directory, exist_ok=True)
        else:
            self.fs.makedirs(directory, exist_ok=True)

    def remove(self, path: str) -> None:
        """Remove a file or folder; missing is fine."""
        try:
            if self.local:
                if os.path.isdir(path):
                    import shutil

                    shutil.rmtree(path)
                else:
                    os.remove(path)
            else:
                self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

    def atomic_write(
        self,
        path: str,
        write: Callable[[Any], T],
        *,
        cleanup: bool = True,
    ) -> T:
        """Call ``write(sink)`` so that ``path`` appears complete or not at all.

        ``sink`` is a native path (local filesystem: formats open it themselves, which lets
        Arrow write without Python in the loop) or a binary file object (fsspec).
        """
        directory, name = posixpath.split(path)
        self.makedirs(directory)
        if self.direct_put:
            result = self._write_fsspec(path, write)
        else:
            tmp = posixpath.join(directory, temp_name(name, writer_token()))
            try:
                if self.local:
                    result = write(tmp)
                    if self.fsync:
                        _fsync_path(tmp)
                    os.replace(tmp, path)
                    if self.fsync:
                        _fsync_path(directory)
                else:
                    result = self._write_fsspec(tmp, write)
                    self.fs.mv(tmp, path)
            except BaseException:
                self.remove(tmp)
                raise
        if cleanup:
            self.cleanup_directory(directory, finished=name)
        return result

    def _write_fsspec(self, path: str, write: Callable[[Any], T]) -> T:
        handle = self.fs.open(path, "wb")
        try:
            result = write(handle)
        except BaseException:
            # fsspec's __exit__ would commit a partial upload: abort it instead.
            discard = getattr(handle, "discard", None)
            if discard is not None:
                discard()
            else:
                handle.close()
            raise
        handle.close()
        return result

    # ---- cleanup -----------------------------------------------------------------------------

    def is_garbage(self, token: str, path: str, *, own_target: bool) -> bool:
        """True when the writer behind ``token`` can no longer finish the file at ``path``.

        ``own_target``: the caller has just finished writing the same target, so an older token
        of this very process is a leftover of an earlier attempt (step retry in-process).
        """
        parsed = parse_token(token)
        if parsed is None:
            return False
        pid, host = parsed
        if host == host_label():
            if pid == os.getpid():
                return own_target
            return not _pid_alive(pid)
        modified = self.mtime(path)
        return modified is not None and time.time() - modified > self.stale_after_seconds

    def cleanup_directory(self, directory: str, finished: str | None = None) -> list[str]:
        """Remove dead writers' temporary files in ``directory``.

        With ``finished`` (the name just written), also remove the same output stored under
        another suffix (an earlier attempt that produced another kind of value), so that a
        reader never has two candidates.
        """
        removed: list[str] = []
        names = self.listdir(directory)
        finished_base = strip_output_suffix(finished) if finished else None
        for name in names:
            path = posixpath.join(directory, name)
            parsed = parse_temp_name(name)
            if parsed is not None:
                target, token = parsed
                if self.is_garbage(token, path, own_target=target == finished):
                    self.remove(path)
                    removed.append(path)
                continue
            if finished_base is not None and name != finished and strip_output_suffix(name) == finished_base:
                self.remove(path)
                removed.append(path)
        return removed

    def cleanup_tree(self, directory: str) -> list[str]:
        """Remove dead writers' temporary files and unlisted parts anywhere below ``directory``."""
        removed = self.cleanup_directory(directory)
        for name in self.listdir(directory):
            path = posixpath.join(directory, name)
            if name.startswith(".") or not self.isdir(path):
                continue
            if name.endswith(PARTS_SUFFIX):
                removed += self.cleanup_parts(path, keep=None)
            else:
                removed += self.cleanup_tree(path)
        return removed

    def cleanup_parts(self, directory: str, keep: set[str] | None, *, own: bool = False) -> list[str]:
        """Remove part files of dead writers that the manifest does not list.

        ``keep=None`` reads the manifest; without one (an interrupted stream) every part whose
        writer is dead goes. Parts of a live writer are always kept.
        """
        if keep is None:
            keep = set(self._manifest_files(directory))
        removed = self.cleanup_directory(directory)
        for name in self.listdir(directory):
            if name == MANIFEST_NAME or name in keep or name.startswith("."):
                continue
            pieces = name.split(".")
            if len(pieces) < 3 or not pieces[0].startswith("part-"):
                continue
            path = posixpath.join(directory, name)
            if self.is_garbage(pieces[1], path, own_target=own):
                self.remove(path)
                removed.append(path)
        return removed

    def _manifest_files(self, directory: str) -> list[str]:
        import json

        try:
            raw = self.source(posixpath.join(directory, MANIFEST_NAME))
            if isinstance(raw, str):
                with open(raw, "rb") as handle:
                    raw = handle.read()
            return [p["file"] for p in json.loads(raw)["parts"]]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return []
