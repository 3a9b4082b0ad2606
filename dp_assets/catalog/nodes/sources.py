"""Source nodes of the foundation: rows written in the spec, and files under a root."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import Field

from dp_assets.catalog.base import NO_INPUTS, ColumnSchema, NodeContext, NodeType, Params
from dp_assets.catalog.schema import schema_of

LogicalType = Literal["integer", "float", "string", "boolean", "datetime", "date", "any"]


class StaticDataParams(Params):
    rows: list[dict[str, Any]] = Field(default_factory=list, description="Records, one mapping per row.")
    dtype: dict[str, str] | None = Field(default=None, description="pandas dtype per column.")


def static_data(ctx: NodeContext, params: StaticDataParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Rows written in the spec, as a DataFrame (``pd.DataFrame.from_records``)."""
    df = pd.DataFrame.from_records(params.rows)
    return df.astype(params.dtype) if params.dtype else df


def static_data_schema(params: StaticDataParams, inputs: dict) -> ColumnSchema:
    return schema_of(static_data(None, params, {}))  # type: ignore[arg-type]


class FileInputParams(Params):
    path: str = Field(description="Path or glob relative to the root; several files are concatenated.")
    root: str = Field(default="data", description="Named file root ('data', or read-only 'flows').")
    format: Literal["csv", "parquet", "json"] | None = Field(
        default=None, description="File format; default from the file suffix."
    )
    sep: str = ","
    encoding: str = "utf-8"
    usecols: list[str] | None = None
    dtype: dict[str, str] | None = None
    parse_dates: list[str] | None = None
    lines: bool = Field(default=False, description="JSON Lines (one record per line).")
    columns: dict[str, LogicalType] | None = Field(
        default=None, description="Declared output schema, checked before runs and after reading."
    )


def _reader(params: FileInputParams, path: Any) -> pd.DataFrame:
    fmt = params.format or {".parquet": "parquet", ".pq": "parquet", ".json": "json",
                            ".jsonl": "json"}.get(path.suffix.lower(), "csv")
    if fmt == "parquet":
        return pd.read_parquet(path, columns=params.usecols)
    if fmt == "json":
        df = pd.read_json(path, lines=params.lines or path.suffix == ".jsonl", encoding=params.encoding,
                          dtype=params.dtype)
        return df[params.usecols] if params.usecols else df
    return pd.read_csv(path, sep=params.sep, encoding=params.encoding, usecols=params.usecols,
                       dtype=params.dtype, parse_dates=params.parse_dates)


def file_input(ctx: NodeContext, params: FileInputParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Read CSV, Parquet or JSON files (``pd.read_csv`` / ``read_parquet`` / ``read_json``)."""
    files = ctx.resource("files")
    paths = files.glob(params.path, params.root) if any(c in params.path for c in "*?[") else [
        files.resolve(params.path, params.root)
    ]
    if not paths:
        raise FileNotFoundError(f"no file matches '{params.path}' under the '{params.root}' root")
    frames = [_reader(params, path) for path in paths]
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if params.columns:
        missing = [c for c in params.columns if c not in df.columns]
        if missing:
            raise ValueError(f"file '{params.path}' lacks declared column(s): {', '.join(missing)}")
    ctx.add_metadata(files=[str(p) for p in paths])
    return df


NODE_TYPES = [
    NodeType("StaticData", StaticDataParams, static_data, "source", inputs=NO_INPUTS,
             infer_schema=static_data_schema),
    NodeType("FileInput", FileInputParams, file_input, "source", inputs=NO_INPUTS,
             resources=frozenset({"files"}), kinds=frozenset({"pandas", "file"}),
             infer_schema=lambda params, inputs: dict(params.columns) if params.columns else None),
]
