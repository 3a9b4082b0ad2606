"""FileInput and FileWriter against pandas, and E5: a FileWriter killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from node_helpers import make_ctx, run_node

from dp_resources.files import FilesResource


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FilesResource:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DP_FLOWS_DIR", "")
    (tmp_path / "data").mkdir()
    return FilesResource(data_dir=str(tmp_path / "data"))


def sample() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3], "region": ["EU", None, "US"], "amount": [1.5, None, 3.0]})


READS = [
    pytest.param("a.csv", lambda df, p: df.to_csv(p, index=False), {}, lambda p: pd.read_csv(p), id="FileInput-csv"),
    pytest.param("a.parquet", lambda df, p: df.to_parquet(p), {}, lambda p: pd.read_parquet(p), id="FileInput-parquet"),
    pytest.param(
        "a.jsonl",
        lambda df, p: df.to_json(p, orient="records", lines=True),
        {},
        lambda p: pd.read_json(p, lines=True),
        id="FileInput-jsonl",
    ),
    pytest.param(
        "a.xlsx",
        lambda df, p: df.to_excel(p, index=False),
        {"sheet_name": "Sheet1"},
        lambda p: pd.read_excel(p, sheet_name="Sheet1"),
        id="FileInput-excel",
    ),
    pytest.param(
        "a.tsv",
        lambda df, p: df.to_csv(p, index=False, sep="\t"),
        {"format": "csv", "sep": "\t", "usecols": ["id", "amount"]},
        lambda p: pd.read_csv(p, sep="\t", usecols=["id", "amount"]),
        id="FileInput-tsv-usecols",
    ),
]


@pytest.mark.parametrize(("name", "write", "params", "expected"), READS)
def test_file_input_matches_pandas(files: FilesResource, name: str, write: Any, params: dict, expected: Any) -> None:
    path = Path(files.data_dir) / name
    write(sample(), path)
    result = run_node("FileInput", {"path": name, **params}, {}, make_ctx(resources={"files": files}))
    pd.testing.assert_frame_equal(result, expected(path))


def test_file_input_glob_concatenates_in_name_order(files: FilesResource) -> None:
    folder = Path(files.data_dir) / "daily"
    folder.mkdir()
    parts = [sample().assign(day=d) for d in ("2024-01-02", "2024-01-01")]
    for part in parts:
        part.to_csv(folder / f"{part['day'][0]}.csv", index=False)
    result = run_node("FileInput", {"path": "daily/*.csv"}, {}, make_ctx(resources={"files": files}))
    expected = pd.concat([pd.read_csv(p) for p in sorted(folder.glob("*.csv"))], ignore_index=True)
    pd.testing.assert_frame_equal(result, expected)


def test_file_writer_round_trips(files: FilesResource) -> None:
    df = sample().assign(at=pd.to_datetime(["2024-01-01"] * 3).tz_localize("Europe/Berlin"))
    run_node("FileWriter", {"path": "out/x.parquet"}, {"input": df}, make_ctx(resources={"files": files}))
    pd.testing.assert_frame_equal(pd.read_parquet(Path(files.data_dir) / "out/x.parquet"), df)


WRITER = """
import sys, pandas as pd
from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NodeContext
from dp_resources.files import FilesResource
node = default_catalog()["FileWriter"]
df = pd.DataFrame({"x": range(3_000_000), "y": ["some text"] * 3_000_000})
ctx = NodeContext("e5", "w", "r", {}, {"files": FilesResource(data_dir=sys.argv[1])})
node.run(ctx, node.params_model(path="out.csv"), {"input": df})
"""


@pytest.mark.fault
def test_E5_file_writer_killed_mid_write(files: FilesResource, tmp_path: Path) -> None:
    """E5: kill -9 mid-write leaves the old file; the next write removes the stray temporary file."""
    data = Path(files.data_dir)
    old = pd.DataFrame({"x": [1, 2], "y": ["old", "old"]})
    old.to_csv(data / "out.csv", index=False)
    env = {**os.environ, "DAGSTER_HOME": "", "DP_FLOWS_DIR": ""}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(data)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not [p for p in data.glob(".out.csv.*.tmp") if p.stat().st_size > 100_000]:
            assert proc.poll() is None, "the writer ended before it could be killed"
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert list(data.glob(".out.csv.*.tmp")), "the killed writer left its temporary file (as expected)"
    pd.testing.assert_frame_equal(pd.read_csv(data / "out.csv"), old)
    new = pd.DataFrame({"x": [3], "y": ["new"]})
    run_node("FileWriter", {"path": "out.csv"}, {"input": new}, make_ctx(resources={"files": files}))
    pd.testing.assert_frame_equal(pd.read_csv(data / "out.csv"), new)
    assert sorted(p.name for p in data.iterdir()) == ["out.csv"]
