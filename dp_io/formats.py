"""How one value becomes bytes and back: Arrow IPC or Parquet for DataFrames, JSON, pickle.

DataFrames go through ``pyarrow.Table.from_pandas``, whose pandas metadata restores nullable
integers, categoricals, time zones, pandas 3 ``str`` columns and the index on the way back.
A frame Arrow cannot represent (mixed-type object columns, duplicate column names) is pickled,
and the reason is recorded in the output metadata rather than failing the run.

Reading converts without copying first and then copies column by column into writable memory
(see :func:`table_to_frame`); a local Arrow file is memory-mapped and its pages are released
(``MADV_DONTNEED``) as columns are copied. Peak memory stays near the frame's own size instead of
about twice it, and the frame is writable (unlike a plain zero-copy ``split_blocks`` frame).
"""

from __future__ import annotations

import json
import math
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dp_io.errors import UnsupportedFormatError

# dp/format values for DataFrames -> (file suffix, Arrow IPC compression or None).
FRAME_FORMATS: dict[str, tuple[str, str | None]] = {
    "arrow": (".arrow", None),
    "arrow-lz4": (".arrow", "lz4"),
    "parquet": (".parquet", None),
}
VALUE_FORMATS = {"json": ".json", "pickle": ".pkl"}
DEFAULT_FRAME_FORMAT = "arrow"
# Compressed Arrow files are written in record batches of this many rows (pyarrow.feather's own
# default): a reader then holds one batch's compressed bytes at a time instead of the whole
# file's next to the decompressed data. Uncompressed files stay one batch, so a memory-mapped
# read converts without copying.
COMPRESSED_BATCH_ROWS = 64 * 1024
COMPRESSION_KEY = b"dp/compression"  # Arrow schema metadata of compressed files we write
FORMAT_METADATA_KEY = "dp/format"
_PICKLE_PROTOCOL = 5
_MAX_JSON_DEPTH = 64


def check_format(value: str) -> str:
    if value in FRAME_FORMATS or value == "pickle":
        return value
    raise UnsupportedFormatError(
        f"dp/format {value!r} is not supported; use one of "
        f"{', '.join([*FRAME_FORMATS, 'pickle'])} (JSON is chosen automatically for plain values)"
    )


def is_dataframe(obj: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def is_arrow_table(obj: Any) -> bool:
    """A ``pyarrow.Table`` (the DuckDB engine's outputs): written as it is, read back as a frame."""
    arrow = sys.modules.get("pyarrow")
    return arrow is not None and isinstance(obj, arrow.Table)


def is_stream(obj: Any) -> bool:
    """A generator or iterator of parts (a DataFrame or a list is a value, not a stream)."""
    return isinstance(obj, Iterator)


def is_plain_json(obj: Any, depth: int = 0) -> bool:
    """True when ``json.loads(json.dumps(obj)) == obj`` with the same types (so no tuples,
    no non-string keys, no NaN); such values are stored as readable JSON."""
    if depth > _MAX_JSON_DEPTH:
        return False
    if obj is None or isinstance(obj, (bool, str)):
        return True
    if type(obj) is int:
        return True
    if type(obj) is float:
        return math.isfinite(obj)
    if type(obj) is list:
        return all(is_plain_json(v, depth + 1) for v in obj)
    if type(obj) is dict:
        return all(type(k) is str and is_plain_json(v, depth + 1) for k, v in obj.items())
    return False


@dataclass
class Encoded:
    """A value ready to write: its format, file suffix and what the metadata reports."""

    format: str
    suffix: str
    payload: Any
    rows: int | None = None
    columns: list[tuple[str, str]] | None = None
    note: str | None = None  # why a frame was pickled instead of the asked format
    compression: str | None = field(default=None, repr=False)
    # Write a local file past the page cache (dp_io.direct): for outputs nothing reads soon.
    direct: bool = field(default=False, repr=False)

    def write(self, sink: Any) -> None:
        if self.format in FRAME_FORMATS:
            if isinstance(sink, str):
                with _local_file(sink, self.direct) as handle:
                    self._write_frame(handle)
            else:
                self._write_frame(sink)
        elif self.format == "json":
            write_bytes(self.payload, sink)
        else:
            _write_pickle(self.payload, sink)

    def _write_frame(self, sink: Any) -> None:
        if self.format == "parquet":
            _write_parquet(self.payload, sink)
        else:
            _write_arrow(self.payload, sink, self.compression)


def encode(obj: Any, frame_format: str = DEFAULT_FRAME_FORMAT) -> Encoded:
    """Choose the format for one value; nothing is written yet."""
    frame_format = check_format(frame_format)
    if is_arrow_table(obj):
        if frame_format != "pickle":
            suffix, compression = FRAME_FORMATS[frame_format]
            columns = [(f.name, str(f.type)) for f in obj.schema]
            return Encoded(frame_format, suffix, obj, obj.num_rows, columns, compression=compression)
        obj = obj.to_pandas()  # a pickle holds what a reader gets: a frame
    if is_dataframe(obj):
        if frame_format == "pickle":
            return Encoded("pickle", VALUE_FORMATS["pickle"], obj, len(obj), _pandas_columns(obj))
        import pyarrow as pa

        try:
            table = pa.Table.from_pandas(obj, preserve_index=None)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            return Encoded(
                "pickle",
                VALUE_FORMATS["pickle"],
                obj,
                len(obj),
                _pandas_columns(obj),
                note=f"stored as pickle: Arrow cannot hold this frame ({exc})"[:500],
            )
        suffix, compression = FRAME_FORMATS[frame_format]
        columns = [(f.name, str(f.type)) for f in table.schema]
        return Encoded(frame_format, suffix, table, table.num_rows, columns, compression=compression)
    if frame_format != "pickle" and is_plain_json(obj):
        payload = json.dumps(obj, ensure_ascii=False, allow_nan=False).encode()
        return Encoded("json", VALUE_FORMATS["json"], payload)
    return Encoded("pickle", VALUE_FORMATS["pickle"], obj)


def _pandas_columns(df: Any) -> list[tuple[str, str]]:
    return [(str(name), str(dtype)) for name, dtype in df.dtypes.items()]


# ---- writers: ``sink`` is a native path (local) or a binary file object (fsspec) -------------


def _write_arrow(table: Any, sink: Any, compression: str | None) -> None:
    import pyarrow as pa

    options = pa.ipc.IpcWriteOptions(compression=compression)
    batch_rows = COMPRESSED_BATCH_ROWS if compression else None
    if compression:
        # Readers pick their strategy from this before touching any batch (see read_arrow).
        metadata = {**(table.schema.metadata or {}), COMPRESSION_KEY: compression.encode()}
        table = table.replace_schema_metadata(metadata)
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=batch_rows)


def _local_file(path: str, direct: bool) -> Any:
    """A native file Arrow writes without Python in the loop, or a direct one when asked and
    the filesystem allows it."""
    import pyarrow as pa

    from dp_io.direct import open_direct

    return (open_direct(path) if direct else None) or pa.OSFile(path, "wb")


def _write_parquet(table: Any, sink: Any) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, sink)


def write_bytes(payload: bytes, sink: Any) -> None:
    if isinstance(sink, str):
        with open(sink, "wb") as handle:
            handle.write(payload)
    else:
        sink.write(payload)


def _write_pickle(obj: Any, sink: Any) -> None:
    if isinstance(sink, str):
        with open(sink, "wb") as handle:
            pickle.dump(obj, handle, protocol=_PICKLE_PROTOCOL)
    else:
        pickle.dump(obj, sink, protocol=_PICKLE_PROTOCOL)


# ---- readers: ``source`` is a native path (local) or the file's bytes -------------------------


def decode(source: str | bytes, suffix: str) -> Any:
    if suffix == ".arrow":
        return read_arrow(source)
    if suffix == ".parquet":
        return read_parquet(source)
    if suffix == ".json":
        return json.loads(_read_bytes(source))
    if suffix == ".pkl":
        if isinstance(source, str):
            with open(source, "rb") as handle:
                return pickle.load(handle)  # noqa: S301 - a run's own output, written by this IO manager
        return pickle.loads(source)  # noqa: S301 - a run's own output, written by this IO manager
    raise UnsupportedFormatError(f"no reader for stored files ending in {suffix!r}")


def _read_bytes(source: str | bytes) -> bytes:
    if isinstance(source, str):
        with open(source, "rb") as handle:
            return handle.read()
    return source


def read_arrow(source: str | bytes) -> Any:
    import pyarrow as pa

    # Decompressed batches come from the C allocator, which gives them back to the OS when freed
    # (with malloc_trim, see table_to_frame); Arrow's default pool (mimalloc) would keep them.
    pool = pa.system_memory_pool()
    if not isinstance(source, str):
        reader = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(source)), memory_pool=pool)
        return table_to_frame([reader.read_all()])
    with pa.OSFile(source) as handle:
        reader = pa.ipc.open_file(handle, memory_pool=pool)
        if COMPRESSION_KEY in (reader.schema.metadata or {}):
            # Compressed: read batch by batch from the file, so only one batch's compressed
            # bytes are held next to the decompressed data (a memory map keeps them resident).
            return table_to_frame([reader.read_all()])
    import mmap

    with open(source, "rb") as handle:
        try:
            mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file cannot be mapped
            raise pa.ArrowInvalid(f"{source} is not an Arrow IPC file ({exc})") from exc

    def release() -> None:
        # Clean file-backed pages: dropping them from this process is safe; string columns
        # that still point into the mapping fault them back in from the page cache when used.
        if hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED)

    reader = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapping)), memory_pool=pool)
    return table_to_frame([reader.read_all()], release)


def read_parquet(source: str | bytes) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, str):
        # Reading column chunks as needed (no pre-buffering of the whole file) lowers the peak
        # by about the file's size; pre-buffering pays off on object stores, not local disks.
        return table_to_frame([pq.read_table(source, pre_buffer=False)])
    return table_to_frame([pq.read_table(pa.BufferReader(source))])


def table_to_frame(box: list[Any], release: Any = None) -> Any:
    """Arrow table -> writable DataFrame, peaking at about the frame's own size in memory.

    The table comes in a one-item list that this function empties: a plain argument stays
    referenced by the caller for the whole call, and no column could be freed before the end.

    1. Each fixed-width column split over several batches (row groups, record batches) is made
       contiguous, one column at a time, memory given back after each.
    2. ``to_pandas(split_blocks=True, self_destruct=True)`` then converts without copying:
       numeric columns become read-only views of Arrow memory.
    3. Each read-only column is copied into ordinary writable memory, one at a time, and the
       Arrow memory behind it is given back before the next column.

    Giving back = Arrow's pool and the C allocator return freed memory to the OS
    (``release_unused``, ``malloc_trim``; both otherwise keep it for reuse), and ``release``
    drops a memory-mapped file's pages. Arrow-backed
    columns (pandas 3 ``str``) stay zero-copy: pandas never writes into them in place. Without
    step 3, ``df.loc[0, "x"] = 1`` raises "assignment destination is read-only".
    """
    import pyarrow as pa

    pool = pa.default_memory_pool()
    table = box.pop()
    pending = 0  # bytes freed since memory was last given back

    def give_back(freed: int, force: bool = False) -> None:
        # Giving back costs a few system calls: only worth it once enough has been freed.
        nonlocal pending
        pending += freed
        if pending >= _GIVE_BACK_BYTES or (force and pending):
            if release is not None:
                release()
            pool.release_unused()
            _malloc_trim()
            pending = 0

    for position in range(table.num_columns):  # not table.columns: that list pins every column
        column = table.column(position)
        if column.num_chunks > 1 and _fixed_width(column.type):
            table = table.set_column(position, table.field(position), column.combine_chunks())
            freed = column.nbytes
            del column  # before giving back: this was the last reference to the chunks
            give_back(freed)
        else:
            del column
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if _read_only(column.array):
            freed = int(column.memory_usage(index=False, deep=False))
            frame.isetitem(position, column.copy())
            del column  # before giving back: this was the last reference to the view
            give_back(freed)
        else:
            del column
    give_back(0, force=True)
    return frame


def _malloc_trim() -> None:
    """glibc's ``malloc_trim(0)``: return free heap pages to the OS (a no-op elsewhere)."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC = libc if hasattr(libc, "malloc_trim") else False
        except OSError:
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None  # the C library, loaded on first use (False: no malloc_trim here)
_GIVE_BACK_BYTES = 16 * 2**20


def _fixed_width(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_boolean(arrow_type)
        or pa.types.is_temporal(arrow_type)
        or pa.types.is_decimal(arrow_type)
    )


def _read_only(array: Any) -> bool:
    """True when pandas would refuse to write into this column's memory (a zero-copy view).

    Looks at the numpy arrays behind pandas' NumPy-backed arrays (``_ndarray``: plain, datetime,
    categorical codes; ``_data``/``_mask``: nullable); Arrow-backed arrays (pandas 3 ``str``)
    are immutable by design and never written in place, so they need no copy.
    """
    import numpy as np

    backing = [getattr(array, name, None) for name in ("_ndarray", "_data", "_mask")]
    return any(isinstance(b, np.ndarray) and not b.flags.writeable for b in backing)


def combine_parts(values: list[Any]) -> Any:
    """A streamed output read as one value: frames concatenated, anything else as a list.

    Parts read in chunks each count their rows from 0; the whole has one 0..n-1 index, as if read
    at once. A part with an index of its own (not a RangeIndex) keeps it."""
    if values and all(is_dataframe(v) for v in values):
        import pandas as pd

        renumber = all(isinstance(v.index, pd.RangeIndex) for v in values)
        return pd.concat(values, ignore_index=renumber)
    if not values:
        import pandas as pd

        return pd.DataFrame()
    return values
