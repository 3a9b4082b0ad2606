"""Assertions of a test case on the values a run recorded.

Comparisons are by value, not by dtype: a column of ``int64`` equals ``[1, 2]`` written in YAML,
a timestamp equals the ISO text ``"2024-05-01"``, floats agree within a relative tolerance, and
null equals null (``None``, ``NaN``, ``NaT`` and ``pd.NA`` alike). Every problem names the node,
the check and the first place where actual and expected differ.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from dp_assets.catalog.base import SKIPPED
from dp_assets.flowtest.harness import Sent
from dp_assets.flowtest.model import Expectation

MAX_SHOWN = 120


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    try:
        return isinstance(value, float) and math.isnan(value)
    except TypeError:
        return False


def _plain(value: Any) -> Any:
    """numpy and pandas scalars as Python ones."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)) and getattr(value, "ndim", 1) == 0:
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def same(actual: Any, expected: Any, tolerance: float) -> bool:
    """One value against what a test file wrote."""
    actual = _plain(actual)
    if _is_null(expected) or _is_null(actual):
        return _is_null(expected) and _is_null(actual)
    if isinstance(actual, (pd.Timestamp, dt.datetime, dt.date)) and isinstance(expected, (str, dt.date)):
        try:
            left, right = pd.Timestamp(actual), pd.Timestamp(expected)
        except (ValueError, TypeError):
            return False
        if (left.tzinfo is None) != (right.tzinfo is None):  # "2024-05-01" against a UTC timestamp
            left, right = left.tz_localize(None), right.tz_localize(None)
        return left == right
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        return math.isclose(actual, expected, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        return set(actual) == set(expected) and all(same(actual[k], expected[k], tolerance) for k in expected)
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            return False
        return all(same(a, e, tolerance) for a, e in zip(actual, expected, strict=True))
    return actual == expected


def includes(actual: Any, expected: Mapping[str, Any], tolerance: float, where: str = "") -> str | None:
    """None when ``actual`` holds every key of ``expected`` (nested); else where it differs."""
    if not isinstance(actual, Mapping):
        return f"{where or 'the value'} is {type(actual).__name__}, not a mapping"
    for key, want in expected.items():
        here = f"{where}.{key}" if where else key
        if key not in actual:
            return f"'{here}' is missing (keys: {', '.join(map(str, list(actual)[:20]))})"
        got = actual[key]
        if isinstance(want, Mapping):
            problem = includes(got, want, tolerance, here)
            if problem:
                return problem
        elif not same(got, want, tolerance):
            return f"'{here}' is {_short(_plain(got))}, expected {_short(want)}"
    return None


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _cell_key(value: Any) -> tuple:
    value = _plain(value)
    if _is_null(value):
        return (0, 0.0, "")
    if isinstance(value, (bool, int, float)):
        return (1, float(value), "")
    if isinstance(value, (dt.date, pd.Timestamp)):
        return (2, 0.0, pd.Timestamp(value).isoformat())
    return (2, 0.0, str(value))


def compare_rows(
    actual: list[dict[str, Any]], expected: list[dict[str, Any]], ordered: bool, tolerance: float
) -> str | None:
    """None when the rows agree on the columns ``expected`` names; else the first difference."""
    if len(actual) != len(expected):
        return f"{len(actual)} rows, expected {len(expected)}"
    if not ordered:
        columns = list(dict.fromkeys(c for row in expected for c in row))

        def key(row: Mapping[str, Any]) -> tuple:
            return tuple(_cell_key(row.get(c)) for c in columns)

        actual, expected = sorted(actual, key=key), sorted(expected, key=key)
    for position, (got, want) in enumerate(zip(actual, expected, strict=True)):
        for column, value in want.items():
            if column not in got:
                return f"row {position}: no column '{column}'"
            if not same(got[column], value, tolerance):
                return f"row {position}, column '{column}': {_short(_plain(got[column]))}, expected {_short(value)}"
    return None


def _values_problem(series: pd.Series, values: list[Any], ordered: bool, tolerance: float) -> str | None:
    got = [_plain(v) for v in series.tolist()]
    if len(got) != len(values):
        return f"{len(got)} values, expected {len(values)}"
    if not ordered:
        got, values = sorted(got, key=_cell_key), sorted(values, key=_cell_key)
    for position, (a, e) in enumerate(zip(got, values, strict=True)):
        if not same(a, e, tolerance):
            return f"row {position}: {_short(a)}, expected {_short(e)}"
    return None


def _frame_problems(frame: pd.DataFrame, exp: Expectation, base: Path, update_golden: bool) -> list[str]:
    problems: list[str] = []
    columns = [str(c) for c in frame.columns]
    if exp.rows is not None and len(frame) != exp.rows:
        problems.append(f"rows: {len(frame)}, expected {exp.rows}")
    if exp.columns is not None and columns != exp.columns:
        problems.append(f"columns: {columns}, expected {exp.columns}")
    if exp.has_columns is not None:
        missing = [c for c in exp.has_columns if c not in columns]
        if missing:
            problems.append(f"has_columns: missing {missing} (it has {columns})")
    if exp.values is not None:
        for column, values in exp.values.items():
            if column not in columns:
                problems.append(f"values: no column '{column}' (it has {columns})")
                continue
            problem = _values_problem(frame[column], values, exp.ordered, exp.tolerance)
            if problem:
                problems.append(f"values['{column}']: {problem}")
    if exp.equals is not None:
        problem = compare_rows(_rows(frame), exp.equals, exp.ordered, exp.tolerance)
        if problem:
            problems.append(f"equals: {problem}")
    if exp.golden is not None:
        problem = _golden(frame, base / exp.golden, exp, update_golden)
        if problem:
            problems.append(f"golden {exp.golden}: {problem}")
    return problems


def _golden(frame: pd.DataFrame, path: Path, exp: Expectation, update: bool) -> str | None:
    """Compare through CSV on both sides, so dtypes are read the same way from each."""
    text = frame.to_csv(index=False)
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return None
    if not path.exists():
        return "the file does not exist (run `dp test --update-golden` to write it)"
    actual = pd.read_csv(io.StringIO(text))
    golden = pd.read_csv(path)
    if list(actual.columns) != list(golden.columns):
        return f"columns {list(actual.columns)}, golden has {list(golden.columns)}"
    return compare_rows(_rows(actual), _rows(golden), exp.ordered, exp.tolerance)


def check(
    target: str,
    outputs: Mapping[str, Any] | None,
    output: str,
    exp: Expectation,
    sent: Sent | None,
    base: Path,
    update_golden: bool,
) -> list[str]:
    """Problems of one expectation (empty when it holds), each prefixed with the target."""
    value = SKIPPED if outputs is None else outputs.get(output, SKIPPED)
    problems: list[str] = []
    if exp.skipped is not None:
        if exp.skipped != (value is SKIPPED):
            problems.append("skipped: it ran" if exp.skipped else "it did not run (skipped, failed or never reached)")
        if exp.skipped:
            return [f"{target}: {p}" for p in problems]
    if value is SKIPPED:
        return [f"{target}: it did not run (skipped, failed or never reached)"]
    if exp.message is not None:
        if sent is None or sent.message is None:
            problems.append("message: not a SendNotification stand-in (nothing rendered)")
        elif not re.search(exp.message, sent.message):
            problems.append(f"message: {_short(sent.message)} does not match /{exp.message}/")
    table_checks = [
        c for c in ("rows", "columns", "has_columns", "values", "equals", "golden") if getattr(exp, c) is not None
    ]
    if isinstance(value, pd.DataFrame):
        problems += _frame_problems(value, exp, base, update_golden)
    elif table_checks:
        problems.append(f"{', '.join(table_checks)}: the value is {type(value).__name__}, not a table")
    if "value" in exp.model_fields_set and not same(value, exp.value, exp.tolerance):
        problems.append(f"value: {_short(value)}, expected {_short(exp.value)}")
    if exp.includes is not None:
        problem = includes(value, exp.includes, exp.tolerance)
        if problem:
            problems.append(f"includes: {problem}")
    return [f"{target}: {p}" for p in problems]
