"""Sink nodes of the foundation: files written whole or not at all."""

from __future__ import annotations

import glob
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from dp_assets.catalog.base import NodeContext, NodeType, Params


class FileWriterParams(Params):
    path: str = Field(description="Path relative to the writable 'data' root.")
    format: Literal["csv", "parquet", "json"] | None = Field(
        default=None, description="File format; default from the file suffix."
    )
    index: bool = False
    sep: str = ","
    orient: Literal["records", "split", "table", "columns"] = "records"
    lines: bool = False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(target: Path, max_age_seconds: float = 86_400) -> list[Path]:
    """Temporary files of ``target`` left by a writer that was killed (E5): its process is gone,
    or the file is older than a day (a writer on another machine)."""
    removed = []
    now = time.time()
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid_text = tmp.name[len(target.name) + 2 :].split(".", 1)[0]
        try:
            stale = (pid_text.isdigit() and not _pid_alive(int(pid_text))) or now - tmp.stat().st_mtime > max_age_seconds
        except FileNotFoundError:
            continue
        if stale:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_atomically(target: Path, write: Any) -> int:
    """Write through a temporary file in the same folder, then rename over the target.

    A crash or kill mid-write leaves the old file whole; the temporary file is removed on error,
    and one left by a killed writer (its pid is in the name) is removed by the next write (E5).
    """
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        size = tmp.stat().st_size
        os.replace(tmp, target)
        return size
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def file_writer(ctx: NodeContext, params: FileWriterParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Write the input to a CSV, Parquet or JSON file (``df.to_csv`` / ``to_parquet`` / ``to_json``).

    The write is atomic; the node's value is its input, so the file is an asset with lineage.
    """
    df: pd.DataFrame = inputs["input"]
    target = ctx.resource("files").resolve(params.path, "data", for_write=True)
    fmt = params.format or {".parquet": "parquet", ".pq": "parquet", ".json": "json",
                            ".jsonl": "json"}.get(target.suffix.lower(), "csv")
    writers = {
        "csv": lambda p: df.to_csv(p, index=params.index, sep=params.sep),
        "parquet": lambda p: df.to_parquet(p, index=params.index),
        "json": lambda p: df.to_json(p, orient=params.orient, lines=params.lines,
                                     index=params.index if params.orient in ("split", "table") else None),
    }
    size = write_atomically(target, writers[fmt])
    ctx.add_metadata(file=str(target), file_bytes=size)
    return df


NODE_TYPES = [
    NodeType("FileWriter", FileWriterParams, file_writer, "sink", resources=frozenset({"files"}),
             kinds=frozenset({"pandas", "file"}), side_effects=True,
             infer_schema=lambda params, inputs: inputs["input"]),
]
