from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def flows_dir(tmp_path, monkeypatch, dp_home) -> Path:
    """A copy of the example flows in a temporary DP_FLOWS_DIR."""
    folder = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", folder)
    monkeypatch.setenv("DP_FLOWS_DIR", str(folder))
    return folder
