"""V6 (archive bombs, traversal members) and V7 (hostile CSV/JSON) for FileInput.

Compressed files and archives are not read at all (refused by name, and pandas' own decompression
is turned off); ``.xlsx`` files, which are zip containers, are checked member by member before
openpyxl opens them. Hostile text files end in a clear error that names the file, or a bounded
result when the params ask for one.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NodeContext
from dp_resources.files import FilesResource


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DP_FLOWS_DIR", "")
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def read(folder: Path, path: str, **params: Any) -> pd.DataFrame:
    node_type = default_catalog()["FileInput"]
    ctx = NodeContext("v7", "node", "run", {}, {"files": FilesResource(data_dir=str(folder))})
    return node_type.run(ctx, node_type.params_model.model_validate({"path": path, **params}), {})


# --- V6 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["data.csv.gz", "data.zip", "data.tar.gz", "data.json.bz2", "data.xz"])
def test_V6_compressed_files_are_refused(data: Path, name: str) -> None:
    (data / name).write_bytes(gzip.compress(b"a\n" + b"1\n" * 1000))
    with pytest.raises(ValueError, match="archives are not read"):
        read(data, name)


def test_V6_a_gzip_named_csv_is_not_decompressed(data: Path) -> None:
    """pandas' compression inference is off: a gzip bomb named .csv is read as bytes and refused."""
    (data / "bomb.csv").write_bytes(gzip.compress(b"\0" * 10_000_000))
    with pytest.raises(ValueError, match=r"bomb\.csv"):
        read(data, "bomb.csv")


def make_xlsx(path: Path, extra: dict[str, bytes] | None = None, compress: int = zipfile.ZIP_DEFLATED) -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1, 2], "b": ["x", None]}).to_excel(buffer, index=False, engine="openpyxl")
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", compress) as target:
        for item in source.infolist():
            target.writestr(item, source.read(item.filename))
        for name, content in (extra or {}).items():
            target.writestr(name, content)


def test_V6_a_plain_xlsx_reads_like_pandas(data: Path) -> None:
    make_xlsx(data / "ok.xlsx")
    pd.testing.assert_frame_equal(read(data, "ok.xlsx"), pd.read_excel(data / "ok.xlsx", engine="openpyxl"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"xl/media/bomb.bin": b"\0" * (300 * 1024 * 1024)}, "compresses|unpacks", id="V6-ratio-bomb"),
        pytest.param({"../../evil.txt": b"x"}, "escapes", id="V6-traversal-member"),
        pytest.param({"/etc/cron.d/evil": b"x"}, "escapes", id="V6-absolute-member"),
        pytest.param({f"m{i}": b"" for i in range(10_001)}, "members", id="V6-too-many-members"),
    ],
)
def test_V6_hostile_xlsx_is_refused(data: Path, extra: dict[str, bytes], message: str) -> None:
    make_xlsx(data / "bad.xlsx", extra)
    with pytest.raises(ValueError, match=message):
        read(data, "bad.xlsx")


def test_V6_not_a_zip(data: Path) -> None:
    (data / "fake.xlsx").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a valid xlsx"):
        read(data, "fake.xlsx")


# --- V7 --------------------------------------------------------------------------------------


def test_V7_huge_header_line(data: Path) -> None:
    (data / "wide.csv").write_bytes(b"a" * (2 * 1024 * 1024) + b"\n1\n")
    with pytest.raises(ValueError, match="header line is longer"):
        read(data, "wide.csv")


def test_V7_millions_of_columns(data: Path) -> None:
    (data / "cols.csv").write_bytes(b",".join(b"c%d" % i for i in range(20_000)) + b"\n")
    with pytest.raises(ValueError, match="over max_columns"):
        read(data, "cols.csv")
    (data / "cols.jsonl").write_text('{"a": 1}\n' + "{" + ",".join(f'"k{i}": 1' for i in range(20_000)) + "}\n")
    with pytest.raises(ValueError, match="over max_columns"):
        read(data, "cols.jsonl")


def test_V7_huge_data_line_is_an_error_or_bounded(data: Path) -> None:
    (data / "line.csv").write_bytes(b"a,b\n1,2\n" + b"x," * 3_000_000 + b"y\n")
    with pytest.raises(ValueError, match="could not be parsed"):
        read(data, "line.csv")
    assert read(data, "line.csv", on_bad_lines="skip").shape == (1, 2)
    with pytest.raises(ValueError, match="over max_bytes"):
        read(data, "line.csv", max_bytes=1_000_000)


def test_V7_bad_encoding(data: Path) -> None:
    (data / "latin.csv").write_bytes("name\ncafé\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not valid utf-8"):
        read(data, "latin.csv")
    replaced = read(data, "latin.csv", encoding_errors="replace")
    pd.testing.assert_frame_equal(replaced, pd.read_csv(data / "latin.csv", encoding_errors="replace"))
    assert read(data, "latin.csv", encoding="latin-1")["name"].tolist() == ["café"]


def test_V7_ragged_rows(data: Path) -> None:
    (data / "ragged.csv").write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n")
    with pytest.raises(ValueError, match=r"ragged\.csv could not be parsed|'ragged\.csv' could not be parsed"):
        read(data, "ragged.csv")
    expected = pd.read_csv(data / "ragged.csv", on_bad_lines="skip")
    pd.testing.assert_frame_equal(read(data, "ragged.csv", on_bad_lines="skip"), expected)


@pytest.mark.parametrize(
    ("content", "name"),
    [
        pytest.param("[" * 100_000 + "]" * 100_000, "deep.json", id="V7-deep-json"),
        pytest.param('{"a": [1, 2', "truncated.json", id="V7-truncated-json"),
        pytest.param("", "empty.csv", id="V7-empty-csv"),
    ],
)
def test_V7_broken_json_and_empty_files(data: Path, content: str, name: str) -> None:
    (data / name).write_text(content)
    with pytest.raises((ValueError, RecursionError)):
        read(data, name)
