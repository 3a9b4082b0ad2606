"""Every test module's file name is unique in ``tests/``.

The test folders are not packages, so pytest imports each module by its file name alone: a second
``test_x.py`` in another folder is "import file mismatch" at collection, which stops the whole
session that collects both (the docs' long-fuzzing command collects every folder at once)."""

from __future__ import annotations

from collections import defaultdict

from tests.support.processes import REPO_ROOT


def test_no_two_test_modules_share_a_file_name() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in (REPO_ROOT / "tests").rglob("test_*.py"):
        by_name[path.name].append(str(path.relative_to(REPO_ROOT)))
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not shared, f"rename one of each: {shared}"
