"""V3: file paths from specs stay under the configured roots, for FileInput and FileWriter.

Every path goes through one resolver (``FilesResource.resolve``/``glob``); whatever the text (NUL
bytes, over-long names, lone surrogates, ``..``, symlinks out of the root or in a loop, Dagster's
storage folder), it answers a path under the root or ``PathNotAllowed`` naming where the path came
from, never a bare ``OSError``/``ValueError``, and nothing outside the root is read or written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NodeContext
from dp_resources.files import FilesResource, PathNotAllowed
from tests.fuzzing import SLOW_CHECKS, fuzz_settings

WHERE = "flow 'v3', node 'node', params.path"


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FilesResource, Path]:
    data = tmp_path / "data"
    data.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("secret\nleaked\n")
    (data / "link_out").symlink_to(outside)
    (data / "secret_link.csv").symlink_to(outside / "secret.csv")
    (data / "loop").symlink_to(data / "loop")
    (data / "loop_a").symlink_to(data / "loop_b")
    (data / "loop_b").symlink_to(data / "loop_a")
    (data / "ok.csv").write_text("a\n1\n")
    (data / "sub").mkdir()
    (data / "sub" / "in.csv").write_text("a\n2\n")
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

# Text that the operating system or pathlib used to answer with an unhandled error.
HOSTILE_PATHS = [
    pytest.param("ok\x00.csv", id="V3-nul-byte"),
    pytest.param("\x00", id="V3-only-nul"),
    pytest.param("a" * 300 + ".csv", id="V3-name-too-long"),
    pytest.param("/".join(["d" * 200] * 30), id="V3-path-too-long"),
    pytest.param("bad\ud800.csv", id="V3-lone-surrogate"),
    pytest.param("loop/x.csv", id="V3-symlink-loop"),
    pytest.param("loop_a", id="V3-symlink-ring"),
    pytest.param("", id="V3-empty"),
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_V3_file_input_refuses_paths_outside_the_root(roots: Any, path: str) -> None:
    files, _ = roots
    with pytest.raises((PathNotAllowed, FileNotFoundError, ValidationError)):
        run("FileInput", {"path": path}, {}, files)


@pytest.mark.parametrize("path", BAD_PATHS[:6])
def test_V3_file_writer_refuses_paths_outside_the_root(roots: Any, path: str) -> None:
    files, outside = roots
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    with pytest.raises((PathNotAllowed, ValidationError)):
        run("FileWriter", {"path": path}, {"input": pd.DataFrame({"x": [1]})}, files)
    with pytest.raises(PathNotAllowed):
        files.resolve(path, for_write=True)
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("path", HOSTILE_PATHS)
@pytest.mark.parametrize("for_write", [False, True], ids=["read", "write"])
def test_V3_hostile_path_text_is_a_clear_error_naming_where(roots: Any, path: str, for_write: bool) -> None:
    """NUL bytes, over-long names, loops: ``PathNotAllowed`` that names the field, not an OSError."""
    files, _ = roots
    with pytest.raises(PathNotAllowed, match=f"^{WHERE}: "):
        files.resolve(path, for_write=for_write, where=WHERE)


@pytest.mark.parametrize("path", HOSTILE_PATHS)
@pytest.mark.parametrize("node", ["FileInput", "FileWriter"])
def test_V3_hostile_path_in_a_node_fails_validation_or_names_the_node(roots: Any, path: str, node: str) -> None:
    files, _ = roots
    inputs = {"input": pd.DataFrame({"x": [1]})} if node == "FileWriter" else {}
    with pytest.raises((ValidationError, PathNotAllowed)) as caught:
        run(node, {"path": path}, inputs, files)
    if isinstance(caught.value, PathNotAllowed):
        assert str(caught.value).startswith(WHERE)
    else:
        assert caught.value.errors()[0]["loc"] == ("path",)


def test_V3_folder_and_missing_file_name_the_node(roots: Any) -> None:
    files, _ = roots
    with pytest.raises(FileNotFoundError, match=f"^{WHERE}: 'sub' .* is a folder"):
        run("FileInput", {"path": "sub"}, {}, files)
    with pytest.raises(FileNotFoundError, match=f"^{WHERE}: 'nope.csv' .* does not exist"):
        run("FileInput", {"path": "nope.csv"}, {}, files)
    with pytest.raises(PathNotAllowed, match="is a folder"):
        run("FileWriter", {"path": "sub"}, {"input": pd.DataFrame({"x": [1]})}, files)


def test_V3_glob_with_many_double_stars_is_refused(roots: Any) -> None:
    """Each further ``**`` multiplies the folders walked; one reaches any depth."""
    files, _ = roots
    with pytest.raises(PathNotAllowed, match="'\\*\\*' once"):
        files.glob("**/**/**/**/**/*.csv", where=WHERE)
    assert [p.name for p in files.glob("sub/**/*.csv")] == ["in.csv"]


def test_V3_unknown_and_read_only_roots(roots: Any) -> None:
    files, outside = roots
    with pytest.raises(PathNotAllowed, match="unknown file root"):
        run("FileInput", {"path": "ok.csv", "root": "etc"}, {}, files)
    ro = FilesResource(data_dir=files.data_dir, read_roots={"shared": str(outside)})
    assert run("FileInput", {"path": "secret.csv", "root": "shared"}, {}, ro)["secret"].tolist() == ["leaked"]
    with pytest.raises(PathNotAllowed, match="read-only"):
        ro.resolve("x.csv", "shared", for_write=True)
    assert os.path.exists(outside / "secret.csv")


# --- property tests -----------------------------------------------------------------------------

SEGMENTS = [
    "..",
    ".",
    "",
    "link_out",
    "secret_link.csv",
    "loop",
    "loop_a",
    "dagster",
    "ok.csv",
    "sub",
    "in.csv",
    "*",
    "**",
    "*.csv",
    "~",
    "\x00",
    "a" * 256,
    "é" * 130,
    "\ud800",
    "new.csv",
]
path_texts = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=8)), min_size=1, max_size=8).map("/".join),
    st.builds(
        lambda lead, rest: lead + rest,
        st.sampled_from(["/", "//", "./", "../", "\\", "~/"]),
        st.lists(st.sampled_from(SEGMENTS), max_size=4).map("/".join),
    ),
    st.integers(200, 5000).map(lambda n: "x" * n),
)
PROPERTY = fuzz_settings(150, suppress_health_check=[*SLOW_CHECKS, HealthCheck.function_scoped_fixture])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@PROPERTY
# 2,000 new folders fit in PATH_MAX, and mkdir(parents=True) recursed once per folder: a bare
# RecursionError from the write (found by a long fuzzing run's hand-written follow-up).
@example(path="a/" * 2000 + "x", for_write=True)
@given(path=path_texts, for_write=st.booleans())
def test_V3_property_resolver_answers_a_path_under_the_root_or_a_named_refusal(
    roots: Any, path: str, for_write: bool
) -> None:
    """V3 property: for any text, ``resolve`` returns a real path inside the data root and outside
    Dagster's storage, or raises ``PathNotAllowed`` starting with ``where``; nothing else."""
    files, outside = roots
    base = Path(files.data_dir).resolve()
    before = _snapshot(outside)
    try:
        target = files.resolve(path, for_write=for_write, where=WHERE)
    except PathNotAllowed as exc:
        assert str(exc).startswith(f"{WHERE}: ")
    else:
        assert target.is_relative_to(base) and not target.is_relative_to(base / "dagster")
        assert os.path.realpath(target) == str(target)
    assert _snapshot(outside) == before


@PROPERTY
@given(path=path_texts)
def test_V3_property_file_nodes_read_and_write_only_under_the_root(roots: Any, path: str) -> None:
    """V3 property: FileInput and FileWriter with any ``path`` fail validation on the field, or
    raise an error naming the node, or touch only files under the root."""
    files, outside = roots
    before = _snapshot(outside)
    for node, inputs in (("FileInput", {}), ("FileWriter", {"input": pd.DataFrame({"x": [1]})})):
        try:
            result = run(node, {"path": path}, inputs, files)
        except ValidationError as exc:
            assert exc.errors()[0]["loc"][0] == "path"
        except (PathNotAllowed, FileNotFoundError) as exc:
            assert str(exc).startswith(f"{WHERE}: ")
        else:
            assert "leaked" not in result.to_csv()
    assert _snapshot(outside) == before


@PROPERTY
@example(pattern=".")  # no part to match: pathlib's glob raised a bare IndexError
@example(pattern="./.")
@given(pattern=path_texts)
def test_V3_property_glob_answers_files_under_the_root_or_a_named_refusal(roots: Any, pattern: str) -> None:
    """V3 property: for any pattern, ``glob`` returns files inside the data root and outside
    Dagster's storage, or raises ``PathNotAllowed`` starting with ``where``; nothing else."""
    files, _ = roots
    base = Path(files.data_dir).resolve()
    try:
        found = files.glob(pattern, where=WHERE)
    except PathNotAllowed as exc:
        assert str(exc).startswith(f"{WHERE}: ")
    else:
        assert all(p.is_relative_to(base) and not p.is_relative_to(base / "dagster") for p in found)
