"""X1, the class behind issue 16: no allowed object hands a snippet an attribute copier or an
interpreter internal, however it is reached.

Issue 16 walked around the policy with ``functools.update_wrapper``: library code that calls the
real ``getattr``/``setattr`` with names the snippet chose. The cases in ``test_sandbox_escape.py``
are the known routes; these tests state the rule for routes nobody has listed yet:

- the source of every member a snippet may read from an allowed standard-library module is
  scanned for calls that read, write or evaluate by name (a new Python version adding one to an
  allowed helper fails here);
- every attribute chain a snippet may walk from an allowed module (exhaustively one and two
  steps deep in the standard library, and as a Hypothesis walk through pandas and numpy) ends in
  a refusal or in a value that is neither an attribute copier nor an internal;
- the value guard refuses internals that arrive by item, by loop or as a call's result.

These run in-process against the policy object (no child process): they read attributes only.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import json
import math
import operator
import re
import sys
import types
import typing
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_resources.sandbox import policy
from dp_resources.sandbox.rules import MODULE_MEMBERS
from tests.fuzzing import fuzz_settings

# The test's own list, kept apart from the policy's: what must never reach a snippet.
COPIERS = {
    builtins.getattr,
    builtins.setattr,
    builtins.delattr,
    builtins.eval,
    builtins.exec,
    builtins.compile,
    builtins.open,
    builtins.__import__,
    builtins.vars,
    functools.update_wrapper,
    functools.wraps,
    functools.singledispatch,
    functools.singledispatchmethod,
    functools.total_ordering,
    operator.attrgetter,
    operator.methodcaller,
    typing.get_type_hints,
}
INTERNAL_TYPES = (types.CodeType, types.FrameType, types.TracebackType, types.CellType)
# Members whose source names getattr/eval/__dict__ but only with fixed names on their own objects,
# reviewed: namedtuple evaluates code it generates from validated identifiers; the rest implement
# pickling/copying (``__reduce__``, ``__copy__``, ``__setstate__``) or a subclass hook;
# ``lru_cache`` calls ``update_wrapper`` with the default names onto its own new wrapper.
REVIEWED = {
    "functools.lru_cache",
    "collections.namedtuple",
    "statistics.namedtuple",
    "collections.OrderedDict",
    "collections.UserDict",
    "collections.UserList",
    "datetime.tzinfo",
    "functools.partial",
    "string.Template",
}
ATTRIBUTE_CALLS = re.compile(
    r"\b(getattr|setattr|delattr|eval|exec|get_type_hints|update_wrapper|__dict__|__globals__|_getframe)\b"
)


@pytest.fixture(scope="module")
def session() -> policy.Session:
    from dp_resources.sandbox.preload import preload

    preload()
    guard = policy.Session(policy.DEFAULT_ALLOWED_MODULES, 1_000_000)
    guard.index_internals()
    return guard


def _members(module_name: str) -> list[tuple[str, Any]]:
    module = importlib.import_module(module_name)
    allowed = MODULE_MEMBERS[module_name]
    names = allowed if allowed is not None else [n for n in dir(module) if not n.startswith("_")]
    members = []
    for name in sorted(names):
        value = getattr(module, name)
        if not isinstance(value, types.ModuleType):
            members.append((name, value))
    return members


@pytest.mark.parametrize("module_name", sorted(MODULE_MEMBERS), ids=lambda n: f"X1-scan-{n}")
def test_X1_allowed_modules_hold_no_attribute_copiers(module_name: str) -> None:
    """X1: no member a snippet may read calls getattr/setattr/eval by a name it is given."""
    flagged = []
    for name, value in _members(module_name):
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):
            continue  # implemented in C
        if ATTRIBUTE_CALLS.search(source) and f"{module_name}.{name}" not in REVIEWED:
            flagged.append(f"{module_name}.{name}")
    assert flagged == [], f"review these before allowing them: {flagged}"


def _clean(value: Any) -> bool:
    return (
        not any(value is copier for copier in COPIERS)
        and not isinstance(value, INTERNAL_TYPES)
        and not (isinstance(value, dict) and any(value is vars(m) for m in (builtins, sys, math, json)))
    )


def _walk(session: policy.Session, obj: Any, name: str) -> tuple[bool, Any]:
    """(allowed, value) of the snippet reading ``obj.name``."""
    try:
        return True, session.guarded_getattr(obj, name)
    except policy.PolicyViolation:
        return False, None
    except Exception:  # noqa: BLE001 - a property that raises is no route
        return False, None


STDLIB = sorted(set(policy.DEFAULT_ALLOWED_MODULES) | {"collections.abc"})


@pytest.mark.parametrize("module_name", STDLIB, ids=lambda n: f"X1-walk-{n}")
def test_X1_every_attribute_chain_from_allowed_modules_is_clean(session: policy.Session, module_name: str) -> None:
    """X1: every chain of two public attributes from an allowed module ends refused or clean."""
    module = importlib.import_module(module_name)
    for first in dir(module):
        allowed, value = _walk(session, module, first)
        if not allowed:
            continue
        assert _clean(value), f"{module_name}.{first}"
        for second in dir(value):
            allowed, inner = _walk(session, value, second)
            if allowed:
                assert _clean(inner), f"{module_name}.{first}.{second}"


def _public(obj: Any) -> list[str]:
    try:
        return sorted(name for name in dir(obj) if not name.startswith("_"))
    except Exception:  # noqa: BLE001
        return []


@st.composite
def attribute_walks(draw: st.DrawFn) -> list[str]:
    import numpy as np
    import pandas as pd

    root_name = draw(st.sampled_from(["pd", "np", "df", "series"]))
    frame = pd.DataFrame({"a": [1, 2], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    roots = {"pd": pd, "np": np, "df": frame, "series": frame["t"]}
    path = [root_name]
    obj: Any = roots[root_name]
    for _ in range(draw(st.integers(1, 4))):
        names = _public(obj)
        if not names:
            break
        name = draw(st.sampled_from(names))
        path.append(name)
        try:
            obj = getattr(obj, name)
        except Exception:  # noqa: BLE001
            break
    return path


@fuzz_settings(150)
@given(path=attribute_walks())
def test_X1_attribute_walks_through_pandas_and_numpy_are_clean(session: policy.Session, path: list[str]) -> None:
    """X1 (fuzz): a random walk of public attributes from pd, np or a frame meets no internal."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    obj: Any = {"pd": pd, "np": np, "df": frame, "series": frame["t"]}[path[0]]
    for name in path[1:]:
        allowed, obj = _walk(session, obj, name)
        if not allowed:
            return
        assert _clean(obj), ".".join(path)


INTERNALS = {
    "module-namespace": lambda: vars(math),
    "builtins-namespace": lambda: vars(builtins),
    "real-getattr": lambda: builtins.getattr,
    "update-wrapper": lambda: functools.update_wrapper,
    "attrgetter": lambda: operator.attrgetter,
    "code": lambda: (lambda: 0).__code__,
    "frame": lambda: sys._getframe(),
    "cell": lambda: (lambda x: lambda: x)(1).__closure__[0],
}


@pytest.mark.parametrize("make", [pytest.param(m, id=f"X1-internal-{n}") for n, m in INTERNALS.items()])
def test_X1_internals_are_refused_however_reached(session: policy.Session, make: Any) -> None:
    """X1: an internal is refused as an item, in a loop and as a call's result, not only by name."""
    value = make()
    with pytest.raises(policy.PolicyViolation):
        session.guarded_getitem({"k": value}, "k")
    with pytest.raises(policy.PolicyViolation):
        list(session.guarded_iter([value]))
    with pytest.raises(policy.PolicyViolation):
        session.guarded_apply(lambda: value)


def test_X1_module_namespaces_cannot_be_written(session: policy.Session) -> None:
    """X1: a module's namespace or a library function is never a write target."""
    for target in (vars(math), vars(builtins), json.dumps, math.sqrt):
        with pytest.raises(policy.PolicyViolation):
            session.guarded_write(target)
