"""The lists behind the sandbox policy: which modules, attributes and builtins are refused.

Kept apart from the guards in ``policy.py`` so a reviewer can read the whole rule set at once.
A deployment extends only ``allowed_modules`` (through ``SandboxResource``); everything else here
is fixed, and ``NEVER_ALLOWED_MODULES`` cannot be allowed by configuration.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_ALLOWED_MODULES: tuple[str, ...] = (
    "math",
    "statistics",
    "datetime",
    "re",
    "json",
    "decimal",
    "itertools",
    "functools",
    "collections",
    "string",
)
# Always importable and reachable: the objects every snippet is given as ``pd`` and ``np``.
PROVIDED_MODULES: tuple[str, ...] = ("pandas", "numpy")
# Submodules reachable as attributes (``np.random.default_rng()``) but not listed for import.
REACHABLE_SUBMODULES: frozenset[str] = frozenset(
    {
        "numpy.random",
        "numpy.linalg",
        "numpy.fft",
        "pandas.api",
        "pandas.api.types",
        "pandas.errors",
        "pandas.tseries",
        "pandas.tseries.offsets",
        "collections.abc",
    }
)
# What a snippet may read from each allowed standard-library module. ``None`` means every public
# name that is not a module: those modules are implemented in C or hold only functions and classes
# that never read or write attributes by a name the caller chooses (the test
# ``test_X1_allowed_modules_hold_no_attribute_copiers`` scans their source to keep it so). The
# others are cut to what snippets need: ``functools.update_wrapper``/``wraps`` copy any attribute
# named in ``assigned``/``updated`` with the real ``getattr``/``setattr`` (``__globals__`` out of a
# pandas function, a new value into a module), ``singledispatch().register`` evaluates string
# annotations with ``eval`` outside RestrictedPython, ``total_ordering`` writes dunder methods onto
# any class it is given, and ``json.load``/``dump`` want file objects.
MODULE_MEMBERS: dict[str, frozenset[str] | None] = {
    "math": None,
    "statistics": None,
    "datetime": None,
    "re": None,
    "decimal": None,
    "itertools": None,
    "collections.abc": None,
    "functools": frozenset({"reduce", "partial", "lru_cache", "cache", "cmp_to_key"}),
    "collections": frozenset(
        {
            "Counter",
            "OrderedDict",
            "defaultdict",
            "deque",
            "namedtuple",
            "ChainMap",
            "UserDict",
            "UserList",
            "UserString",
            "abc",
        }
    ),
    "string": frozenset(
        {
            "ascii_letters",
            "ascii_lowercase",
            "ascii_uppercase",
            "digits",
            "hexdigits",
            "octdigits",
            "printable",
            "punctuation",
            "whitespace",
            "capwords",
            "Template",
        }
    ),
    "json": frozenset({"dumps", "loads", "JSONDecodeError", "JSONEncoder", "JSONDecoder"}),
}
# Callables that read, write or evaluate by a name or string the caller passes, wherever they are
# found (``module:name``): refused as values however a snippet reaches them, so a new route to one
# (an attribute of a pandas object, an item of a dict) is still closed.
ATTRIBUTE_COPIERS: tuple[str, ...] = (
    "builtins:getattr",
    "builtins:setattr",
    "builtins:delattr",
    "builtins:eval",
    "builtins:exec",
    "builtins:compile",
    "builtins:open",
    "builtins:__import__",
    "builtins:vars",
    "builtins:dir",
    "builtins:globals",
    "builtins:locals",
    "builtins:breakpoint",
    "builtins:input",
    "builtins:super",
    "builtins:type",
    "builtins:object",
    "builtins:memoryview",
    "functools:update_wrapper",
    "functools:wraps",
    "functools:singledispatch",
    "functools:singledispatchmethod",
    "functools:total_ordering",
    "operator:attrgetter",
    "operator:methodcaller",
    "typing:get_type_hints",
    "inspect:getattr_static",
    "inspect:get_annotations",
    "copy:copy",
    "copy:deepcopy",
    "copyreg:__newobj__",
    "string:Formatter",
)
# Modules that hand out files, processes, sockets, frames or raw memory. A deployment cannot
# allow them: the point of the sandbox is that snippets never hold such handles.
NEVER_ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        "os",
        "posix",
        "nt",
        "sys",
        "subprocess",
        "socket",
        "ssl",
        "select",
        "selectors",
        "ctypes",
        "cffi",
        "importlib",
        "imp",
        "builtins",
        "io",
        "pathlib",
        "shutil",
        "glob",
        "tempfile",
        "pickle",
        "shelve",
        "marshal",
        "dbm",
        "sqlite3",
        "gc",
        "inspect",
        "traceback",
        "linecache",
        "signal",
        "threading",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "code",
        "codeop",
        "runpy",
        "pty",
        "fcntl",
        "resource",
        "mmap",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "webbrowser",
        "zipimport",
        "pkgutil",
        "site",
        "sysconfig",
        "platform",
        "operator",
        "copyreg",
        "weakref",
        "dataclasses",
        "logging",
        "warnings",
        "types",
        "typing",
        "faulthandler",
        "tracemalloc",
        "pdb",
        "bdb",
        "dis",
        "zipfile",
        "tarfile",
        "pyarrow",
        "RestrictedPython",
        "dp_resources",
        "dp_assets",
        # the parts of pandas and numpy that reach files, raw memory or their own internals
        "pandas.io",
        "pandas.core",
        "pandas.util",
        "pandas.plotting",
        "pandas.testing",
        "pandas.compat",
        "numpy.lib",
        "numpy.ctypeslib",
        "numpy.f2py",
        "numpy.testing",
    }
)

# Public names that read or write files, evaluate strings as code, or hand out raw memory.
# Refused on every object: the process has no files anyway, but the refusal is clearer.
DENIED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "eval",
        "query",
        "to_pickle",
        "to_parquet",
        "to_feather",
        "to_hdf",
        "to_sql",
        "to_stata",
        "to_excel",
        "to_clipboard",
        "to_orc",
        "to_xml",
        "tofile",
        "fromfile",
        "load",
        "save",
        "savez",
        "savez_compressed",
        "savetxt",
        "loadtxt",
        "genfromtxt",
        "fromregex",
        "memmap",
        "DataSource",
        "ctypes",
        "ctypeslib",
        "HDFStore",
        "ExcelWriter",
        "ExcelFile",
        "style",
        "plot",
        "hist",
        "boxplot",
        "set_eng_float_format",
    }
)
DENIED_PREFIXES: tuple[str, ...] = ("read_",)

# Builtins whose mere use is refused at compile time (unless the snippet defines the name).
FORBIDDEN_BUILTINS: dict[str, str] = {
    "open": "the sandbox has no files",
    "eval": "code from strings is not allowed",
    "exec": "code from strings is not allowed",
    "compile": "code from strings is not allowed",
    "globals": "namespaces are not reachable",
    "locals": "namespaces are not reachable",
    "vars": "namespaces are not reachable",
    "dir": "introspection is not allowed",
    "type": "use isinstance() instead",
    "object": "the base object is not reachable",
    "super": "class hierarchies are not reachable",
    "memoryview": "raw memory is not reachable",
    "input": "the sandbox has no terminal",
    "help": "the sandbox has no terminal",
    "exit": "the sandbox cannot be exited",
    "quit": "the sandbox cannot be exited",
    "breakpoint": "the sandbox has no debugger",
}


def check_allowed_modules(names: Iterable[str]) -> tuple[str, ...]:
    """Validate a deployment's module allow-list; raises ValueError naming the bad entry."""
    checked: list[str] = []
    for name in names:
        parts = name.split(".")
        if not name or any(not part.isidentifier() or part.startswith("_") for part in parts):
            raise ValueError(f"allowed_modules: '{name}' is not a public module name")
        prefixes = {".".join(parts[: end + 1]) for end in range(len(parts))}
        if prefixes & NEVER_ALLOWED_MODULES:
            raise ValueError(
                f"allowed_modules: '{name}' can never be allowed in the sandbox (it reaches "
                "files, processes, sockets or interpreter internals)"
            )
        checked.append(name)
    return tuple(dict.fromkeys(checked))
