"""Vectorised evaluation of the allow-listed tree over a pandas DataFrame.

Every operator maps to the pandas operation a pandas user would write (``&`` for ``and``,
``isin`` for ``in``, ``where`` for ``if/else``) so results match hand-written pandas, nulls
included. The few places where pandas would happily allocate without bound (text repetition,
printf-style ``%``, huge integer powers, object columns in ``**``) are refused instead, and
every value an operator or function builds is checked against the caps (text per value, integer
bits), so no chain of steps grows past them (issue 16: validation is bounded).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from dp_assets.deferred import np, pd

from .errors import ExpressionError, missing_column_message
from .functions import FUNCTIONS, align_dates, shown
from .text_functions import check_joined_length, check_text_result
from .tree import (
    Binary,
    BoolOp,
    Call,
    Column,
    Compare,
    IfElse,
    ListLiteral,
    Literal,
    Node,
    Param,
    Unary,
)

MAX_INT_BITS = 4096
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "decimal", "boolean", "empty"}

_BINARY = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}
_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def is_null_scalar(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


class Evaluator:
    """Evaluates one tree against one frame and one set of flow params."""

    def __init__(self, df: pd.DataFrame, params: Mapping[str, Any], text: str):
        self.df = df
        self.params = params
        self.text = text

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(message, expression=self.text)

    def eval(self, node: Node) -> Any:
        try:
            result = self._dispatch(node)
        except ExpressionError:
            raise
        except Exception as err:  # any pandas/numpy failure is the author's to fix
            raise self.fail(f"cannot evaluate `{node.source}`: {_describe(err)}") from err
        if isinstance(result, complex):
            raise self.fail(f"`{node.source}` has no real value (it would be a complex number)")
        return result

    def _dispatch(self, node: Node) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Column):
            return self.column(node)
        if isinstance(node, Param):
            return self.param(node, allow_list=False)
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, BoolOp):
            return self.bool_op(node)
        if isinstance(node, IfElse):
            return self.if_else(node)
        if isinstance(node, Call):
            result = FUNCTIONS[node.name](*(self.eval(arg) for arg in node.args))
            check_text_result(result, f"{node.name}()")
            return result
        raise self.fail(f"`{node.source}` cannot be evaluated on its own")

    # leaves

    def column(self, node: Column) -> pd.Series:
        if node.name not in self.df.columns:
            raise self.fail(missing_column_message(node.name, list(self.df.columns)))
        value = self.df[node.name]
        if isinstance(value, pd.DataFrame):
            raise self.fail(f"column `{node.name}` appears more than once in the input")
        return value

    def param(self, node: Param, *, allow_list: bool) -> Any:
        if node.name not in self.params:
            known = ", ".join(sorted(map(str, self.params))) or "none"
            raise self.fail(f"flow param `{node.name}` is not set (flow params: {known})")
        value = self.params[node.name]
        if isinstance(value, list | tuple | set | frozenset):
            if allow_list:
                return list(value)
            raise self.fail(f"`{node.source}` is a list; a list may only follow `in` or `not in`")
        if not pd.api.types.is_scalar(value):
            raise self.fail(f"`{node.source}` is a {type(value).__name__}, not a single value")
        return value

    # operators

    def unary(self, node: Unary) -> Any:
        value = self.eval(node.operand)
        if node.op == "not":
            return logical_not(self.logical(value, node.operand))
        return -value if node.op == "-" else +value

    def binary(self, node: Binary) -> Any:
        left, right = self.eval(node.left), self.eval(node.right)
        self._guard_binary(node, left, right)
        result = _BINARY[node.op](left, right)
        if _is_plain_int(result) and result.bit_length() > MAX_INT_BITS:
            raise self.fail(
                f"`{node.source}` is too large: an integer may have at most {MAX_INT_BITS} bits "
                "(use float(...) for approximate large numbers)"
            )
        return result

    def _guard_binary(self, node: Binary, left: Any, right: Any) -> None:
        op = node.op
        if op == "*" and (_unsafe_for_arithmetic(left) or _unsafe_for_arithmetic(right)):
            raise self.fail(f"repeating text with `*` is not allowed: `{node.source}`; use concat(a, b, ...)")
        if op == "%" and _unsafe_for_arithmetic(left):
            raise self.fail(f"formatting text with `%` is not allowed: `{node.source}`; use concat(...)")
        if op == "+" and (_unsafe_for_arithmetic(left) or _unsafe_for_arithmetic(right)):
            check_joined_length((left, right), "joining text with `+`")
        if isinstance(left, pd.Series) or isinstance(right, pd.Series):
            for side in (left, right):
                if _is_plain_int(side) and not _INT64_MIN <= side <= _INT64_MAX:
                    raise self.fail(f"`{node.source}`: the number {side} does not fit in a 64-bit column")
        if op != "**":
            return
        for side in (left, right):
            if isinstance(side, pd.Series) and side.dtype == object and len(side):
                raise self.fail(
                    f"`**` needs numeric columns, but `{node.source}` has mixed values; "
                    "cast them with int(x) or float(x) first"
                )
        if (
            _is_plain_int(left)
            and _is_plain_int(right)
            and right > 0
            and abs(left) > 1
            and left.bit_length() * right > MAX_INT_BITS
        ):
            raise self.fail(
                f"`{node.source}` is too large: an integer power may have at most "
                f"{MAX_INT_BITS} bits (use float(...) for approximate large numbers)"
            )

    def compare(self, node: Compare) -> Any:
        result: Any = True
        left = self.eval(node.operands[0])
        for op, right_node in zip(node.ops, node.operands[1:], strict=True):
            if op in ("in", "not in"):
                values = self.in_values(right_node)
                step = _isin(left, values)
                step = logical_not(step) if op == "not in" else step
            else:
                right = self.eval(right_node)
                step = _COMPARE[op](*align_dates(left, right))
                left = right
            result = step if result is True else logical_and(result, step)
        return result

    def in_values(self, node: Node) -> list[Any]:
        if isinstance(node, ListLiteral):
            values = []
            for item in node.items:
                value = self.eval(item)
                if isinstance(value, pd.Series):
                    raise self.fail(f"list items must be single values, not columns: `{item.source}`")
                values.append(value)
            return values
        if isinstance(node, Param):
            value = self.param(node, allow_list=True)
            return value if isinstance(value, list) else [value]
        raise self.fail(f"`in` needs a list or params.NAME on its right: `{node.source}`")

    def bool_op(self, node: BoolOp) -> Any:
        combine = logical_and if node.op == "and" else logical_or
        result = self.logical(self.eval(node.values[0]), node.values[0])
        for value_node in node.values[1:]:
            result = combine(result, self.logical(self.eval(value_node), value_node))
        return result

    def if_else(self, node: IfElse) -> Any:
        condition = self.logical(self.eval(node.condition), node.condition)
        if not isinstance(condition, pd.Series):
            chosen = node.then if condition is True or condition is np.True_ else node.otherwise
            return self.eval(chosen)
        mask = to_mask(condition)
        then, otherwise = self.eval(node.then), self.eval(node.otherwise)
        if isinstance(then, pd.Series):
            return then.where(mask, otherwise)
        if isinstance(otherwise, pd.Series):
            return otherwise.mask(mask, then)
        return pd.Series(then, index=mask.index).where(mask, otherwise)

    def logical(self, value: Any, node: Node) -> Any:
        """``value`` as true/false/null, or an error naming ``node`` when it is something else."""
        if isinstance(value, pd.Series):
            if pd.api.types.is_bool_dtype(value.dtype):
                return value
            if value.dtype == object or len(value) == 0:
                try:
                    return value.astype("boolean")
                except (TypeError, ValueError):
                    pass
            raise self.fail(
                f"`{node.source}` must be true/false, but its values are {value.dtype}; "
                "compare it with something (for example `x > 0` or not_null(x))"
            )
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if is_null_scalar(value):
            return pd.NA
        raise self.fail(f"`{node.source}` must be true/false, not {shown(value)}")


def logical_and(left: Any, right: Any) -> Any:
    left, right = _series_first(left, right)
    return left & right


def logical_or(left: Any, right: Any) -> Any:
    left, right = _series_first(left, right)
    return left | right


def logical_not(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return ~value
    return pd.NA if value is pd.NA else not value


def _series_first(left: Any, right: Any) -> tuple[Any, Any]:
    """Put a Series on the left and make it nullable when the scalar is NA (Kleene logic).

    ``pd.NA & bool_series`` gives all False in pandas; ``boolean_series & pd.NA`` is right.
    """
    if not isinstance(left, pd.Series) and isinstance(right, pd.Series):
        left, right = right, left
    if isinstance(left, pd.Series) and right is pd.NA:
        left = left.astype("boolean")
    return left, right


def to_mask(value: Any, index: pd.Index | None = None) -> pd.Series:
    """A plain bool Series for filtering: null counts as False."""
    if isinstance(value, pd.Series):
        if value.dtype == bool:
            return value
        return value.fillna(False).astype(bool)
    keep = bool(value) if value is not pd.NA else False
    return pd.Series(keep, index=index, dtype=bool)


def _isin(left: Any, values: list[Any]) -> Any:
    """``Series.isin`` for a column; a single value goes through the same call so that nulls
    and mixed types behave identically."""
    if isinstance(left, pd.Series):
        return left.isin(values)
    return bool(pd.Series([left], dtype=object).isin(values).iloc[0])


def _is_plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unsafe_for_arithmetic(value: Any) -> bool:
    """Text, or a column that may hold text, lists or bytes: ``*`` would repeat, ``%`` format."""
    if isinstance(value, str | bytes | list | tuple):
        return True
    if isinstance(value, pd.Series):
        if isinstance(value.dtype, pd.StringDtype):
            return True
        if isinstance(value.dtype, pd.ArrowDtype):
            return not pd.api.types.is_numeric_dtype(value.dtype)
        if value.dtype == object:
            return pd.api.types.infer_dtype(value, skipna=True) not in _NUMERIC_INFERRED
    return False


def _describe(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    lowered = text.lower()
    if "tz-naive" in lowered or "tz-aware" in lowered or "invalid comparison between dtype=datetime64" in lowered:
        text += (
            " (time zones differ: compare aware with aware and naive with naive; "
            "now() is UTC-aware, now(None) is naive UTC)"
        )
    return text
