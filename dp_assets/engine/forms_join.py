"""The DuckDB form of JoinMerge, in pandas' row order and with pandas' column names.

Inner, left and cross joins give (left row, right row) order, a right join (right row, left row),
both as one number with no sort; an outer join on ``on`` keys sorts by the keys (missing last),
then by the left row and the right row, as ``pd.merge(how="outer")`` does. ``left_on``/
``right_on`` keep both key columns. A missing key matches a missing key, as in pandas.
``indicator``, ``validate``, an outer join on ``left_on``/``right_on`` and key names that both
inputs have in another role run in pandas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dp_assets.catalog.schema import as_list

from .errors import NotSupported
from .relation import ROW_ORDER, Relation
from .sql_expressions import quote_identifier

R = ROW_ORDER
_KINDS = {
    "inner": "INNER JOIN",
    "left": "LEFT JOIN",
    "right": "RIGHT JOIN",
    "outer": "FULL JOIN",
    "cross": "CROSS JOIN",
}


def join_merge(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    left, right = inputs["left"], inputs["right"]
    if params.indicator or params.validate_:
        raise NotSupported("indicator and validate run in pandas")
    left_keys, right_keys, separate = _keys(params, left, right)
    _check_keys(left, right, left_keys, right_keys)
    merged = set() if separate else set(left_keys)  # key columns pandas keeps once
    shared = [n for n in left.names if n in right.names and n not in merged]
    lsuf, rsuf = params.suffixes
    select = []
    for name in left.names:
        target = name + lsuf if name in shared else name
        source = _merged_key(name, params.how) if name in merged else f"l.{quote_identifier(name)}"
        select.append(f"{source} AS {quote_identifier(target)}")
    for name in right.names:
        if name not in merged:
            target = name + rsuf if name in shared else name
            select.append(f"r.{quote_identifier(name)} AS {quote_identifier(target)}")
    targets = [part.rsplit(" AS ", 1)[1] for part in select]
    if len(set(targets)) != len(targets) or quote_identifier(R) in targets:
        raise NotSupported("suffixes that repeat a column name")
    pairs = zip(left_keys, right_keys, strict=True)
    condition = " AND ".join(_matches(a, b, left, right) for a, b in pairs)
    on_clause = f" ON {condition}" if left_keys else ""
    order = _order(params.how, left_keys, left, right)
    joined = f"({left.sql}) AS l {_KINDS[params.how]} ({right.sql}) AS r{on_clause}"
    return f"SELECT {', '.join(select)}, {order} AS {R} FROM {joined}"


def _keys(params: Any, left: Relation, right: Relation) -> tuple[list[str], list[str], bool]:
    if params.how == "cross":
        if params.on or params.left_on or params.right_on:
            raise NotSupported("a cross join with keys (pandas refuses it)")
        return [], [], False
    if params.left_on or params.right_on:
        left_keys, right_keys = as_list(params.left_on), as_list(params.right_on)
        if params.on or not left_keys or len(left_keys) != len(right_keys) or params.how == "outer":
            raise NotSupported("left_on/right_on that pandas reads by its own rules, or an outer join on them")
        if set(left_keys) & set(right.names) or set(right_keys) & set(left.names):
            raise NotSupported("a key name both inputs have")
        return left_keys, right_keys, True
    on = as_list(params.on) or [n for n in left.names if n in right.names]
    if not on:
        raise NotSupported("no join keys")
    return on, on, False


def _check_keys(left: Relation, right: Relation, left_keys: list[str], right_keys: list[str]) -> None:
    if len(set(left_keys)) != len(left_keys) or not set(left_keys) <= set(left.kinds):
        raise NotSupported("join keys")
    if not set(right_keys) <= set(right.kinds):
        raise NotSupported("join keys")
    for a, b in zip(left_keys, right_keys, strict=True):
        if left.kinds[a] != right.kinds[b] or str(left.arrow_type(a)) != str(right.arrow_type(b)):
            raise NotSupported("join keys of different types")


def _matches(a: str, b: str, left: Relation, right: Relation) -> str:
    """pandas matches a missing key with a missing key; where one side holds none, plain equality
    says the same and lets DuckDB use its fastest hash join."""
    op = "=" if a in left.nonnull or b in right.nonnull else "IS NOT DISTINCT FROM"
    return f"l.{quote_identifier(a)} {op} r.{quote_identifier(b)}"


def _merged_key(name: str, how: str) -> str:
    column = quote_identifier(name)
    if how == "outer":
        return f"coalesce(l.{column}, r.{column})"
    return f"r.{column}" if how == "right" else f"l.{column}"


def _order(how: str, keys: list[str], left: Relation, right: Relation) -> str:
    if how == "outer":  # pandas sorts an outer join's keys (missing last), then left row, right row
        by = [f"coalesce(l.{quote_identifier(k)}, r.{quote_identifier(k)}) ASC NULLS LAST" for k in keys]
        return f"row_number() OVER (ORDER BY {', '.join([*by, f'l.{R} ASC NULLS LAST', f'r.{R} ASC NULLS LAST'])})"
    first, second = ("r", "l") if how == "right" else ("l", "r")
    # (first side's row, second side's row) as one number: no sort of the join
    inner = right if second == "r" else left
    bound = f"(SELECT coalesce(max({R}), 0) + 1 FROM ({inner.sql}))"
    return f"CAST({first}.{R} AS HUGEINT) * {bound} + coalesce({second}.{R}, 0)"
