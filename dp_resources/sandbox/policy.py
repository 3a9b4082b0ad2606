"""What sandboxed code may touch: RestrictedPython's compiler plus the runtime guards it calls.

This module runs only inside the sandbox child. RestrictedPython rewrites the snippet so that
every attribute read, item read, write, iteration, in-place operator, import and ``print`` goes
through a function we supply (``_getattr_``, ``_getitem_``, ...). Those functions are the policy:

- no attribute whose name starts with ``_`` (dunders included), no frame/code/generator
  internals, no ``str.format``/``format_map``/``string.Formatter`` (their format strings can walk
  attributes), no module object outside the allow-list, and a short list of pandas/numpy names
  that read or write files or evaluate strings as code;
- imports only of allow-listed modules, and ``from m import x`` is checked like ``m.x``; of the
  standard-library modules only the members in ``rules.MODULE_MEMBERS`` (no ``functools.wraps``);
- no value that is a function's or module's internals (a module's namespace dict, code, frames,
  cells) or a callable that reads, writes or evaluates by a name it is given (the real
  ``getattr``, ``functools.update_wrapper``, ``operator.attrgetter``, ...), however it was reached:
  attribute, item, loop or ``*args`` call;
- no writes to modules, classes, module namespaces or functions the snippet did not define;
- builtins: a fixed safe set; ``open``, ``eval``, ``exec``, ``globals``, ``vars``, ``type`` and
  friends are refused when the snippet is compiled.

A refusal raises ``PolicyViolation`` and is recorded, so a snippet that catches the exception
still fails as refused. The child process around this (rlimits, no fds, no network, no env) is
what holds if this layer ever has a hole; see ``isolation.py``.
"""

from __future__ import annotations

import builtins
import operator
import string
import sys
import types
from collections.abc import Iterable
from typing import Any, NoReturn

from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
)
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from dp_resources.sandbox.compiler import SNIPPET_FILENAME, compile_snippet
from dp_resources.sandbox.rules import (
    ATTRIBUTE_COPIERS,
    DEFAULT_ALLOWED_MODULES,
    DENIED_ATTRIBUTES,
    DENIED_PREFIXES,
    MODULE_MEMBERS,
    PROVIDED_MODULES,
    REACHABLE_SUBMODULES,
    check_allowed_modules,
)

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "DENIED_ATTRIBUTES",
    "DENIED_PREFIXES",
    "INSPECT_ATTRIBUTES",
    "SNIPPET_FILENAME",
    "PolicyViolation",
    "Session",
    "check_allowed_modules",
    "compile_snippet",
    "record_violation",
]

# Objects that are an interpreter's internals whatever holds them.
_INTERNAL_TYPES = (types.CodeType, types.FrameType, types.TracebackType, types.CellType)

_INPLACE_OPERATORS = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}

_EXTRA_BUILTINS = (
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "enumerate",
    "zip",
    "map",
    "filter",
    "sorted",
    "reversed",
    "sum",
    "min",
    "max",
    "any",
    "all",
    "iter",
    "next",
    "format",
    "bin",
    "ascii",
    "bytes",
    "bytearray",
    "StopIteration",
    "NotImplemented",
)


class PolicyViolation(Exception):
    """Raised inside the child when the snippet asks for something the policy refuses."""


class OutputLimitExceeded(Exception):
    """Raised inside the child when printed output passes ``max_output_bytes``."""


# Refusals seen in this process. A child runs one snippet and exits, so process-wide state is
# exactly one snippet's state; it lets a refusal stick even when the snippet catches it.
_violations: list[str] = []


def record_violation(reason: str) -> PolicyViolation:
    _violations.append(reason)
    return PolicyViolation(reason)


def recorded_violations() -> list[str]:
    return list(_violations)


class Session:
    """The policy state of one snippet run: allow-lists, recorded refusals and printed output."""

    def __init__(self, allowed_modules: Iterable[str], max_output_bytes: int):
        self.importable = frozenset(check_allowed_modules(allowed_modules)) | set(PROVIDED_MODULES)
        self.reachable = self.importable | REACHABLE_SUBMODULES
        self.max_output_bytes = max_output_bytes
        self.output: list[str] = []
        self.output_bytes = 0
        self.output_exceeded = False
        # id -> what it is, for objects refused as values (see ``index_internals``); the objects
        # themselves are kept alive by their modules, so an id is never reused while we run.
        self._internals: dict[int, str] = {}
        self._globals: dict[str, Any] | None = None

    def index_internals(self) -> None:
        """Record every module namespace and attribute copier; call once everything is imported."""
        internals: dict[int, str] = {}
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if isinstance(module, types.ModuleType) and isinstance(namespace, dict):
                internals[id(namespace)] = f'the namespace of module "{module.__name__}"'
        internals[id(builtins.__dict__)] = "the interpreter's builtins"
        for entry in ATTRIBUTE_COPIERS:
            module_name, _, name = entry.partition(":")
            copier_module = sys.modules.get(module_name)
            found = getattr(copier_module, name, None) if copier_module is not None else None
            if found is not None:
                internals[id(found)] = f'"{module_name}.{name}", which reads, writes or evaluates by a name it is given'
        self._internals = internals

    # -- refusals -------------------------------------------------------------------------
    def refuse(self, reason: str) -> NoReturn:
        raise record_violation(reason)

    def attribute_refusal(self, obj: Any, name: str) -> str | None:
        """Why ``obj.name`` is refused, or None when it is allowed."""
        if name.startswith("_"):
            return f'attribute "{name}" is refused: names starting with "_" are not allowed'
        if name in INSPECT_ATTRIBUTES:
            return f'attribute "{name}" is refused: frame and code internals are not reachable'
        if name in ("format", "format_map") and (
            isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))
        ):
            return f'"str.{name}" is refused: format strings can read attributes; use an f-string'
        if (
            (obj is string and name == "Formatter")
            or isinstance(obj, string.Formatter)
            or (isinstance(obj, type) and issubclass(obj, string.Formatter))
        ):
            return '"string.Formatter" is refused: format strings can read attributes'
        if isinstance(obj, types.ModuleType) and obj.__name__ not in self.reachable:
            return f'module "{obj.__name__}" is not allowed in the sandbox'
        if isinstance(obj, types.ModuleType):
            members = MODULE_MEMBERS.get(obj.__name__)
            if members is not None and name not in members:
                return (
                    f'"{obj.__name__}.{name}" is not available in the sandbox; available: {", ".join(sorted(members))}'
                )
        if id(obj) in self._internals:
            return f"{self._internals[id(obj)]} is not reachable in the sandbox"
        if name in DENIED_ATTRIBUTES or name.startswith(DENIED_PREFIXES):
            return (
                f'attribute "{name}" is refused: it reaches files or raw memory, or evaluates '
                "strings as code; pass data in through the node's inputs"
            )
        if name == "obj" and isinstance(obj, BaseException):
            return 'attribute "obj" of an exception is refused: it can leak internal objects'
        return None

    def check_value(self, value: Any, where: str) -> Any:
        if isinstance(value, types.ModuleType) and value.__name__ not in self.reachable:
            self.refuse(f'{where} is module "{value.__name__}", which is not allowed')
        if id(value) in self._internals:
            self.refuse(f"{where} is {self._internals[id(value)]}, which is not allowed")
        if isinstance(value, _INTERNAL_TYPES):
            self.refuse(f"{where} is a {type(value).__name__} object, which is not allowed")
        return value

    def guarded_iter(self, iterable: Any) -> Any:
        """``for`` loops and comprehensions: every item is checked like an attribute value."""
        check = self.check_value
        for item in iterable:
            yield check(item, "an item in a loop")

    def guarded_apply(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        return self.check_value(function(*args, **kwargs), "the result of a call")

    # -- the hooks RestrictedPython calls -------------------------------------------------
    def guarded_getattr(self, obj: Any, name: Any, *default: Any) -> Any:
        if type(name) is not str:
            raise TypeError("attribute name must be a string")
        reason = self.attribute_refusal(obj, name)
        if reason:
            self.refuse(reason)
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        return self.check_value(value, f'attribute "{name}"')

    def guarded_setattr(self, obj: Any, name: Any, value: Any) -> None:
        """The ``setattr`` builtin: the same rules as ``obj.name = value`` in the snippet."""
        setattr(self.guarded_write(obj), self._settable_name(name), value)

    def guarded_delattr(self, obj: Any, name: Any) -> None:
        delattr(self.guarded_write(obj), self._settable_name(name))

    def _settable_name(self, name: Any) -> str:
        if type(name) is not str:
            raise TypeError("attribute name must be a string")
        if name.startswith("_") or name in INSPECT_ATTRIBUTES:
            self.refuse(
                f'setting attribute "{name}" is refused: names starting with "_" and frame internals are not allowed'
            )
        return name

    def guarded_hasattr(self, obj: Any, name: Any) -> bool:
        try:
            self.guarded_getattr(obj, name)
        except AttributeError:
            return False
        return True

    def guarded_getitem(self, obj: Any, index: Any) -> Any:
        return self.check_value(obj[index], "the item")

    def guarded_write(self, obj: Any) -> Any:
        if id(obj) in self._internals:
            self.refuse(f"changing {self._internals[id(obj)]} is not allowed")
        if isinstance(obj, types.FunctionType) and obj.__globals__ is not self._globals:
            self.refuse(
                f'changing function "{obj.__name__}" is not allowed; only functions the '
                "snippet defines can be given attributes"
            )
        if isinstance(obj, (types.BuiltinFunctionType, types.MethodType)):
            self.refuse("changing a library function is not allowed")
        if isinstance(obj, types.ModuleType):
            self.refuse(f'changing module "{obj.__name__}" is not allowed; use your own variables')
        if isinstance(obj, type):
            self.refuse(f'changing class "{obj.__name__}" is not allowed; use your own objects')
        return obj

    def guarded_import(
        self,
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> types.ModuleType:
        if type(fromlist) is list and fromlist in ([], ["__doc__"]) and name in sys.modules:
            # CPython's C-level PyImport_Import (``datetime.strptime`` loading ``_strptime``)
            # calls the current frame's ``__import__`` with a *list* fromlist ([] since 3.9,
            # ["__doc__"] before). Snippet ``import`` statements pass None or a tuple, so this
            # is never the snippet asking; the module goes to the C caller, and must already
            # be loaded.
            return sys.modules[name]
        if level != 0:
            self.refuse("relative imports are not allowed")
        if name not in self.importable and name not in self.reachable:
            allowed = ", ".join(sorted(self.importable))
            self.refuse(
                f'import of "{name}" is not allowed; allowed modules: {allowed} '
                "(a deployment adds modules with SandboxResource.allowed_modules)"
            )
        module = sys.modules.get(name)
        if module is None:
            self.refuse(f'module "{name}" was not loaded before the sandbox closed')
        for item in fromlist or ():
            if item == "*":
                self.refuse('"from ... import *" is not allowed')
            self.guarded_getattr(module, item)
        if fromlist:
            return module
        return sys.modules[name.split(".")[0]]

    def inplacevar(self, op: str, target: Any, value: Any) -> Any:
        try:
            function = _INPLACE_OPERATORS[op]
        except KeyError:
            self.refuse(f"operator {op} is not allowed")
        return function(target, value)

    def write_output(self, text: str) -> None:
        size = len(text.encode("utf-8", "replace"))
        if self.output_exceeded or self.output_bytes + size > self.max_output_bytes:
            self.output_exceeded = True
            raise OutputLimitExceeded(f"printed output passed {self.max_output_bytes} bytes")
        self.output_bytes += size
        self.output.append(text)

    def print_collector(self, _getattr_: Any = None) -> PrintCollector:
        session = self

        class CappedCollector(PrintCollector):
            def write(self, text: str) -> None:
                session.write_output(text)
                self.txt.append(text)

            def _call_print(self, *objects: Any, **kwargs: Any) -> None:
                kwargs["file"] = self
                print(*objects, **kwargs)

        return CappedCollector(_getattr_)

    # -- the namespace --------------------------------------------------------------------
    def builtins(self) -> dict[str, Any]:
        table = dict(safe_builtins)
        for name in _EXTRA_BUILTINS:
            table[name] = getattr(builtins, name)
        table.update(
            getattr=self.guarded_getattr,
            hasattr=self.guarded_hasattr,
            setattr=self.guarded_setattr,
            delattr=self.guarded_delattr,
            __import__=self.guarded_import,
            range=range,
            isinstance=isinstance,
        )
        return table

    def namespace(self, variables: dict[str, Any]) -> dict[str, Any]:
        import numpy
        import pandas

        namespace: dict[str, Any] = {
            "__builtins__": self.builtins(),
            "__name__": "snippet",
            "__metaclass__": type,
            "_getattr_": self.guarded_getattr,
            "_getitem_": self.guarded_getitem,
            "_write_": self.guarded_write,
            "_getiter_": self.guarded_iter,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_inplacevar_": self.inplacevar,
            "_apply_": self.guarded_apply,
            "_print_": self.print_collector,
            "pd": pandas,
            "np": numpy,
        }
        namespace.update(variables)
        self._globals = namespace
        return namespace

    @property
    def stdout(self) -> str:
        return "".join(self.output)
