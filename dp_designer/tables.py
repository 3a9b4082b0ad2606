"""A node's value as the designer shows it: first rows, columns and row count of a table, or the
value itself (JSON-safe) when it is not a table."""

from __future__ import annotations

import json
from typing import Any

#: Rows a panel shows of a table (a run's output, a preview).
PREVIEW_ROWS = 20


def json_records(frame: Any) -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON values: timestamps in ISO text, every kind of null as None."""
    return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))


def value_view(value: Any, rows: int = PREVIEW_ROWS) -> dict[str, Any]:
    from dp_io.formats import is_dataframe

    if not is_dataframe(value):
        return {"kind": type(value).__name__, "value": json.loads(json.dumps(value, default=str))}
    return {
        "kind": "table",
        "row_count": len(value),
        "columns": [{"name": str(c), "dtype": str(t)} for c, t in value.dtypes.items()],
        "rows": json_records(value.head(rows)),
    }
