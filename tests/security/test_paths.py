"""V3: file paths from specs stay under the configured roots, for FileInput and FileWriter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NodeContext
from dp_resources.files import FilesResource, PathNotAllowed


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FilesResource, Path]:
    data = tmp_path / "data"
    data.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("secret\nleaked\n")
    (data / "link_out").symlink_to(outside)
    (data / "secret_link.csv").symlink_to(outside / "secret.csv")
    (data / "ok.csv").write_text("a\n1\n")
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster"))
    (data / "dagster").mkdir()
    (data / "dagster" / "runs.csv").write_text("run\n1\n")
    monkeypatch.setenv("DP_FLOWS_DIR", "")
    return FilesResource(data_dir=str(data)), outside


def run(type_name: str, params: dict[str, Any], inputs: dict[str, Any], files: FilesResource) -> Any:
    node_type = default_catalog()[type_name]
    ctx = NodeContext("v3", "node", "run", {}, {"files": files})
    return node_type.run(ctx, node_type.params_model.model_validate(params), inputs)


BAD_PATHS = [
    pytest.param("../outside/secret.csv", id="V3-dotdot"),
    pytest.param("sub/../../outside/secret.csv", id="V3-nested-dotdot"),
    pytest.param("/etc/passwd", id="V3-absolute"),
    pytest.param("link_out/secret.csv", id="V3-symlinked-folder"),
    pytest.param("secret_link.csv", id="V3-symlinked-file"),
    pytest.param("dagster/runs.csv", id="V3-dagster-storage"),
    pytest.param("../*/secret.csv", id="V3-glob-dotdot"),
    pytest.param("link_out/*.csv", id="V3-glob-through-symlink"),
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_V3_file_input_refuses_paths_outside_the_root(roots: Any, path: str) -> None:
    files, _ = roots
    with pytest.raises((PathNotAllowed, FileNotFoundError)):
        run("FileInput", {"path": path}, {}, files)


@pytest.mark.parametrize("path", BAD_PATHS[:6])
def test_V3_file_writer_refuses_paths_outside_the_root(roots: Any, path: str) -> None:
    files, outside = roots
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    with pytest.raises(PathNotAllowed):
        run("FileWriter", {"path": path}, {"input": pd.DataFrame({"x": [1]})}, files)
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before


def test_V3_unknown_and_read_only_roots(roots: Any) -> None:
    files, outside = roots
    with pytest.raises(PathNotAllowed, match="unknown file root"):
        run("FileInput", {"path": "ok.csv", "root": "etc"}, {}, files)
    ro = FilesResource(data_dir=files.data_dir, read_roots={"shared": str(outside)})
    assert run("FileInput", {"path": "secret.csv", "root": "shared"}, {}, ro)["secret"].tolist() == ["leaked"]
    with pytest.raises(PathNotAllowed, match="read-only"):
        ro.resolve("x.csv", "shared", for_write=True)
    assert os.path.exists(outside / "secret.csv")
