"""Checks on zip containers (``.xlsx`` files are zip archives) before a reader opens them (V6).

The central directory is read without decompressing anything; a file is refused when it has too
many members, a member path that escapes (``..``, absolute), a total uncompressed size over the
cap, or a member whose compression ratio only a bomb would have. Other archives and compressed
files are not read at all (``FileInput`` refuses them by suffix).
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

MAX_MEMBERS = 10_000
MAX_UNCOMPRESSED = 512 * 1024 * 1024
MAX_RATIO = 200  # plain XML compresses well, but not by this much


class ArchiveRefused(ValueError):
    pass


def check_zip_container(
    path: Path, *, max_members: int = MAX_MEMBERS, max_uncompressed: int = MAX_UNCOMPRESSED, max_ratio: int = MAX_RATIO
) -> None:
    name = Path(path).name
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise ArchiveRefused(f"file '{name}' is not a valid xlsx (zip) file") from None
    if len(members) > max_members:
        raise ArchiveRefused(f"file '{name}' has {len(members)} members, over {max_members}")
    total = 0
    for member in members:
        parts = PurePosixPath(member.filename.replace("\\", "/")).parts
        if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ArchiveRefused(f"file '{name}' has a member path that escapes: {member.filename!r}")
        total += member.file_size
        if total > max_uncompressed:
            raise ArchiveRefused(f"file '{name}' unpacks to over {max_uncompressed} bytes")
        if member.file_size > 1024 * 1024 and member.file_size > max_ratio * max(member.compress_size, 1):
            raise ArchiveRefused(
                f"file '{name}': member {member.filename!r} compresses "
                f"{member.file_size // max(member.compress_size, 1)}:1, "
                "like an archive bomb"
            )
