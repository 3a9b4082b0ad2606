"""S7: the lock file pins every dependency, at or above the fixes of known advisories.

No advisory database is reachable from these machines, so the floors are kept here by hand;
deployments that can reach one run `pip-audit -r requirements.lock` (docs/deploy.md).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FLOORS = {  # package -> first fixed version of a published advisory
    "restrictedpython": "8.4",
    "dagster": "1.10.16",
    "dagster-webserver": "1.10.16",
    "starlette": "0.40.0",
    "jinja2": "3.1.6",
    "h11": "0.16.0",
    "requests": "2.32.4",
    "urllib3": "2.5.0",
}


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if match:
            pins[re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")] = match.group(2)
    return pins


def test_S7_every_dependency_is_pinned():
    pins = locked()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [*declared["dependencies"], *declared["optional-dependencies"]["dev"]]
    for requirement in names:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in requirements.lock (run `make lock`)"
    lines = [
        line
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith((" ", "#"))
    ]
    assert all("==" in line for line in lines), "every line of the lock file pins one exact version"


@pytest.mark.parametrize("package,floor", sorted(FLOORS.items()))
def test_S7_pins_are_above_advisory_fixes(package, floor):
    pins = locked()
    if package not in pins:
        pytest.skip(f"{package} is not a dependency")
    assert Version(pins[package]) >= Version(floor), f"{package} {pins[package]} is below {floor}"
