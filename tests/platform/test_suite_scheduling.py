"""`make test` spreads each pytest session over xdist workers a module at a time
(tests/support/xdist_groups.py): a module's fixtures, and a session fixture that starts processes
for several modules, must start once, not once per worker. A small suite run for real with two
workers, with the suite's own hooks, shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO_ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import json, os
import pytest
from tests.support import xdist_groups

def pytest_collection_modifyitems(config, items):
    if xdist_groups.distributed(config):
        xdist_groups.record_units(config, items, {"platform"})

@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    xdist_groups.configure_node(node)

@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    return xdist_groups.module_scheduling(config, log)

def _started(what):
    with open(os.environ["STARTS"], "a") as log:
        log.write(json.dumps([what, os.environ.get("PYTEST_XDIST_WORKER")]) + "\\n")

@pytest.fixture(scope="session")
def platform():
    _started("platform")

@pytest.fixture(scope="module")
def stack(request):
    _started(request.module.__name__)
"""

SHARING = "def test_{n}(platform, stack):\n    pass\n"
ALONE = "def test_{n}_one(stack):\n    pass\n\ndef test_{n}_two(stack):\n    pass\n"
CLASSES = "class TestOne:\n    def test_a(self, stack):\n        pass\n\nclass TestTwo:\n    def test_b(self, stack):\n        pass\n"


def test_modules_and_the_modules_sharing_a_process_fixture_each_run_on_one_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    starts = tmp_path / "starts.jsonl"
    monkeypatch.setenv("STARTS", str(starts))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    pytester.makeconftest(CONFTEST)
    # Plain loadscope would hand test_a and test_b (next to each other) to different workers,
    # and split test_classes by class: each would start its fixture twice.
    pytester.makepyfile(
        test_a=SHARING.format(n="a"),
        test_b=SHARING.format(n="b"),
        test_c=ALONE.format(n="c"),
        test_d=ALONE.format(n="d"),
        test_classes=CLASSES,
    )
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadscope", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    started = [tuple(json.loads(line)) for line in starts.read_text().splitlines()]
    names = [name for name, _ in started]
    assert sorted(names) == ["platform", "test_a", "test_b", "test_c", "test_classes", "test_d"], started
    assert len({worker for _, worker in started}) == 2, f"both workers were used: {started}"
    workers = dict(started)
    assert workers["platform"] == workers["test_a"] == workers["test_b"], started
