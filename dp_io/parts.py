"""Streamed (generator) outputs: numbered part files plus a manifest written last.

A node that yields DataFrames chunk by chunk never holds the whole result: each part is encoded
and written atomically as it arrives, and ``manifest.json`` (also atomic) is what makes the
output exist. An interrupted stream leaves parts but no manifest, so readers see no output and
the next write or cleanup removes the dead writer's parts.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dp_io.formats import combine_parts, decode, encode, write_bytes
from dp_io.layout import MANIFEST_NAME, PARTS_SUFFIX
from dp_io.store import OutputStore, writer_token


@dataclass
class PartsResult:
    path: str
    parts: int = 0
    rows: int | None = 0
    bytes: int = 0
    formats: set[str] = field(default_factory=set)
    columns: list[tuple[str, str]] | None = None
    notes: list[str] = field(default_factory=list)


def write_parts(store: OutputStore, stem: str, values: Iterable[Any], frame_format: str) -> PartsResult:
    directory = stem + PARTS_SUFFIX
    store.makedirs(directory)
    token = writer_token()
    result = PartsResult(path=directory)
    entries: list[dict[str, Any]] = []
    for index, value in enumerate(values):
        encoded = encode(value, frame_format)
        name = f"part-{index:05d}.{token}{encoded.suffix}"
        path = posixpath.join(directory, name)
        store.atomic_write(path, encoded.write, cleanup=False)
        size = store.size(path)
        entries.append({"file": name, "format": encoded.format, "rows": encoded.rows, "bytes": size})
        result.parts += 1
        result.bytes += size
        result.formats.add(encoded.format)
        if encoded.rows is None:
            result.rows = None
        elif result.rows is not None:
            result.rows += encoded.rows
        if result.columns is None:
            result.columns = encoded.columns
        if encoded.note:
            result.notes.append(f"part {index}: {encoded.note}")
    manifest = {
        "version": 1,
        "parts": entries,
        "rows": result.rows,
        "columns": result.columns,
    }
    payload = json.dumps(manifest, indent=1).encode()
    store.atomic_write(
        posixpath.join(directory, MANIFEST_NAME),
        lambda sink: write_bytes(payload, sink),
        cleanup=False,
    )
    store.cleanup_parts(directory, keep={e["file"] for e in entries}, own=True)
    store.cleanup_directory(posixpath.dirname(directory), finished=posixpath.basename(directory))
    return result


def read_manifest(store: OutputStore, directory: str) -> dict[str, Any]:
    raw = store.source(posixpath.join(directory, MANIFEST_NAME))
    if isinstance(raw, str):
        with open(raw, "rb") as handle:
            raw = handle.read()
    return json.loads(raw)


def part_entries(store: OutputStore, directory: str) -> list[dict[str, Any]]:
    """The manifest's parts in order: ``{"file", "format", "rows", "bytes"}`` each."""
    return list(read_manifest(store, directory)["parts"])


def read_part(store: OutputStore, directory: str, index: int) -> Any:
    """Part ``index`` (from 0) alone; the others are not read."""
    from dp_io.errors import OutputNotFoundError

    entries = part_entries(store, directory)
    if not 0 <= index < len(entries):
        raise OutputNotFoundError(
            f"{store.to_url(directory)} has {len(entries)} part(s), numbered from 0: there is no part {index}"
        )
    name = entries[index]["file"]
    return decode(store.source(posixpath.join(directory, name)), "." + name.rsplit(".", 1)[1])


def iter_parts(store: OutputStore, directory: str) -> Iterator[Any]:
    """Each part in order, read only when the consumer asks for it (the manifest is read now,
    so a missing output fails here rather than at the first ``next``)."""
    names = [entry["file"] for entry in read_manifest(store, directory)["parts"]]

    def generate() -> Iterator[Any]:
        for name in names:
            suffix = "." + name.rsplit(".", 1)[1]
            yield decode(store.source(posixpath.join(directory, name)), suffix)

    return generate()


def read_parts(store: OutputStore, directory: str, *, lazy: bool) -> Any:
    if lazy:
        return iter_parts(store, directory)
    return combine_parts(list(iter_parts(store, directory)))
