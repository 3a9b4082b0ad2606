"""What the warm launcher's template imports for its run workers (``dp_assets.definitions.
prepare_run_worker``): everything a run's first node and first stored output import, the DuckDB
engine included, while the template stays safe to fork (no thread, no network socket)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from dp_assets.definitions import RUN_MODULES, prepare_run_worker
from dp_instance.warm_preload import fork_hazards
before = set(sys.modules)
prepare_run_worker()
print(json.dumps({"missing": [m for m in RUN_MODULES if m not in sys.modules],
                  "engine_was_imported_before": "dp_assets.engine.chain" in before,
                  "hazards": fork_hazards()}))
"""


def test_a_run_worker_has_the_engine_imported_and_the_template_can_still_fork() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["missing"] == []
    assert not found["engine_was_imported_before"]  # it is prepare_run_worker that imports it
    assert found["hazards"] == []
