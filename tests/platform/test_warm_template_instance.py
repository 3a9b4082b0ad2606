"""The warm template opens the Dagster instance once and its run workers execute on copies of it
(``dp_instance.warm_preload.open_instance``): what makes that safe, on real storage.

In a process of its own (as a template is), on the embedded default's SQLite storage and on the
production storage class over PostgreSQL: after the template's own use of the instance and
``close_database_pools``, the process holds no thread and no network connection a fork would
share (``fork_hazards``), and forked children each write through their copy of the instance while
the parent reads and writes through the original; every write arrives.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import PYTHON, REPO_ROOT, base_env

pytestmark = [pytest.mark.e2e]

CHILDREN = 3


def template_like(home: str) -> None:
    """Run in a fresh process: open the instance as the template does, use it, fork children."""
    import os

    from dagster import DagsterEventType, EventRecordsFilter
    from dagster._core.instance.ref import InstanceRef

    from dp_instance.warm_preload import close_database_pools, fork_hazards, open_instance

    instance = open_instance(InstanceRef.from_dir(home))
    assert instance is not None
    # Its warm-up (``warm_instance``) only reads: the history is as empty as before.
    untouched = not instance.get_run_records() and not instance.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.ASSET_MATERIALIZATION), limit=1
    )
    storage = instance.run_storage
    storage.set_cursor_values({"template": "before fork"})  # the template's own connection
    close_database_pools()
    hazards = fork_hazards()
    children = []
    for number in range(CHILDREN):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with instance:
                    instance.run_storage.set_cursor_values({f"child {number}": str(os.getpid())})
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    storage.set_cursor_values({"template": "after fork"})
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    keys = {"template", *(f"child {n}" for n in range(CHILDREN))}
    values = storage.get_cursor_values(keys)
    print(json.dumps({"hazards": hazards, "codes": codes, "values": values, "untouched": untouched}))


def _run_template_like(home: Path) -> dict:
    done = subprocess.run(
        [
            PYTHON,
            "-c",
            f"from tests.platform.test_warm_template_instance import template_like; template_like({str(home)!r})",
        ],
        env=base_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("storage", ["embedded", "postgres"])
def test_children_of_a_template_with_an_opened_instance_each_use_their_own_connections(
    storage: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from dp_assets.cli.home import local_storage

    home = tmp_path / "dagster"
    home.mkdir()
    if storage == "postgres":
        url = request.getfixturevalue("postgres_url")
        text = (
            "storage:\n  custom:\n    module: dp_instance.pg_storage\n"
            f"    class: ResilientPostgresStorage\n    config:\n      postgres_url: {url}\n"
        )
    else:
        text = local_storage(home)
    (home / "dagster.yaml").write_text(text + "telemetry:\n  enabled: false\n")

    found = _run_template_like(home)

    assert found["hazards"] == []
    assert found["untouched"]
    assert found["codes"] == [0] * CHILDREN
    values = found["values"]
    assert values["template"] == "after fork"
    assert sorted(k for k in values if k.startswith("child")) == [f"child {n}" for n in range(CHILDREN)]
