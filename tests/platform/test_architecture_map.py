"""The map at the top of docs/architecture.md matches the folders: every package is in it, and
every package imports only what its row says it may."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(dp_\w+)/` \| (.+?) \| (.+?) \|$", re.M)


def _map() -> dict[str, set[str] | None]:
    """package -> the packages it may import (``None``: everything below it)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows: dict[str, set[str] | None] = {}
    for package, _owns, allowed in ROW.findall(text):
        rows[package] = None if allowed.strip() == "everything below" else set(re.findall(r"`(dp_\w+)", allowed))
    return rows


def _packages() -> set[str]:
    return {p.parent.name for p in ROOT.glob("dp_*/__init__.py")}


def _imported_packages(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and not node.level
                else []
            )
            found |= {name.split(".")[0] for name in names if name.startswith("dp_")}
    return found - {package}


def test_every_package_is_on_the_map():
    assert set(_map()) == _packages()


def test_each_package_imports_only_what_the_map_allows():
    # The re-exports at the old instance-plugin paths are the one documented exception.
    shims = {"dp_resources": {"dp_instance"}}
    for package, allowed in _map().items():
        if allowed is None:
            continue
        extra = _imported_packages(package) - allowed - shims.get(package, set())
        assert not extra, f"{package} imports {sorted(extra)}, which docs/architecture.md does not allow"
