"""`dp --help` lists every command without importing them, and lists them as click would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from dp_assets.cli import COMMANDS, SUMMARIES, main

ROOT = Path(__file__).resolve().parents[2]

IMPORTED_AFTER = """
import sys
from dp_assets.cli import main
try:
    main(sys.argv[1:], prog_name="dp")
except SystemExit:
    pass
heavy = ("dagster", "pandas", "sqlalchemy", "numpy", "httpx", "dp_resources.store")
print("imported:" + ",".join(sorted(name for name in heavy if name in sys.modules)))
"""


def _imported_by(*args: str, home: Path | None = None) -> set[str]:
    env = {**os.environ, "DP_HOME": str(home)} if home is not None else None
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED_AFTER, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("imported:"), done.stdout
    return set(filter(None, last.removeprefix("imported:").split(",")))


def test_each_summary_is_the_first_sentence_of_its_command_help():
    """`dp --help` shows SUMMARIES; a command whose help changed and whose summary did not would
    be listed with stale words."""
    context = click.Context(main)
    assert set(SUMMARIES) == set(COMMANDS)
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert SUMMARIES[name] == command.get_short_help_str(limit=1000), name


def test_help_lists_every_command_as_click_would_without_importing_them():
    stock = click.Group("dp", help=main.help)
    context = click.Context(main)
    for name in COMMANDS:
        stock.add_command(main.get_command(context, name), name)
    expected = stock.get_help(click.Context(stock, info_name="dp"))
    assert main.get_help(click.Context(main, info_name="dp")) == expected

    assert _imported_by("--help") == set()


def test_validate_of_a_file_does_not_open_the_flow_store(tmp_path):
    """`dp validate FILE` needs the catalog and Dagster (it compiles the flow), not the store nor
    pandas (the node modules import it when a node runs); a version that compiled before is not
    compiled again, so the second `dp validate` of an unchanged file does not import Dagster."""
    spec = str(ROOT / "flows" / "sales_summary.yaml")
    first = _imported_by("validate", spec, home=tmp_path)
    assert "dagster" in first
    assert not first & {"sqlalchemy", "dp_resources.store", "httpx", "pandas", "numpy"}
    assert _imported_by("validate", spec, home=tmp_path) == set()
