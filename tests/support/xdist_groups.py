"""How `make test` spreads the suite over pytest-xdist workers: whole modules, never single tests.

Most of the suite's time is spent waiting on real processes (a Dagster platform starting, a run,
a Celery stack); a module fixture starts such a stack once for its module. xdist's ``load`` mode
hands out single tests, and would start a module's stack on every worker that gets one of its
tests; its ``loadscope`` splits a module by class. Under ``--dist loadscope`` this suite's unit of
work is a module, and modules that use the same process-starting session fixture (the shared
``make run`` platform, the examples' platform, the deployment tests' webservers) form one unit,
so that fixture too starts once.

Which fixtures a test uses is known only where tests are collected, on the workers; the
scheduler runs in the controller and sees test ids. So each worker writes the unit of every test
id to a file the controller named (``pytest_configure_node``), and the scheduler reads it.
(xdist's ``loadgroup`` would carry a group in the test id, but with pytest 9 its suffix no
longer reaches the id.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

#: The mark of the tests that start real Dagster processes (pyproject's markers).
PROCESS_MARK = "e2e"
#: The key of the units file in a worker's ``workerinput``.
UNITS_FILE = "dp_units_file"
_FOLDER = pytest.StashKey[Path]()


def configure_node(node: Any) -> None:
    """In the controller, for each worker: where it writes the units of the tests it collected."""
    config = node.config
    if config.getoption("dist", None) != "loadscope":
        return
    if _FOLDER not in config.stash:
        folder = Path(tempfile.mkdtemp(prefix="dp-xdist-units-"))
        config.stash[_FOLDER] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    node.workerinput[UNITS_FILE] = str(config.stash[_FOLDER] / f"{node.gateway.id}.json")


def distributed(config: pytest.Config) -> bool:
    """Whether this is a worker of a run scheduled by :func:`module_scheduling`."""
    return UNITS_FILE in getattr(config, "workerinput", {})


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _session_fixtures(item: pytest.Item, names: Collection[str]) -> list[str]:
    """The fixtures among ``names`` that ``item`` uses at session scope, as '<conftest folder>:<name>'
    (a module fixture of the same name, as tests/partitions' ``platform``, is the module's own)."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    used = []
    for name in getattr(item, "fixturenames", ()):
        defs = definitions.get(name)
        if name in names and defs and defs[-1].scope == "session":
            used.append(f"{defs[-1].baseid or '.'}:{name}")
    return used


def units(items: list[pytest.Item], shared_fixtures: Collection[str]) -> dict[str, str]:
    """The unit of each test: its module, or, for a module that uses one of ``shared_fixtures`` at
    session scope, the fixture's name; modules linked through fixtures they share get one unit."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for item in items:
        for fixture in _session_fixtures(item, shared_fixtures):
            parent[root(_module(item))] = root(fixture)
    names: dict[str, set[str]] = {}
    for key in list(parent):
        if ":" in key:  # a fixture; test modules' ids have no ':'
            names.setdefault(root(key), set()).add(key.rsplit(":", 1)[1])
    found = {}
    for item in items:
        module = _module(item)
        found[item.nodeid] = "@" + "+".join(sorted(names[root(module)])) if module in parent else module
    return found


def record_units(config: pytest.Config, items: list[pytest.Item], shared_fixtures: Collection[str]) -> list[str]:
    """On a worker: write the unit of every collected test where the controller reads it, with the
    units that start Dagster processes first (they take longest; one of them handed out last would
    leave the other workers idle at the end). Returns the test ids in that order."""
    unit_of = units(items, shared_fixtures)
    starts_processes = {unit_of[item.nodeid] for item in items if item.get_closest_marker(PROCESS_MARK)}
    order = sorted(range(len(items)), key=lambda i: unit_of[items[i].nodeid] not in starts_processes)
    items[:] = [items[i] for i in order]
    target = Path(config.workerinput[UNITS_FILE])  # type: ignore[attr-defined]
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(unit_of))
    os.replace(partial, target)
    return [item.nodeid for item in items]


def module_scheduling(config: pytest.Config, log: Any) -> Any:
    """xdist's ``loadscope`` scheduling with the units the workers wrote (:func:`record_units`);
    None (xdist's own choice) for any other ``--dist``."""
    if config.getoption("dist", None) != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # the workers' order (record_units), not xdist's by size

    class ModuleScheduling(LoadScopeScheduling):
        unit_of: dict[str, str] = {}

        def schedule(self) -> None:
            if self.collection is None and _FOLDER in self.config.stash:
                written = sorted(self.config.stash[_FOLDER].glob("*.json"))
                self.unit_of = json.loads(written[0].read_text()) if written else {}
            super().schedule()

        def _split_scope(self, nodeid: str) -> str:
            return self.unit_of.get(nodeid) or nodeid.split("::", 1)[0]

    return ModuleScheduling(config, log)
