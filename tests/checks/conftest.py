"""Flows written as spec files into an empty DP_FLOWS_DIR, loaded by the real code location."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def write_flow(folder: Path, spec: dict[str, Any]) -> None:
    (folder / f"{spec['id']}.json").write_text(json.dumps(spec))


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dp_home: Path) -> Path:
    """An empty flows folder as DP_FLOWS_DIR, on a fresh platform home."""
    folder = tmp_path / "flows"
    folder.mkdir()
    monkeypatch.setenv("DP_FLOWS_DIR", str(folder))
    return folder
