"""Load and harden everything a snippet may use before the child closes its files.

After ``isolation.lockdown`` the child cannot open a file, so nothing can be imported lazily
from then on. This module imports the allowed modules and the pandas/numpy internals that common
operations pull in on first use, runs a small warm-up so those lazy imports happen now, and
caches every time zone (``tz_convert("Europe/Berlin")`` would otherwise read tzdata files).

It also closes two routes around the attribute guard that live inside pandas itself, which is
safe because each child is thrown away after one snippet:

- ``pd.eval``, ``DataFrame.eval`` and ``DataFrame.query`` evaluate strings with their own parser,
  which walks dunder attributes (``pd.eval("(1).__class__.__bases__")``); they are replaced with a
  refusal.
- ``df.agg("name")``, ``df.apply("name")``, ``groupby(...).agg("name")`` and friends look the
  name up with the builtin ``getattr``; in those modules it is shadowed by a version that refuses
  ``_``-prefixed and denied names.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from dp_resources.sandbox import syscalls
from dp_resources.sandbox.policy import (
    DEFAULT_ALLOWED_MODULES,
    DENIED_ATTRIBUTES,
    DENIED_PREFIXES,
    INSPECT_ATTRIBUTES,
    record_violation,
)

# Packages imported whole: pandas and numpy import many of their own modules on first use
# (``pivot_table`` with ``columns=`` loads a reshape module, ``str.encode("cp949")`` a codec).
_PACKAGE_TREES = (
    "pandas.core",
    "pandas.tseries",
    "pandas._libs",
    "pandas.io.formats",
    "pandas.io.json",
    "pandas.arrays",
    "numpy.lib",
    "numpy.linalg",
    "numpy.fft",
    "numpy.random",
    "numpy.ma",
    "numpy.polynomial",
    "numpy._core",
    "numpy.strings",
    "encodings",
)
# Optional-dependency or test modules inside those trees.
_SKIP_PREFIXES = (
    "pandas.core._numba",
    "pandas.io.formats.style",
    "numpy._core.cversions",
    "numpy.ma.timer_comparison",
    "numpy.ma.testutils",
    "encodings.mbcs",
    "encodings.oem",
)
# Single modules used lazily by pandas, pyarrow and the standard library.
_LAZY_MODULES = (
    "pyarrow",
    "pyarrow.ipc",
    "pyarrow.compute",
    "pyarrow.pandas_compat",
    "zoneinfo",
    "zoneinfo._zoneinfo",
    "decimal",
    "collections.abc",
    "_strptime",
    "calendar",
    "locale",
    "fractions",
    "unicodedata",
    "pandas.api.types",
    "pandas.errors",
)
# Modules whose ``getattr`` resolves user-given method names.
_DISPATCH_MODULES = (
    "pandas.core.apply",
    "pandas.core.groupby.generic",
    "pandas.core.groupby.groupby",
    "pandas.core.resample",
)

_zone_cache: list[Any] = []


def _refusing(name: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise record_violation(
            f'"{name}" is refused in the sandbox: it evaluates strings as code; write the expression in Python instead'
        )

    return refused


def _dispatch_getattr(obj: Any, name: Any, *default: Any) -> Any:
    if isinstance(name, str) and (
        name.startswith(("_", *DENIED_PREFIXES)) or name in INSPECT_ATTRIBUTES or name in DENIED_ATTRIBUTES
    ):
        raise record_violation(f'method name "{name}" is refused in the sandbox')
    return builtins.getattr(obj, name, *default)


def harden_pandas() -> None:
    import pandas
    import pandas.core.computation.eval as computation_eval

    refused_eval = _refusing("pandas.eval")
    pandas.eval = refused_eval
    computation_eval.eval = refused_eval
    pandas.DataFrame.eval = _refusing("DataFrame.eval")
    pandas.DataFrame.query = _refusing("DataFrame.query")
    for module_name in _DISPATCH_MODULES:
        module = importlib.import_module(module_name)
        module.getattr = _dispatch_getattr  # type: ignore[attr-defined]


def _warm_up() -> None:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        {
            "a": [1, 2, 3],
            "b": ["x", "y", "x"],
            "c": [1.5, None, 2.5],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        }
    )
    frame.describe(include="all")
    frame.groupby("b").agg({"a": "sum", "c": "mean"})
    frame.merge(frame, on="a")
    frame.pivot_table(index="b", values="a", aggfunc="sum")
    frame.melt(id_vars="b")
    pd.concat([frame, frame])
    frame["b"].str.upper().str.contains("X")
    frame["t"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin")
    frame.set_index("t").resample("D").sum(numeric_only=True)
    frame["a"].rolling(2).mean()
    frame.to_csv()
    frame.to_json(date_format="iso")
    frame.to_dict("records")
    repr(frame)
    frame.to_string()
    np.random.default_rng(0).random(3)
    np.linalg.norm(np.arange(3))


def _cache_time_zones() -> None:
    """Keep every zone alive in both ZoneInfo caches (pandas also uses the pure-Python twin)."""
    import zoneinfo

    _zoneinfo = importlib.import_module("zoneinfo._zoneinfo")  # the twin has no stub in typeshed
    for key in sorted(zoneinfo.available_timezones()):
        for cls in (zoneinfo.ZoneInfo, _zoneinfo.ZoneInfo):
            # A broken tzdata entry must not stop the sandbox from starting.
            with contextlib.suppress(Exception):
                _zone_cache.append(cls(key))


def _import_tree(package: str) -> None:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if ".tests" in info.name or info.name.startswith(_SKIP_PREFIXES):
            continue
        with contextlib.suppress(ImportError):  # an optional dependency that is not installed
            importlib.import_module(info.name)


def preload(extra_modules: Iterable[str] = ()) -> None:
    """Import, warm up and harden; idempotent, so the fork server and each child may call it."""
    for name in (
        *DEFAULT_ALLOWED_MODULES,
        "pandas",
        "numpy",
        *_LAZY_MODULES,
        *extra_modules,
    ):
        if name not in sys.modules:
            importlib.import_module(name)
    if not _zone_cache:
        for package in _PACKAGE_TREES:
            _import_tree(package)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _warm_up()
        _cache_time_zones()
        harden_pandas()
        # libseccomp is found with ``ldconfig`` on import: do it while files can still be read.
        syscalls.available()
