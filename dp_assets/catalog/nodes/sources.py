"""Source nodes of the foundation: files under a root (``FileInput``); rows written in the spec are
``sources_static``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dp_assets.catalog.base import (
    NO_INPUTS,
    ColumnSchema,
    FrameStream,
    NodeContext,
    NodeType,
    Params,
)
from dp_assets.catalog.conversions import convert_declared, declared_read_dtypes
from dp_assets.catalog.dtypes import DtypeName
from dp_assets.catalog.nodes.first_rows import csv_types_fixed, read_csv_head, read_parquet_head, row_limit
from dp_assets.catalog.schema import schema_of
from dp_assets.deferred import pd

LogicalType = Literal["integer", "float", "string", "boolean", "datetime", "date", "any"]

ARCHIVE_SUFFIXES = (".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".tar", ".7z", ".rar", ".lz4", ".br")
FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".xlsx": "excel",
    ".xlsm": "excel",
}


class FileInputParams(Params):
    path: str = Field(description="Path or glob relative to the root; several files are concatenated.")
    root: str = Field(default="data", description="Named file root ('data', or read-only 'flows').")
    format: Literal["csv", "parquet", "json", "excel"] | None = Field(
        default=None, description="File format; default from the file suffix (.xlsx is excel)."
    )
    sep: str = Field(default=",", description="CSV: the field separator (read_csv's sep), e.g. '\\t' or ';'.")
    encoding: str = Field(default="utf-8", description="CSV and JSON: the text encoding of the file.")
    encoding_errors: Literal["strict", "replace", "ignore"] = Field(
        default="strict", description="What to do with bytes that are not valid in `encoding`."
    )
    on_bad_lines: Literal["error", "skip", "warn"] = Field(
        default="error", description="CSV rows with too many fields: fail, drop them, or drop and log."
    )
    usecols: list[str] | None = Field(
        default=None,
        description="Read only these columns (read_csv / read_excel / read_parquet's usecols or columns); default all.",
    )
    dtype: dict[str, DtypeName] | None = Field(
        default=None,
        description="pandas dtype per column (an allow-listed name: docs/flow-spec.md). A "
        "column declared in `columns` is converted to its declared type after this.",
    )
    parse_dates: list[str] | None = Field(
        default=None,
        description="CSV and Excel: columns parsed as dates by pandas (read_csv's parse_dates); "
        "a `columns` declaration of datetime does the same for every format.",
    )
    lines: bool = Field(default=False, description="JSON Lines (one record per line).")
    sheet_name: str | int = Field(default=0, description="Excel sheet, by name or position.")
    columns: dict[str, LogicalType] | None = Field(
        default=None,
        description="Declared output schema, column -> integer, float, string, boolean, "
        "datetime, date or any: checked before runs, and each column is converted on read (integer is "
        "nullable Int64, boolean nullable boolean, date datetime.date values); a value that does not "
        "convert fails the run naming the flow, node, column and value (docs/flow-spec.md, Declared columns).",
    )
    max_bytes: int = Field(default=1 << 30, gt=0, description="Largest file read (hostile-file guard).")
    max_columns: int = Field(default=10_000, gt=0, description="Most columns a file may have.")
    chunksize: int | None = Field(default=None, gt=0, description="CSV only: parse this many rows at a time.")
    stream: bool = Field(
        default=False,
        description="CSV only: store the output part by part as it is parsed, one stored part per chunk "
        "(needs chunksize): the step holds one chunk at a time while storing it; dependants get the "
        "whole frame (docs/io.md, Streams).",
    )

    _path_text = field_validator("path")(lambda value: checked_path_text(value))

    @model_validator(mode="after")
    def _stream_needs_chunks(self) -> FileInputParams:
        if self.stream and not self.chunksize:
            raise ValueError("stream: true needs chunksize (the rows of each stored part)")
        return self


def checked_path_text(value: str) -> str:
    """The path's text checked before any run (NUL bytes, '..', absolute, over-long names):
    the same rules the files resource applies again to the rendered path at run time (V3)."""
    from dp_resources.paths import path_error

    problem = path_error(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _format(params: FileInputParams, path: Any) -> str:
    name = path.name.lower()
    if name.endswith(ARCHIVE_SUFFIXES):
        raise ValueError(
            f"file '{path.name}': compressed files and archives are not read (archive bombs, V6); "
            "store it uncompressed or as Parquet"
        )
    return params.format or FORMATS.get(path.suffix.lower(), "csv")


def _check_csv_header(params: FileInputParams, path: Any) -> None:
    """The first line must be reasonably short and not have more than ``max_columns`` fields."""
    limit = 1 << 20
    with open(path, "rb") as handle:
        head = handle.read(limit + 1)
    line = head.split(b"\n", 1)[0]
    if len(line) > limit:
        raise ValueError(f"file '{path.name}': the header line is longer than {limit} bytes; not a sane CSV")
    fields = line.count(params.sep.encode(params.encoding, errors="replace") or b",") + 1
    if fields > params.max_columns:
        raise ValueError(f"file '{path.name}' has {fields} columns, over max_columns {params.max_columns}")


def _read_excel(params: FileInputParams, path: Any) -> pd.DataFrame:
    from dp_assets.catalog.nodes.archives import check_zip_container

    check_zip_container(path)
    try:
        dtype = declared_read_dtypes(params.columns, params.dtype, params.parse_dates)
        return pd.read_excel(
            path,
            sheet_name=params.sheet_name,
            usecols=params.usecols,
            dtype=dtype,
            parse_dates=params.parse_dates or False,
            engine="openpyxl",
        )
    except ImportError:
        raise ValueError("reading Excel needs the openpyxl package, which is not installed") from None


def _checked_format(params: FileInputParams, path: Any) -> str:
    fmt = _format(params, path)
    size = path.stat().st_size
    if size > params.max_bytes:
        raise ValueError(f"file '{path.name}' has {size} bytes, over max_bytes {params.max_bytes}")
    if params.chunksize and fmt != "csv":
        raise ValueError(f"file '{path.name}' is {fmt}: chunksize and stream read CSV files only")
    return fmt


def _csv_options(params: FileInputParams) -> dict[str, Any]:
    dtype = declared_read_dtypes(params.columns, params.dtype, params.parse_dates)
    return {
        "sep": params.sep,
        "encoding": params.encoding,
        "usecols": params.usecols,
        "dtype": dtype,
        "parse_dates": params.parse_dates,
        "compression": None,
        "encoding_errors": params.encoding_errors,
        "on_bad_lines": params.on_bad_lines,
    }


def _date_like_name(name: str) -> bool:
    """read_json's rule for the columns it turns into dates by name (``keep_default_dates``)."""
    lowered = name.lower()
    return (
        lowered.endswith(("_at", "_time"))
        or lowered.startswith("timestamp")
        or lowered in ("modified", "date", "datetime")
    )


def _read_json(params: FileInputParams, path: Any) -> pd.DataFrame:
    declared = params.columns or {}
    # read_json turns columns named like dates ('updated_at') into dates whatever their dtype;
    # when one is declared as something else, the file is read without guessing (pandas' own
    # advice, dtype=False) and the spec's dtype applied after.
    guessed = any(_date_like_name(c) and kind not in ("datetime", "date", "any") for c, kind in declared.items())
    dtype = False if guessed else declared_read_dtypes(declared, params.dtype)
    df = pd.read_json(
        path,
        lines=params.lines or path.suffix == ".jsonl",
        encoding=params.encoding,
        encoding_errors=params.encoding_errors,
        dtype=dtype,
        compression=None,
    )
    if guessed and params.dtype:
        df = df.astype({c: t for c, t in params.dtype.items() if c in df.columns})
    return df[params.usecols] if params.usecols else df


def _reader(params: FileInputParams, path: Any) -> pd.DataFrame:
    fmt = _checked_format(params, path)
    if fmt == "parquet":
        return pd.read_parquet(path, columns=params.usecols)
    if fmt == "excel":
        return _read_excel(params, path)
    if fmt == "json":
        return _read_json(params, path)
    _check_csv_header(params, path)
    if params.chunksize:
        return pd.concat(_csv_chunks(params, path), ignore_index=True)
    return pd.read_csv(path, **_csv_options(params))


def _csv_chunks(params: FileInputParams, path: Any) -> Iterator[pd.DataFrame]:
    with pd.read_csv(path, chunksize=params.chunksize, **_csv_options(params)) as reader:
        yield from reader


@contextlib.contextmanager
def _parser_errors(params: FileInputParams, path: Any) -> Iterator[None]:
    """Parser errors turned into a message that names the file (V7)."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"file '{path.name}' is not valid {params.encoding} (byte {exc.start}); set "
            "`encoding`, or encoding_errors: replace"
        ) from None
    except pd.errors.ParserError as exc:
        raise ValueError(
            f"file '{path.name}' could not be parsed: {exc}; on_bad_lines: skip drops rows with too many fields"
        ) from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"file '{path.name}' is empty") from None


def _check_width(params: FileInputParams, path: Any, df: pd.DataFrame) -> None:
    if len(df.columns) > params.max_columns:
        raise ValueError(f"file '{path.name}' has {len(df.columns)} columns, over max_columns {params.max_columns}")


def _check_declared(params: FileInputParams, df: pd.DataFrame) -> None:
    if params.columns:
        missing = [c for c in params.columns if c not in df.columns]
        if missing:
            raise ValueError(f"file '{params.path}' lacks declared column(s): {', '.join(missing)}")


def _converted(params: FileInputParams, df: pd.DataFrame, where: str, path: Any) -> pd.DataFrame:
    """The declared column types applied (``dp_assets.catalog.conversions``)."""
    if not params.columns:
        return df
    return convert_declared(df, params.columns, f"{where}, file '{path.name}'")


def _read(params: FileInputParams, path: Any, where: str) -> pd.DataFrame:
    """One file, with parser errors turned into a message that names the file (V7), and its
    declared columns converted."""
    with _parser_errors(params, path):
        df = _reader(params, path)
    _check_width(params, path, df)
    return _converted(params, df, where, path)


def _read_head(params: FileInputParams, path: Any, where: str, rows: int) -> pd.DataFrame:
    """One file's first ``rows`` rows, reading no more of it where that gives the same frame
    (``first_rows.py``), else the whole file's first rows."""
    fmt = _checked_format(params, path)
    head = None
    with _parser_errors(params, path):
        if fmt == "parquet":
            head = read_parquet_head(path, params.usecols, rows)
        elif fmt == "csv" and params.on_bad_lines == "error":
            _check_csv_header(params, path)
            options = _csv_options(params)
            if csv_types_fixed(path, options):
                head = read_csv_head(path, options, rows)
        if head is None:
            head = _reader(params, path).head(rows)
    _check_width(params, path, head)
    return _converted(params, head, where, path)


def _first_rows(params: FileInputParams, paths: list[Any], where: str, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of the files read one after the other: each file's first rows
    concatenated (the columns and dtypes the whole files' concatenation has), then cut."""
    frames = [_read_head(params, path, where, rows) for path in paths]
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    _check_declared(params, df)
    return df.head(rows)


def _streamed(params: FileInputParams, paths: list[Any], where: str) -> Iterator[pd.DataFrame]:
    """The CSV files' chunks in order, each checked; the index runs on across chunks and files,
    as the index of the whole read would."""
    offset = 0
    for path in paths:
        _checked_format(params, path)
        _check_csv_header(params, path)
        with _parser_errors(params, path):
            for chunk in _csv_chunks(params, path):
                _check_width(params, path, chunk)
                _check_declared(params, chunk)
                chunk = _converted(params, chunk, where, path)
                chunk.index = pd.RangeIndex(offset, offset + len(chunk))
                offset += len(chunk)
                yield chunk


def _source_files(params: FileInputParams, files: Any, where: str) -> list[Any]:
    """The files the source reads: its path, or its glob's matches, each checked by the files
    resource (roots, V3); an error naming ``where`` when there is none."""
    if any(c in params.path for c in "*?["):
        paths = files.glob(params.path, params.root, where=where)
    else:
        paths = [files.resolve(params.path, params.root, where=where)]
        if not paths[0].is_file():
            what = "is a folder, not a file" if paths[0].is_dir() else "does not exist"
            raise FileNotFoundError(f"{where}: '{params.path}' under the '{params.root}' root {what}")
    if not paths:
        raise FileNotFoundError(f"{where}: no file matches '{params.path}' under the '{params.root}' root")
    return paths


def file_input(ctx: NodeContext, params: FileInputParams, inputs: dict[str, Any]) -> pd.DataFrame | FrameStream:
    """Read CSV, Parquet, JSON or Excel files (``pd.read_csv`` / ``read_parquet`` / ``read_json`` / ``read_excel``).

    Paths stay under the configured roots (V3); archives and compressed files are refused, and
    hostile files end in a clear error or a bounded result (V7). With ``stream: true`` (CSV) each
    chunk is stored as its own part as soon as it is parsed.
    """
    node = f"flow '{ctx.flow_id}', node '{ctx.node_id}'"
    paths = _source_files(params, ctx.resource("files"), f"{node}, params.path")
    ctx.add_metadata(files=[str(p) for p in paths])
    limit = row_limit()
    if limit is not None:  # only the first rows are kept (a preview on a row sample)
        return _first_rows(params, paths, node, limit)
    if params.stream:
        stream = FrameStream(_streamed(params, paths, node))
        stream.peek()  # open and parse the first chunk now: a bad file fails in the node, retried
        return stream
    frames = [_read(params, path, node) for path in paths]
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    _check_declared(params, df)
    return df


#: Rows read from each file to learn its column types, where a prefix reads as the whole file does.
SCHEMA_ROWS = 100
#: Largest JSON or Excel file read whole to learn its columns (a designer checks on every edit).
SCHEMA_WHOLE_READ_BYTES = 32 << 20
#: Most files a glob may match for their columns to be read (every one's head is read).
SCHEMA_MOST_FILES = 100


def file_columns(params: FileInputParams, resources: Mapping[str, Any]) -> ColumnSchema | None:
    """The columns a read of the source's files gives, told from the files' heads, for ``dp
    validate --infer-columns``; ``None`` when the spec declares them (its ``columns``) or when
    only a run can tell which files (a path that names a param). A CSV column whose type only
    a whole read can tell is ``any``; several files give the union of their columns."""
    if params.columns or "{{" in params.path:
        return None
    paths = _source_files(params, resources["files"], "params.path")
    if len(paths) > SCHEMA_MOST_FILES:
        raise ValueError(f"{len(paths)} files match, over {SCHEMA_MOST_FILES} read for columns: declare them")
    schema: ColumnSchema = {}
    for path in paths:
        for name, kind in _file_head_columns(params, path).items():
            schema[name] = kind if schema.get(name, kind) == kind else "any"
    return schema


def _file_head_columns(params: FileInputParams, path: Any) -> ColumnSchema:
    fmt = _checked_format(params, path)
    if fmt in ("json", "excel") and path.stat().st_size > SCHEMA_WHOLE_READ_BYTES:
        raise ValueError(
            f"file '{path.name}' is {fmt}, read whole to learn its columns, and over "
            f"{SCHEMA_WHOLE_READ_BYTES >> 20} MiB: declare its columns"
        )
    if fmt != "csv":
        return schema_of(_read_head(params, path, where="", rows=SCHEMA_ROWS))
    _check_csv_header(params, path)
    options = _csv_options(params)
    with _parser_errors(params, path):
        header = pd.read_csv(path, **{**options, "nrows": 0, "parse_dates": None})
    typed = schema_of(header)
    dates = set(params.parse_dates or [])
    fixed = set(options.get("dtype") or {})
    return {name: "datetime" if name in dates else typed[name] if name in fixed else "any" for name in typed}


NODE_TYPES = [
    NodeType(
        "FileInput",
        FileInputParams,
        file_input,
        "source",
        inputs=NO_INPUTS,
        resources=frozenset({"files"}),
        kinds=frozenset({"pandas", "file"}),
        infer_schema=lambda params, inputs: dict(params.columns) if params.columns else None,
        read_schema=file_columns,
    ),
]
