"""What the warm launcher's template imports for its run workers (``dp_assets.definitions.
prepare_run_worker``): everything a run's first node and first stored output import, the DuckDB
engine and the expression evaluator included, while the template stays safe to fork (no thread,
no network socket)."""

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
prepared = set(sys.modules)
# What a run's first FilterRows node does: a frame of strings (Arrow-backed) filtered by an expression.
import pandas as pd
from dp_assets.expressions import parse_expression
frame = pd.DataFrame({"region": ["EU", "US"], "amount": [3, 10]})
mask = parse_expression("amount >= params.min_amount and region != 'APAC'").evaluate_mask(frame, {"min_amount": 4})
print(json.dumps({"missing": [m for m in RUN_MODULES if m not in sys.modules],
                  "engine_was_imported_before": "dp_assets.engine.chain" in before,
                  "imported_by_first_node": sorted(set(sys.modules) - prepared),
                  "kept": int(mask.sum()),
                  "hazards": fork_hazards()}))
"""


def test_a_run_worker_has_the_engine_imported_and_the_template_can_still_fork() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["missing"] == []
    assert found["kept"] == 1
    assert found["imported_by_first_node"] == []  # a forked run worker pays for no import
    assert not found["engine_was_imported_before"]  # it is prepare_run_worker that imports it
    assert found["hazards"] == []
