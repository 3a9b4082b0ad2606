"""Importing the code location's package is cheap, and generated docs are current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dp_assets.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_import_has_no_heavy_side_effects(tmp_path):
    """`import dp_assets.definitions` opens no database and compiles nothing until Dagster asks."""
    code = (
        "import sys, dp_assets, dp_assets.definitions, dp_sensors, dp_io, dp_resources\n"
        "assert 'sqlalchemy.dialects.sqlite' not in sys.modules, 'a database was opened at import'\n"
        "import os; assert not os.path.exists(os.environ['DP_HOME']), 'files were written at import'\n"
    )
    env = {"DP_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)


def test_docs_nodes_md_is_current():
    result = CliRunner().invoke(main, ["docs", "--check"])
    assert result.exit_code == 0, result.output


def test_schema_command_prints_the_json_schema():
    import json

    result = CliRunner().invoke(main, ["schema"])
    schema = json.loads(result.output)
    assert schema["title"] == "dp-platform flow spec"
    assert "StaticDataNode" in json.dumps(schema["$defs"])
