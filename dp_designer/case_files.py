"""A test case written into the flow's test file, beside its spec file (where ``dp test`` looks).

The case is appended as text under the file's ``cases:`` list, so the comments and layout of a
hand-written test file stay as they were; the result is read back through the test-file model
before it replaces the old file (atomically), so a failed write leaves the old file whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from dp_designer.http import ApiError

CASES_RE = re.compile(r"^cases:[ \t]*(#.*)?$", re.MULTILINE)
ITEM_RE = re.compile(r"^( *)- ", re.MULTILINE)


def test_file_for(spec_file: Path) -> Path:
    return spec_file.parent / "tests" / f"{spec_file.stem}.yaml"


def _case_text(case: dict[str, Any], indent: str) -> str:
    text = yaml.safe_dump([case], sort_keys=False, allow_unicode=True, width=120)
    return "".join(indent + line if line.strip() else line for line in text.splitlines(keepends=True))


def _appended(old: str, case: dict[str, Any], flow_id: str) -> str:
    if not old.strip():
        return f"flow: {flow_id}\ncases:\n" + _case_text(case, "  ")
    cases = CASES_RE.search(old)
    if cases is None:
        raise ApiError(409, "the test file has no top-level `cases:` list to add the case to")
    # The case goes at the end, so `cases:` must be the file's last top-level key.
    rest = old[cases.end() :]
    if re.search(r"^[^\s#-]", rest, re.MULTILINE):
        raise ApiError(409, "`cases:` is not the last key of the test file; add the case by hand (it is in the answer)")
    item = ITEM_RE.search(rest)
    indent = item.group(1) if item else "  "
    return old + ("" if old.endswith("\n") else "\n") + _case_text(case, indent)


def append_case(spec_file: Path, flow_id: str, case: dict[str, Any]) -> Path:
    """Append ``case`` to the test file of ``spec_file``; 409 when a case of that name exists.
    Appends to one folder's files are made one at a time (across processes too)."""
    path = test_file_for(spec_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_locked(path.parent):
        return _append(path, flow_id, case)


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (``flock`` on the folder itself: no lock file is left
    among the user's files). Appending reads the file, then replaces it: two previews kept at
    once (two editors, two tabs) each read the old file and the second replace dropped the
    first's case, both answered as written."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _append(path: Path, flow_id: str, case: dict[str, Any]) -> Path:
    from dp_assets.flowtest.runner import TestFileError, load_test_file

    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old.strip():
        try:
            existing = load_test_file(path)
        except TestFileError as exc:
            raise ApiError(409, f"the test file cannot take a case until it is fixed: {exc}") from None
        if existing.flow != flow_id:
            raise ApiError(409, f"{path.name} tests flow '{existing.flow}', not '{flow_id}'")
        if any(c.name == case["name"] for c in existing.cases):
            raise ApiError(409, f"{path.name} has a case named '{case['name']}' already; choose another name")
    new = _appended(old, case, flow_id)
    handle, temporary = tempfile.mkstemp(prefix=".dp-case-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(new)
        try:
            written = load_test_file(Path(temporary))
        except TestFileError as exc:
            raise ApiError(409, f"the case does not fit {path.name}: {exc}") from None
        if [c.name for c in written.cases][-1] != case["name"]:
            raise ApiError(409, f"appending to {path.name} did not give a file ending with the new case")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


test_file_for.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
