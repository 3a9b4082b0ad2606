"""The package map of docs/architecture.md holds: each package imports only the layers below it,
and no two modules import each other.

The contracts live in pyproject.toml (``[tool.importlinter]``) and are checked by import-linter,
which reads the source (nothing is imported): a newcomer can trust the map, and an import that
would bring a cycle back fails here with the chain that breaks it.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import grimp

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def _config() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]


def test_the_import_contracts_hold():
    # In its own process, as `make lint` runs it: import-linter's CLI configures logging with
    # dictConfig, which disables every logger that exists (and so the later tests' caplog).
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--config", str(PYPROJECT), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_package_has_its_place_in_the_map():
    """A new top-level package is placed in a layer (or stands alone with its own contract)
    before it can land: otherwise no contract would check what it imports."""
    config = _config()
    packages = sorted(path.parent.name for path in ROOT.glob("dp_*/__init__.py"))
    assert sorted(config["root_packages"]) == packages
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    placed |= {
        source
        for c in config["contracts"]
        if c["type"] == "forbidden" and len(c["source_modules"]) == 1
        for source in c["source_modules"]
    }
    assert set(packages) <= placed, f"not in the map: {sorted(set(packages) - placed)}"


def test_no_two_modules_import_each_other():
    """The acyclic contract covers whole packages where it holds; this covers every module,
    dp_assets and dp_sensors included, lazy and type-checking imports counted."""
    graph = grimp.build_graph(*_config()["root_packages"], cache_dir=None)
    circles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if module < imported and graph.direct_import_exists(importer=imported, imported=module)
    )
    assert not circles, f"modules that import each other: {circles}"
