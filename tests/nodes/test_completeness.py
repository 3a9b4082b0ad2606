"""Completeness: every catalog node type has test cases, an example, docs and a description.

A type counts as covered when the id of some collected test under ``tests/nodes``,
``tests/security`` or ``tests/tools`` names it, as ``TypeName`` or ``type_name`` (the tables use ``TypeName-case``
ids). When this file runs alone, the ids come from ``pytest --collect-only`` of those folders.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import node_helpers

from dp_assets.catalog import default_catalog
from dp_assets.catalog.examples import NODE_EXAMPLES
from dp_assets.spec.model import node_model

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = tuple(f for f in ("tests/nodes", "tests/security", "tests/tools") if (ROOT / f).is_dir())


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def collected_ids() -> list[str]:
    ids = node_helpers.COLLECTED
    if all(any(i.startswith(folder + "/") for i in ids) for folder in FOLDERS):
        return ids
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *FOLDERS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.splitlines()


def test_every_node_type_has_test_cases() -> None:
    ids = collected_ids()
    text = "\n".join(ids)
    missing = [name for name in default_catalog() if name not in text and snake(name) not in text]
    assert not missing, f"node types without test cases in {FOLDERS}: {missing}"


def test_every_node_type_has_a_valid_example_and_a_description() -> None:
    catalog = default_catalog()
    missing = sorted(set(catalog) - set(NODE_EXAMPLES))
    assert not missing, f"node types without an example in dp_assets/catalog/examples.py: {missing}"
    for name, example in NODE_EXAMPLES.items():
        node_model(catalog, name).model_validate(example)
        assert catalog[name].description, f"{name} has no docstring"


def test_the_catalog_index_lists_every_node_module_and_its_types() -> None:
    """The default catalog imports a node module when one of its types is used, by NODE_MODULES:
    a module or a type missing there would be unknown to specs."""
    import importlib

    from dp_assets.catalog import NODE_MODULES

    defining = {}
    for path in sorted((ROOT / "dp_assets" / "catalog" / "nodes").glob("*.py")):
        module = importlib.import_module(f"dp_assets.catalog.nodes.{path.stem}")
        if hasattr(module, "NODE_TYPES"):
            defining[module.__name__] = tuple(t.name for t in module.NODE_TYPES)
    assert {m: set(names) for m, names in NODE_MODULES.items()} == {m: set(names) for m, names in defining.items()}
