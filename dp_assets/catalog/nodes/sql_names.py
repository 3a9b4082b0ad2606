"""SQL identifiers from specs: checked when the spec loads, and always quoted when used (V1).

Table and schema names must be plain identifiers (letters, digits, ``_``), so a name can never
carry SQL. Column names may hold spaces and punctuation, as real data does, but no quotes,
control characters or ``;``, and they reach SQL only through SQLAlchemy, which quotes them.
"""

from __future__ import annotations

import re
from typing import Any

PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1
FORBIDDEN_IN_COLUMN = set('"`;\\') | {chr(c) for c in range(32)} | {"\x7f"}


def check_name(value: str, what: str = "table") -> str:
    """A plain identifier for a table or schema; raises ``ValueError`` naming what is wrong."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value) or len(value) > MAX_IDENTIFIER:
        raise ValueError(
            f"{what} name {value!r} is not allowed: use letters, digits and '_' (not starting "
            f"with a digit), at most {MAX_IDENTIFIER} characters"
        )
    return value


def check_table(value: str) -> str:
    """``table`` or ``schema.table``, each part a plain identifier."""
    parts = value.split(".") if isinstance(value, str) else [value]
    if len(parts) > 2:
        raise ValueError(f"table name {value!r} is not allowed: write table or schema.table")
    for part in parts:
        check_name(part, "schema" if len(parts) == 2 and part is parts[0] else "table")
    return value


def check_column(value: str) -> str:
    if not isinstance(value, str) or not value or len(value.encode()) > MAX_IDENTIFIER:
        raise ValueError(f"column name {value!r} must be 1 to {MAX_IDENTIFIER} bytes")
    bad = sorted(FORBIDDEN_IN_COLUMN & set(value))
    if bad:
        raise ValueError(f"column name {value!r} holds characters that are not allowed: {bad!r}")
    return value


def check_columns(values: Any) -> Any:
    if values is None:
        return values
    for value in values:  # a list, or the keys of a mapping
        check_column(value)
    return values


def split_table(table: str, schema: str | None) -> tuple[str | None, str]:
    """(schema, table) from ``table`` (maybe ``schema.table``) and an explicit ``schema``."""
    if "." in table:
        prefix, name = table.split(".", 1)
        if schema and schema != prefix:
            raise ValueError(f"table '{table}' names schema '{prefix}' but schema is '{schema}'")
        return prefix, name
    return schema, table
