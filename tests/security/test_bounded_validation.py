"""Validation is bounded, and a name a spec chooses never reaches the filesystem (issue 16).

- Declared dtypes (ChangeDataType, StaticData, FileInput ``dtype``) go through an allow-list before
  numpy or pandas: ``'S2000000000'`` would allocate 2 GB per value at schema inference. The hostile
  cases run in a child process whose address space is limited to a few hundred MB above what it
  already uses, so an allocation would fail the test instead of the machine.
- Time-zone names (expression ``now(tz)``, ``datetime64[ns, TZ]`` dtypes, ``check_timezone`` used by
  schedule triggers) are looked up in the IANA list; an audit hook proves no file is opened for
  them (pandas reads any file for ``'dateutil/<path>'``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from dp_assets.catalog import default_catalog
from dp_assets.catalog.dtypes import SIMPLE_DTYPES, dtype_error
from dp_assets.expressions import ExpressionError, parse_expression
from dp_assets.spec.triggers import ScheduleTrigger
from dp_assets.timezones import check_timezone, known_timezones
from tests.fuzzing import fuzz_settings

REPO = Path(__file__).resolve().parents[2]

# --- files opened while a check runs (sys.addaudithook: hooks cannot be removed, so one hook
# records into a list only while a test listens) -----------------------------------------------

_OPENED: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED and event in ("open", "os.listdir", "os.scandir") and args:
        _OPENED[-1].append(str(args[0]))


_HOOKED = False


@contextlib.contextmanager
def files_opened() -> Iterator[list[str]]:
    """Paths this process opens (or lists) inside the block; modules a check imports and the
    IANA list are loaded before listening, by running every surface once with a valid name."""
    global _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True
    for _, check in zone_surfaces("UTC"):
        check()
    seen: list[str] = []
    _OPENED.append(seen)
    try:
        yield seen
    finally:
        _OPENED.remove(seen)


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary.tzif"
    path.write_bytes(b"TZif2" + b"\0" * 64)
    return path


def hostile_zones(canary: Path) -> list[str]:
    return [
        "/etc/passwd",
        "../../../etc/passwd",
        "America/../../../../etc/passwd",
        "UTC\x00",
        "UTC\x00/../../etc/passwd",
        str(canary),
        f"dateutil/{canary}",
        "dateutil//etc/passwd",
        "dateutil/../../../../etc/localtime",
        "Europe",  # a folder of the tz database: IsADirectoryError before
        "zone.tab",
        "posixrules",
        "",
        "utc ",
    ]


def zone_surfaces(name: str) -> list[tuple[str, Any]]:
    """Every place a spec hands a time-zone name to the platform, as a zero-argument check."""
    catalog = default_catalog()
    zoned = f"datetime64[ns, {name}]"
    return [
        ("check_timezone", lambda: check_timezone(name)),
        ("expression now()", lambda: parse_expression(f"now({name!r})")),
        (
            "ChangeDataType dtype",
            lambda: catalog["ChangeDataType"].params_model.model_validate({"dtype": {"t": zoned}}),
        ),
        ("StaticData dtype", lambda: catalog["StaticData"].params_model.model_validate({"dtype": {"t": zoned}})),
        (
            "FileInput dtype",
            lambda: catalog["FileInput"].params_model.model_validate({"path": "a.csv", "dtype": {"t": zoned}}),
        ),
        (
            "schedule trigger timezone",
            lambda: ScheduleTrigger.model_validate({"type": "schedule", "cron": "0 * * * *", "timezone": name}),
        ),
    ]


def test_tz_hostile_names_are_refused_without_opening_a_file(canary: Path) -> None:
    """tz: a path-like, NUL-bearing or folder name is a clear error on every surface, and no file
    (the canary included) is opened to decide it."""
    with files_opened() as opened:
        for name in hostile_zones(canary):
            for surface, check in zone_surfaces(name):
                with pytest.raises((ValueError, ValidationError, ExpressionError)) as caught:
                    check()
                assert "time zone" in str(caught.value) or "dtype" in str(caught.value), (surface, name)
    assert opened == []


def test_tz_valid_names_work_everywhere() -> None:
    for name in ("UTC", "Europe/Berlin", "Asia/Seoul", "America/Argentina/Buenos_Aires"):
        for _, check in zone_surfaces(name):
            check()
    assert parse_expression("now('Asia/Seoul')").evaluate(pd.DataFrame(), {}).tzinfo is not None


PATH_LEADS = ["../", "/", "dateutil/", "dateutil//", "\x00", "Europe/", "./", "UTC/.."]
zone_names = st.one_of(
    st.text(max_size=40),
    st.tuples(st.sampled_from(PATH_LEADS), st.text(max_size=30)).map("".join),
    st.tuples(st.sampled_from(sorted(known_timezones())), st.sampled_from(["", "\x00", "/..", "/", " "])).map("".join),
)


@fuzz_settings(200)
@given(name=zone_names)
def test_tz_property_a_name_is_a_set_lookup(name: str) -> None:
    """tz property: any text is accepted exactly when it is an IANA name, by every surface, and
    deciding it opens no file."""
    with files_opened() as opened:
        valid = name in known_timezones()
        problem = None
        try:
            check_timezone(name)
        except ValueError as exc:
            problem = str(exc)
        assert (problem is None) == valid
        if not valid:
            assert "time zone" in problem
        assert (dtype_error(f"datetime64[ns, {name}]") is None) == (valid and "]" not in name)
    assert opened == []


# --- dtypes ------------------------------------------------------------------------------------

HOSTILE_DTYPES = [
    "S2000000000",
    "|S2000000000",
    "a2000000000",
    "U999999999",
    "<U999999999",
    "(1000000000,)f8",
    "f8,(100000000,)i8",
    "V100000000000",
    "V8",
    "S1",
    "O",
    "M8",
    "datetime64",
    "complex128",
    "datetime64[ns, dateutil//etc/passwd]",
    "datetime64[ns, Europe]",
    "int64[pyarrow" + "]" * 1000,
    "x" * 100_000,
    "category" + "\x00",
]


@pytest.mark.parametrize("dtype", HOSTILE_DTYPES, ids=lambda d: "dtype-" + d[:24].encode("unicode_escape").decode())
def test_dtype_hostile_names_are_refused_by_every_declaring_node(dtype: str) -> None:
    catalog = default_catalog()
    for type_name, params in (
        ("ChangeDataType", {"dtype": {"c": dtype}}),
        ("StaticData", {"rows": [{"c": "x"}], "dtype": {"c": dtype}}),
        ("FileInput", {"path": "a.csv", "dtype": {"c": dtype}}),
    ):
        with pytest.raises(ValidationError) as caught:
            catalog[type_name].params_model.model_validate(params)
        error = caught.value.errors()[0]
        assert error["loc"] == ("dtype", "c"), type_name
        assert "dtype" in error["msg"]


@fuzz_settings(300)
@given(
    name=st.one_of(
        st.text(max_size=30),
        st.sampled_from(sorted(SIMPLE_DTYPES)),
        st.from_regex(r"[SUVa<>|]?[0-9]{1,12}|\([0-9]{1,10},\)[fi][48]", fullmatch=True),
    )
)
def test_dtype_property_accepted_names_are_small_and_others_refused_quickly(name: str) -> None:
    """dtype property: a name is refused, or it is a dtype whose values take at most 16 bytes
    (or a pandas extension type); the decision takes no time in proportion to the name."""
    started = time.monotonic()
    problem = dtype_error(name)
    assert time.monotonic() - started < 0.1
    if problem is None:
        dtype = pd.api.types.pandas_dtype(name)
        assert getattr(dtype, "itemsize", 0) <= 16 or isinstance(dtype, pd.api.extensions.ExtensionDtype)
    else:
        assert "dtype" in problem


# The child limits its own address space to what it uses plus this much, then validates.
HEADROOM_MB = 300
CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from dp_assets.catalog import default_catalog
    from dp_assets.spec.validation import FlowValidationError, validate_spec

    catalog = default_catalog()
    with open("/proc/self/status") as status:
        vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = (vm_kb + {headroom} * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    out = []
    for spec in json.loads(sys.stdin.read()):
        started = time.monotonic()
        try:
            validate_spec(spec, catalog, check_compiles=False)
            out.append({{"accepted": True}})
        except FlowValidationError as exc:
            out.append({{"errors": [[e.node, e.field, e.message] for e in exc.errors],
                        "seconds": time.monotonic() - started}})
    print(json.dumps(out))
""")


def _flow(node: dict[str, Any], *, needs_input: bool) -> dict[str, Any]:
    nodes = [{"id": "rows", "type": "StaticData", "params": {"rows": [{"c": "x", "s": "a b"}]}}] if needs_input else []
    node = {**node, "inputs": ["rows"]} if needs_input else node
    return {"id": "bounded", "nodes": [*nodes, node]}


def _validate_in_limited_child(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(headroom=HEADROOM_MB)],
        input=json.dumps(specs),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_dtype_and_repeat_counts_validate_within_a_memory_limit() -> None:
    """Bounded validation: hostile dtypes and a huge split count are refused by ``validate_spec``
    in a child whose address space allows only a few hundred MB more, each in well under a
    second, with errors naming the node and the field."""
    cases: list[tuple[dict[str, Any], str]] = []
    for dtype in (
        "S2000000000",
        "U999999999",
        "(1000000000,)f8",
        "V100000000000",
        "datetime64[ns, dateutil//etc/passwd]",
    ):
        cases.append(
            (
                _flow(
                    {
                        "id": "static",
                        "type": "StaticData",
                        "params": {"rows": [{"c": "x"}, {"c": "y"}], "dtype": {"c": dtype}},
                    },
                    needs_input=False,
                ),
                "params.dtype.c",
            )
        )
        cases.append(
            (
                _flow({"id": "cast", "type": "ChangeDataType", "params": {"dtype": {"c": dtype}}}, needs_input=True),
                "params.dtype.c",
            )
        )
    cases.append(
        (
            _flow({"id": "split", "type": "SplitColumn", "params": {"column": "s", "n": 10**9}}, needs_input=True),
            "params.n",
        )
    )
    results = _validate_in_limited_child([spec for spec, _ in cases])
    for (spec, field), result in zip(cases, results, strict=True):
        assert "errors" in result, spec
        node = spec["nodes"][-1]["id"]
        assert [node, field] in [error[:2] for error in result["errors"]], (spec, result)
        assert result["seconds"] < 2, (spec, result)


def test_dtype_every_dtype_field_of_the_catalog_uses_the_allow_list() -> None:
    """Completeness: a node type added later with a ``dtype`` param must refuse a hostile name too."""
    fields = [
        (name, field_name, field)
        for name, node_type in default_catalog().items()
        for field_name, field in node_type.params_model.model_fields.items()
        if "dtype" in field_name
    ]
    assert {name for name, *_ in fields} >= {"ChangeDataType", "StaticData", "FileInput"}
    for name, field_name, field in fields:
        adapter = TypeAdapter(Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation)
        with pytest.raises(ValidationError):
            adapter.validate_python({"c": "S2000000000"})
        assert adapter.validate_python({"c": "Int64"}) == {"c": "Int64"}, (name, field_name)
