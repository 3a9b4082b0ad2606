"""The warm run launcher's templates, as tests find them: by the log each writes in
``DAGSTER_HOME/warm`` ("warm template PID ready ... at SOCKET") and whether that process lives."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.processes import pid_alive

READY = re.compile(r"warm template (\d+) ready .* at (\S+)$")


def ready_template(dagster_home: Path, other_than: int | None = None) -> tuple[int, str] | None:
    """A live, ready template of the instance at ``dagster_home`` (not ``other_than``): its pid
    and socket; None when there is none (yet)."""
    for log in (dagster_home / "warm").glob("*.log"):
        for line in reversed(log.read_text(errors="replace").splitlines()):
            ready = READY.search(line)
            if ready and int(ready.group(1)) != other_than and pid_alive(int(ready.group(1))):
                return int(ready.group(1)), ready.group(2)
    return None
