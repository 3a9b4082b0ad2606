"""Paths a spec may name, judged from their text alone (``dp_resources.files`` resolves them).

Pure, without Dagster: spec validation checks every path param with :func:`path_error`.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath


class PathNotAllowed(ValueError):
    pass


# Linux limits: a whole path of PATH_MAX bytes, each name of NAME_MAX bytes. Checked here, so an
# over-long name is a clear error at validation instead of ENAMETOOLONG in the middle of a run.
PATH_MAX = 4096
NAME_MAX = 255


def path_error(path: object) -> str | None:
    """Why ``path`` cannot be a path relative to a root, from its text alone (None when it can).

    Pure: it never touches the filesystem, so spec validation can call it.
    """
    if not isinstance(path, str):
        return f"a path must be text, not {type(path).__name__}"
    if not path:
        return "the path is empty"
    if "\x00" in path:
        return f"path {shown(path)} contains a NUL byte"
    try:
        encoded = os.fsencode(path)
    except UnicodeError:
        return f"path {shown(path)} is not valid text for a file name (lone surrogate?)"
    if len(encoded) > PATH_MAX:
        return f"path {shown(path)} is {len(encoded)} bytes long (the limit is {PATH_MAX})"
    relative = PurePosixPath(path)
    if relative.is_absolute() or os.path.isabs(path) or ".." in relative.parts:
        return f"path {shown(path)} must be relative to its root, without '..'"
    long = next((part for part in relative.parts if len(os.fsencode(part)) > NAME_MAX), None)
    if long is not None:
        return f"path {shown(path)} has a name longer than {NAME_MAX} bytes ({shown(long)})"
    return None


def glob_error(pattern: object) -> str | None:
    """Why ``pattern`` cannot be a glob relative to a root, from its text alone (None when it can).

    A path's rules, and two of the glob's own: it names at least one part (pathlib's glob fails
    with an IndexError on '.' or './.'), and '**' at most once (each further one multiplies the
    folders walked; one reaches any depth). Spec validation and the files resource both ask it,
    so a glob that validates never fails the sensor or the node on its text.
    """
    problem = path_error(pattern)
    if problem is not None:
        return problem
    parts = PurePosixPath(pattern).parts  # type: ignore[arg-type]
    if not parts:
        return f"glob {shown(pattern)} names no file; write a pattern such as '*.csv'"
    if parts.count("**") > 1:
        return f"glob {shown(pattern)} may use '**' once"
    return None


def checked_relative(path: object, lead: str = "") -> PurePosixPath:
    problem = path_error(path)
    if problem is not None:
        raise PathNotAllowed(lead + problem)
    return PurePosixPath(path)  # type: ignore[arg-type]


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
