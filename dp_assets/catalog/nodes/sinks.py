"""Sink nodes of the foundation: files written whole or not at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from dp_assets.catalog.base import NodeContext, NodeType, Params
from dp_assets.catalog.nodes.sources import checked_path_text
from dp_assets.deferred import pd


class FileWriterParams(Params):
    path: str = Field(description="Path relative to the writable 'data' root.")
    format: Literal["csv", "parquet", "json"] | None = Field(
        default=None, description="File format; default from the file suffix."
    )
    index: bool = Field(default=False, description="Write the index as a column (to_csv / to_parquet's index).")
    sep: str = Field(default=",", description="CSV: the field separator.")
    orient: Literal["records", "split", "table", "columns"] = Field(
        default="records", description="JSON: the layout (to_json's orient)."
    )
    lines: bool = Field(default=False, description="JSON Lines: one record per line (orient records).")

    _path_text = field_validator("path")(lambda value: checked_path_text(value))


def write_atomically(target: Path, write: Any) -> int:
    """Write through a temporary file in the same folder, then rename over the target.

    The same writer the run outputs use (``dp_io.store.OutputStore``): a crash or kill mid-write
    leaves the old file whole, and a temporary file left by a killed writer is removed by the
    next write (E5). Only temporary files are cleaned here: the data root holds users' files.
    """
    from dp_io.store import OutputStore

    store = OutputStore(str(target.parent), fsync=True)
    store.atomic_write(str(target), write, cleanup=False)
    store.cleanup_directory(str(target.parent))
    return target.stat().st_size


def file_writer(ctx: NodeContext, params: FileWriterParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Write the input to a CSV, Parquet or JSON file (``df.to_csv`` / ``to_parquet`` / ``to_json``).

    The write is atomic; the node's value is its input, so the file is an asset with lineage.
    """
    df: pd.DataFrame = inputs["input"]
    where = f"flow '{ctx.flow_id}', node '{ctx.node_id}', params.path"
    target = ctx.resource("files").resolve(params.path, "data", for_write=True, where=where)
    fmt = params.format or {".parquet": "parquet", ".pq": "parquet", ".json": "json", ".jsonl": "json"}.get(
        target.suffix.lower(), "csv"
    )
    writers = {
        "csv": lambda p: df.to_csv(p, index=params.index, sep=params.sep),
        "parquet": lambda p: df.to_parquet(p, index=params.index),
        "json": lambda p: df.to_json(
            p,
            orient=params.orient,
            lines=params.lines,
            index=params.index if params.orient in ("split", "table") else None,
        ),
    }
    size = write_atomically(target, writers[fmt])
    ctx.add_metadata(file=str(target), file_bytes=size)
    return df


NODE_TYPES = [
    NodeType(
        "FileWriter",
        FileWriterParams,
        file_writer,
        "sink",
        resources=frozenset({"files"}),
        kinds=frozenset({"pandas", "file"}),
        side_effects=True,
        infer_schema=lambda params, inputs: inputs["input"],
    ),
]
