"""``dp_io`` imports its names when first used: the flow spec, validated without Dagster, refers
to ``dp_io.retention_policy``, and every name the package exports still resolves."""

from __future__ import annotations

import subprocess
import sys

import dp_io


def test_every_exported_name_resolves() -> None:
    for name in dp_io.__all__:
        assert getattr(dp_io, name) is not None, name
    assert set(dp_io.__all__) == set(dp_io._HOMES)  # the static list names what is mapped


def test_the_spec_imports_its_retention_policy_without_dagster() -> None:
    """Importing the spec model (``dp validate``, editors' JSON Schema) costs no Dagster import."""
    code = (
        "import sys, dp_assets.spec.model\n"
        "loaded = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "assert not loaded, loaded[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
