"""X1: the sandbox escape corpus. Every case must be refused with ``SandboxPolicyError``.

Cases cover dunder walks, ``__import__`` and imports outside the allow-list, format-string
attribute access, ``getattr`` tricks, namespace builtins, frame walks through generators and
tracebacks, module smuggling through allowed modules, pandas' own string evaluators and
method-name dispatch, and the published RestrictedPython advisories (generator ``gi_frame``,
CVE-2023-37271; ``str.format``/``string.Formatter``, CVE-2023-41039; ``AttributeError.obj`` leaking
a module, CVE-2024-47532; ``try/except*`` type confusion, CVE-2025-22153). A second table shows
that ordinary snippets still run, so the policy is not simply refusing everything.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dp_resources.sandbox import Sandbox, SandboxPolicyError

ESCAPES: dict[str, str] = {
    # dunder walks to object.__subclasses__ and friends
    "dunder-class-walk": "result = ().__class__.__bases__[0].__subclasses__()",
    "dunder-mro-walk": "result = [].__class__.__mro__[-1].__subclasses__()",
    "type-subclasses": "result = type.__subclasses__(type)",
    "type-builtin": "result = type(1)",
    "object-builtin": "result = object",
    "function-globals": "result = (lambda: 0).__globals__",
    "dunder-dict": "result = pd.__dict__",
    "private-attribute": "result = df._mgr",
    # __import__ and imports
    "dunder-import": "result = __import__('os')",
    "builtins-name": "result = __builtins__['open']",
    "import-os": "import os\nresult = os.getcwd()",
    "import-sys": "import sys\nresult = sys.modules",
    "import-subprocess": "import subprocess",
    "import-importlib": "import importlib\nresult = importlib.import_module('os')",
    "import-ctypes": "import ctypes",
    "import-operator-attrgetter": "import operator\nresult = operator.attrgetter('__class__')(1)",
    "from-import-os-system": "from os import system",
    "relative-import": "from . import child",
    "import-private-module": "import _io",
    "from-pandas-import-io": "from pandas import io\nresult = io.common",
    "from-json-import-codecs": "from json import codecs",
    # modules smuggled through allowed modules
    "pandas-io-os": "result = pd.io.common.os.system",
    "pandas-core": "result = pd.core",
    "numpy-lib": "result = np.lib.stride_tricks.as_strided",
    "numpy-ctypeslib": "result = np.ctypeslib",
    "json-codecs": "import json\nresult = json.codecs",
    "re-enum": "import re\nresult = re.enum",
    "functools-getattr-builtin": "import functools\nresult = functools.reduce(getattr, ['__class__'], 1)",
    # getattr tricks
    "getattr-concat": "result = getattr(1, '__cl' + 'ass__')",
    "getattr-join": "result = getattr(df, ''.join(['_', '_', 'dict', '_', '_']))",
    "getattr-default": "result = getattr(1, '__class__', None)",
    "hasattr-probe": "result = hasattr(1, '__class__')",
    "getattr-frame-attr": "def g():\n    yield 1\nresult = getattr(g(), 'gi_' + 'frame')",
    "getattr-read-csv": "result = getattr(pd, 'read_' + 'csv')",
    "caught-refusal-still-refused": (
        "try:\n    x = getattr(1, '__class__')\nexcept Exception:\n    x = None\nresult = 1"
    ),
    # format-string attribute access
    "str-format": "result = '{0.__class__}'.format(1)",
    "str-format-map": "result = '{x.__class__}'.format_map({'x': 1})",
    "str-format-unbound": "result = str.format('{0.__class__}', 1)",
    "str-format-map-via-series": "result = pd.Series(['{0.__class__}']).map(str.format)",
    "string-formatter": "import string\nresult = string.Formatter().format('{0.__class__}', 1)",
    "string-formatter-vformat": ("import string\nresult = string.Formatter().vformat('{0.__class__}', [1], {})"),
    "fstring-dunder": "result = f'{(1).__class__}'",
    # namespace builtins
    "vars": "result = vars()",
    "globals": "result = globals()",
    "locals": "result = locals()",
    "dir": "result = dir()",
    "eval": "result = eval('1 + 1')",
    "exec": "exec('x = 1')",
    "compile": "result = compile('1', 'x', 'eval')",
    "open-read": "result = open('/etc/passwd').read()",
    "breakpoint": "breakpoint()",
    # frame walks
    "generator-gi-frame": "def g():\n    yield 1\nresult = g().gi_frame.f_back.f_globals",
    "generator-gi-code": "def g():\n    yield 1\nresult = g().gi_code",
    "traceback-frame": ("try:\n    1 / 0\nexcept Exception as e:\n    result = e.__traceback__.tb_frame.f_globals"),
    "with-traceback": "try:\n    1 / 0\nexcept Exception as e:\n    result = e.__traceback__",
    # published RestrictedPython advisories
    "advisory-attributeerror-obj": (
        "import math\ntry:\n    math.nope\nexcept AttributeError as e:\n    result = e.obj"
    ),
    "advisory-try-star": "try:\n    pass\nexcept* ValueError:\n    pass",
    "advisory-metaclass": "class A(metaclass=type):\n    pass",
    # pandas' own evaluators and method-name dispatch
    "pandas-eval": "result = pd.eval('(1).__class__.__bases__')",
    "dataframe-query": "result = df.query('a.__class__ == 1')",
    "dataframe-eval": "result = df.eval('a + 1')",
    "pandas-agg-dunder": "result = pd.Series([1]).agg('__class__')",
    "pandas-apply-eval-by-name": "result = df.apply('eval', args=('a + 1',))",
    "groupby-agg-dunder": "result = df.groupby('a').agg('__reduce_ex__', 2)",
    "transform-dunder": "result = df.transform('__abs__')",
    "numpy-save": "result = np.save('x.npy', np.arange(3))",
    "pandas-read-csv": "result = pd.read_csv('/etc/passwd')",
    "pandas-style": "result = df.style",
    # writes to modules and classes
    "patch-module": "import math\nmath.pi = 3",
    "patch-pandas-class": "pd.DataFrame.sum = len",
    "patch-pandas-function": "pd.concat.cache = 1",
    # issue 16: library helpers that copy attributes by a name the snippet gives, or evaluate
    "update-wrapper-writes-module": (
        "import functools, math\nclass H:\n    pass\nh = H()\nh.pi = 3\n"
        "functools.update_wrapper(math, h, assigned=('pi',), updated=())\nresult = math.pi"
    ),
    "update-wrapper-merges-pandas-globals": (
        "import functools\ndef f():\n    pass\ndef bind(getattr):\n    pass\n"
        "functools.update_wrapper(f, pd.concat, assigned=(), updated=('__globals__',))\n"
        "def leak():\n    return str(getattr(1, '__cl' + 'ass__'))\nresult = leak()"
    ),
    "update-wrapper-copies-globals": (
        "import functools\nclass H:\n    pass\nh = H()\n"
        "functools.update_wrapper(h, pd.concat, assigned=('__globals__',), updated=())\nresult = 1"
    ),
    "wraps-decorator": ("import functools\n@functools.wraps(pd.concat)\ndef f():\n    pass\nresult = 1"),
    "from-functools-import-wraps": "from functools import wraps\nresult = 1",
    "wraps-via-partial": ("from functools import partial, update_wrapper\nresult = 1"),
    "singledispatch-evaluates-annotation": (
        "import functools\n@functools.singledispatch\ndef f(x):\n    return 0\n"
        'def g(x: "().__class__.__mro__[1].__subclasses__()"):\n    return 1\n'
        "f.register(g)\nresult = 1"
    ),
    "total-ordering-on-library-class": (
        "import functools, decimal\nresult = str(functools.total_ordering(decimal.Context))"
    ),
    "import-copy": "import copy\nresult = copy.copy(df)",
    "setattr-dunder": "class H:\n    pass\nh = H()\nsetattr(h, '__globals__', 1)\nresult = 1",
    "setattr-module": "import math\nsetattr(math, 'pi', 3)\nresult = math.pi",
    "delattr-module": "import math\ndelattr(math, 'pi')\nresult = 1",
    "setattr-library-function": "setattr(pd.concat, 'x', 1)\nresult = 1",
    # helpers that call a function the snippet passes with names it chooses
    "itertools-starmap-getattr": ("import itertools\nresult = list(itertools.starmap(getattr, [(1, '__class__')]))"),
    "map-getattr": "result = list(map(getattr, [1], ['__class__']))",
    "partial-getattr": "import functools\nresult = functools.partial(getattr, 1)('__class__')",
    "sorted-key-getattr": "result = sorted([1], key=lambda v: getattr(v, '__class__'))",
    "json-object-hook-getattr": (
        "import json\nresult = json.loads('{\"a\": 1}', object_hook=lambda d: getattr(d, '__class__'))"
    ),
    "series-map-getattr": "result = df.a.map(lambda v: getattr(v, '__class__'))",
    "internal-through-loop": ("import functools\nfor f in [functools]:\n    result = f.update_wrapper"),
    "json-load-file-object": "import json\nresult = str(json.load)",
}


@pytest.mark.parametrize("code", [pytest.param(code, id=f"X1-{name}") for name, code in ESCAPES.items()])
def test_X1_escape_is_refused(sandbox: Sandbox, code: str) -> None:
    """X1: each escape attempt is refused as a policy error, never run and never crashes."""
    with pytest.raises(SandboxPolicyError) as refused:
        sandbox.run(code, {"df": pd.DataFrame({"a": [1, 2]})})
    assert "sandbox" in str(refused.value)


ALLOWED: dict[str, tuple[str, Any]] = {
    "json": (
        "import json\nresult = json.loads(json.dumps({'a': [1, 2]}))",
        {"a": [1, 2]},
    ),
    "math-from-import": ("from math import sqrt\nresult = sqrt(16)", math.sqrt(16)),
    "statistics": (
        "import statistics\nresult = statistics.median([3, 1, 2])",
        statistics.median([3, 1, 2]),
    ),
    "re": (
        "import re\nresult = re.findall(r'\\d+', 'a1b22')",
        re.findall(r"\d+", "a1b22"),
    ),
    "collections": (
        "import collections\nresult = dict(collections.Counter('abca'))",
        dict(Counter("abca")),
    ),
    "collections-abc": (
        "import collections.abc\nresult = isinstance({}, collections.abc.Mapping)",
        True,
    ),
    "decimal": (
        "import decimal\nresult = str(decimal.Decimal('1.10') + 1)",
        str(Decimal("1.10") + 1),
    ),
    "datetime": (
        "import datetime\nresult = (datetime.date(2024, 3, 1) - datetime.timedelta(days=1)).isoformat()",
        "2024-02-29",
    ),
    "itertools-functools": (
        ("import itertools, functools\nresult = functools.reduce(lambda a, b: a + b, itertools.chain([1, 2], [3]))"),
        6,
    ),
    "string-constants": ("import string\nresult = string.ascii_lowercase[:3]", "abc"),
    "class-with-init": (
        "class Box:\n    def __init__(self, v):\n        self.v = v\nresult = Box(3).v",
        3,
    ),
    "fstring-and-format-builtin": (
        "result = f'{3.14159:.2f}' + format(2, '03d')",
        "3.14002",
    ),
    "comprehension-unpacking": (
        "result = sorted(k for k, v in {'b': 1, 'a': 2}.items())",
        ["a", "b"],
    ),
    "augmented-assign": ("x = 1\nx += 2\nx *= 3\nresult = x", 9),
    "numpy-random": (
        "result = int(np.random.default_rng(0).integers(0, 10, 5).sum())",
        int(np.random.default_rng(0).integers(0, 10, 5).sum()),
    ),
    "timezone": (
        (
            "s = pd.Series(pd.to_datetime(['2024-06-01 12:00'])).dt.tz_localize('UTC')\n"
            "result = str(s.dt.tz_convert('Asia/Tokyo').iloc[0])"
        ),
        "2024-06-01 21:00:00+09:00",
    ),
    "pandas-to-csv-string": ("result = df.to_csv(index=False)", "a\n1\n2\n"),
    "pandas-agg-by-name": ("result = df.agg('sum').to_dict()", {"a": 3}),
    "strptime": (
        "import datetime\nresult = datetime.datetime.strptime('2024-03-01', '%Y-%m-%d').day",
        1,
    ),
    "to-datetime-format": (
        "result = str(pd.to_datetime(['01/03/2024'], format='%d/%m/%Y')[0].date())",
        "2024-03-01",
    ),
    "encode-codecs": (
        "result = len('한국'.encode('cp949') + 'ü'.encode('latin-1'))",
        5,
    ),
    "pandas-offsets-and-types": (
        (
            "result = [str((pd.Timestamp('2024-01-15') + pd.offsets.MonthEnd()).date()), "
            "pd.api.types.is_numeric_dtype(df.a)]"
        ),
        ["2024-01-31", True],
    ),
    "describe": ("result = df.describe().loc['mean', 'a']", 1.5),
    "setattr-own-object": (
        "class H:\n    pass\nh = H()\nsetattr(h, 'x', 2)\nresult = h.x",
        2,
    ),
    "functools-members-left": (
        (
            "import functools\n@functools.lru_cache\ndef sq(v):\n    return v * v\n"
            "inc = functools.partial(lambda a, b: a + b, 1)\n"
            "result = [sq(3), inc(2), sorted([3, 1], key=functools.cmp_to_key(lambda a, b: a - b))]"
        ),
        [9, 3, [1, 3]],
    ),
    "namedtuple-template-json-hook": (
        (
            "import collections, string, json\nP = collections.namedtuple('P', 'x y')\n"
            "t = string.Template('$who').substitute(who='ok')\n"
            "h = json.loads('{\"a\": 1}', object_hook=lambda d: d['a'])\n"
            "result = [P(1, 2).y, t, h]"
        ),
        [2, "ok", 1],
    ),
}


@pytest.mark.parametrize(
    ("code", "expected"),
    [pytest.param(*case, id=f"X1-allowed-{name}") for name, case in ALLOWED.items()],
)
def test_X1_ordinary_code_still_runs(sandbox: Sandbox, code: str, expected: Any) -> None:
    """X1 control: the policy refuses escapes, not ordinary Python and pandas."""
    assert sandbox.run(code, {"df": pd.DataFrame({"a": [1, 2]})}).value == expected
