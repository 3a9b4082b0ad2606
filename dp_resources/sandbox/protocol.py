"""What crosses the pipes between the parent and a sandbox child.

Parent to child: one pickle (code, inputs, mode, allowed modules). The child trusts its parent,
and pickle carries any DataFrame exactly.

Child to parent: never pickle, because the child runs untrusted code and unpickling is code
execution. A frame is ``MAGIC | u64 header length | JSON header | u64 stdout length | stdout |
body``; the body is Arrow IPC for a DataFrame or Series (validated in full before use) or JSON
for plain values. The parent reads at most ``max_output_bytes`` plus a small allowance.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import struct
from typing import Any

MAGIC = b"DPSBX1"
HEADER_ALLOWANCE = 1_000_000
_LENGTH = struct.Struct("<Q")


class ResultEncodingError(ValueError):
    """The snippet's value cannot leave the sandbox (e.g. a column of mixed Python objects)."""


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"values of type {type(value).__name__} cannot leave the sandbox")


def _json_name(name: Any) -> Any:
    if name is None or isinstance(name, (str, int, bool)):
        return name
    if isinstance(name, float) and math.isfinite(name):
        return name
    return str(name)


def _json_label(label: Any) -> Any:
    if hasattr(label, "item") and not isinstance(label, (str, bytes)):
        try:
            label = label.item()
        except (TypeError, ValueError):
            pass
    if isinstance(label, tuple):
        return [_json_label(part) for part in label]
    return _json_name(label)


def _column_labels(frame: Any) -> dict[str, Any]:
    """Column labels travel as JSON: Arrow field names are strings and must be unique."""
    import pandas as pd

    columns = frame.columns
    if isinstance(columns, pd.MultiIndex):
        return {
            "multi": True,
            "labels": [_json_label(label) for label in columns],
            "names": [_json_name(name) for name in columns.names],
        }
    return {
        "multi": False,
        "labels": [_json_label(label) for label in columns],
        "name": _json_name(columns.name),
    }


def _restore_columns(frame: Any, spec: dict[str, Any]) -> Any:
    import pandas as pd

    if spec.get("multi"):
        frame.columns = pd.MultiIndex.from_tuples([tuple(label) for label in spec["labels"]], names=spec.get("names"))
    else:
        frame.columns = pd.Index(spec["labels"], name=spec.get("name"))
    return frame


def encode_value(value: Any) -> tuple[dict[str, Any], bytes]:
    """Child side: (header fields, body) for a snippet's value."""
    import pandas as pd

    if isinstance(value, (pd.DataFrame, pd.Series)):
        import pyarrow as pa

        frame = value
        if isinstance(value, pd.Series):
            header: dict[str, Any] = {
                "value_type": "series",
                "series_name": _json_name(value.name),
            }
            frame = value.to_frame(name="value")
        else:
            header = {"value_type": "dataframe", "columns": _column_labels(frame)}
            frame = frame.set_axis([f"c{i}" for i in range(frame.shape[1])], axis=1)
        try:
            table = pa.Table.from_pandas(frame, nthreads=1)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            labels = [str(label) for label in value.columns] if value is not frame else []
            detail = re.sub(
                r"column c(\d+)",
                lambda m: f"column {labels[int(m.group(1))]!r}" if labels else m.group(0),
                str(exc),
            )
            raise ResultEncodingError(
                f"the result cannot leave the sandbox as Arrow data ({detail}); give every "
                "column one type, e.g. with .astype(str)"
            ) from exc
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return header, sink.getvalue().to_pybytes()
    if value is None:
        return {"value_type": "none"}, b""
    try:
        body = json.dumps(value, default=_json_default, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise ResultEncodingError(
            f"the result cannot leave the sandbox ({exc}); return a DataFrame, a Series or "
            "JSON-like values (dict, list, str, number, bool, None)"
        ) from exc
    return {"value_type": "json"}, body


def decode_value(header: dict[str, Any], body: bytes) -> Any:
    """Parent side: rebuild the value; Arrow data is fully validated before pandas sees it."""
    kind = header.get("value_type")
    if kind == "none":
        return None
    if kind == "json":
        return json.loads(body.decode("utf-8"))
    if kind in ("dataframe", "series"):
        import pyarrow as pa

        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
        table.validate(full=True)
        frame = table.to_pandas()
        if kind == "series":
            series = frame["value"]
            series.name = header.get("series_name")
            return series
        return _restore_columns(frame, header.get("columns") or {})
    raise ValueError(f"unknown value type {kind!r} from the sandbox")


def pack_frame(header: dict[str, Any], stdout: str, body: bytes) -> bytes:
    head = json.dumps(header).encode("utf-8")
    out = stdout.encode("utf-8", "replace")
    return b"".join((MAGIC, _LENGTH.pack(len(head)), head, _LENGTH.pack(len(out)), out, body))


def unpack_frame(data: bytes) -> tuple[dict[str, Any], str, bytes]:
    if not data.startswith(MAGIC):
        raise ValueError("the sandbox returned no result frame")
    offset = len(MAGIC)
    (head_len,) = _LENGTH.unpack_from(data, offset)
    offset += _LENGTH.size
    if head_len > HEADER_ALLOWANCE:
        raise ValueError("the sandbox returned an oversized header")
    header = json.loads(data[offset : offset + head_len].decode("utf-8"))
    offset += head_len
    (out_len,) = _LENGTH.unpack_from(data, offset)
    offset += _LENGTH.size
    stdout = data[offset : offset + out_len].decode("utf-8", "replace")
    body = data[offset + out_len :]
    if not isinstance(header, dict):
        raise TypeError("the sandbox returned a malformed header")
    return header, stdout, body
