"""Hostile `--param` / `--params-json` values for `dp run` and `dp launch`: whatever the text, the
shared parser (``dp_sensors.cli.launch_params``) and the flow's params check give either values of
the declared types or one error line naming the param (or the option), never a traceback."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_assets.spec.model import FlowParam
from dp_sensors.cli import launch_params
from dp_sensors.triggers.params import ParamsRejected, check_params
from tests.fuzzing import fuzz_settings

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("string", "integer", "number", "boolean", "date", "datetime", "list", "object")
DECLARED = {f"p_{kind}": FlowParam(type=kind) for kind in KINDS}  # type: ignore[arg-type]
NAMES = st.one_of(st.sampled_from(sorted(DECLARED)), st.text(max_size=8))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
HOSTILE_TEXT = st.one_of(
    st.text(),
    JSON.map(json.dumps),
    st.integers(1, 6000).map(lambda n: "[" * n),  # deeper than the JSON reader goes
    st.integers(4000, 6000).map(lambda n: "9" * n),  # more digits than Python converts
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "2024-02-30", "2024-01-31", "true", "null", '"x"']),
)


def _fits(kind: str, value: object) -> bool:
    if value is None:  # an optional param given as null: the job's default applies
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return type(value) is int
    if kind == "number":
        return isinstance(value, float) and math.isfinite(value)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "date":
        return isinstance(value, str) and bool(dt.date.fromisoformat(value))
    if kind == "datetime":
        return isinstance(value, str) and bool(dt.datetime.fromisoformat(value))
    return isinstance(value, list if kind == "list" else dict)


def _json_keys(params_json: str | None) -> list[str]:
    try:
        values = json.loads(params_json or "{}")
    except (ValueError, RecursionError):
        return []
    return list(values) if isinstance(values, dict) else []


def _outcome(params: tuple[str, ...], params_json: str | None) -> dict | str:
    """The checked values, or the one error message a user sees."""
    try:
        return check_params("hostile", DECLARED, launch_params(params, params_json))
    except click.BadParameter as exc:
        return f"{exc.param_hint}: {exc.format_message()}"
    except ParamsRejected as exc:
        return str(exc)


@fuzz_settings(300)
@given(
    pairs=st.lists(st.tuples(NAMES, HOSTILE_TEXT), max_size=3),
    params_json=st.one_of(st.none(), HOSTILE_TEXT, st.dictionaries(NAMES, JSON, max_size=3).map(json.dumps)),
)
def test_any_param_text_is_a_typed_value_or_one_error_line_naming_it(pairs, params_json):
    params = tuple(f"{name}={value}" for name, value in pairs)
    outcome = _outcome(params, params_json)
    if isinstance(outcome, str):
        assert "\n" not in outcome and len(outcome) < 4000, outcome
        given = [name for name, _ in pairs] + _json_keys(params_json)
        assert "--param" in outcome or any(name in outcome for name in given if name), outcome
        return
    for name, value in outcome.items():
        assert _fits(DECLARED[name].type, value), (name, value)


@pytest.fixture
def published(tmp_path) -> dict[str, str]:
    """A user's shell with the example sales flow published in a temporary DP_HOME."""
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(ROOT / "flows" / "sales_summary.yaml", flows)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
    env.update(DP_HOME=str(tmp_path / "home"), DP_FLOWS_DIR=str(flows))
    assert _dp(env, "publish", str(flows / "sales_summary.yaml")).returncode == 0
    return env


def _dp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args",
    [
        ("--param", "min_amount=" + "[" * 5000),
        ("--param", "min_amount=NaN"),
        ("--param", "min_amount=" + "9" * 5000),
        ("--param", "min_amount=lots"),
        ("--param", "min\namount=1"),
        ("--params-json", "{" * 5000),
        ("--params-json", '{"min_amount": ' + "9" * 5000 + "}"),
    ],
    ids=["deep", "nan", "digits", "text", "newline-key", "deep-json", "digits-json"],
)
@pytest.mark.parametrize("command", ["run", "launch"])
def test_dp_run_and_launch_refuse_a_hostile_param_in_one_line_before_anything_starts(published, command, args):
    """`dp run` checks the values against the flow's params; `dp launch` sends what the parser
    accepts to the webserver, which checks them (tests/triggers), so only the parser's refusals
    are its own."""
    if command == "launch" and args[0] == "--param" and "\n" not in args[1]:
        pytest.skip("accepted by the parser as text or JSON; the webserver checks its type")
    extra = ("--url", "http://127.0.0.1:9/graphql") if command == "launch" else ()  # nothing listens there
    done = _dp(published, command, "sales_summary", *args, *extra)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, done.stderr
    assert "param" in errors[0] or "min_amount" in errors[0] or "--params-json" in errors[0]
    assert "succeeded" not in done.stdout and "FAILED" not in done.stdout + done.stderr  # no run started
