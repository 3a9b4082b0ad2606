"""File sensors at tick level: one run per new (or replaced) file with its path as a param,
run key ``path@mtime``, the cursor of seen files, settling time, and path checks (V3)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st
from triggers_support import compile_flows, flow_spec

from dp_assets.spec.triggers import FileTrigger
from dp_resources.files import PathNotAllowed
from tests.fuzzing import SLOW_CHECKS, fuzz_settings

PARAMS = {"path": {"type": "string", "required": True}, "region": {"type": "string"}}
SPEC = flow_spec(
    "ingest",
    params=PARAMS,
    triggers=[
        {"type": "file", "glob": "incoming/**/*.csv", "params": {"region": "EU"}},
    ],
)


def tick(sensor, instance, files, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"files": files})
    return sensor.evaluate_tick(context)


def touch(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a,b\n1,2\n")
    os.utime(path, (mtime, mtime))
    return path


def test_one_run_per_new_file_and_again_when_replaced(instance, files):
    sensor = compile_flows(SPEC).resolve_sensor_def("ingest_file_sensor")
    root = Path(files.data_dir)
    touch(root / "incoming" / "b.csv", 1_700_000_200)
    touch(root / "incoming" / "2024" / "a.csv", 1_700_000_100)
    touch(root / "incoming" / "notes.txt", 1_700_000_000)
    first = tick(sensor, instance, files, None)
    assert [r.run_config for r in first.run_requests] == [
        {"region": "EU", "path": "incoming/2024/a.csv"},  # oldest first
        {"region": "EU", "path": "incoming/b.csv"},
    ]
    assert [r.run_key for r in first.run_requests] == [
        "incoming/2024/a.csv@1700000100000000000",
        "incoming/b.csv@1700000200000000000",
    ]
    assert first.run_requests[0].tags["dp/file"] == "incoming/2024/a.csv"
    assert json.loads(first.cursor) == {
        "incoming/2024/a.csv": 1_700_000_100_000_000_000,
        "incoming/b.csv": 1_700_000_200_000_000_000,
    }

    assert tick(sensor, instance, files, first.cursor).run_requests == []  # nothing new

    touch(root / "incoming" / "b.csv", 1_700_000_300)  # replaced
    (root / "incoming" / "2024" / "a.csv").unlink()
    later = tick(sensor, instance, files, first.cursor)
    assert [r.run_key for r in later.run_requests] == ["incoming/b.csv@1700000300000000000"]
    assert json.loads(later.cursor) == {"incoming/b.csv": 1_700_000_300_000_000_000}  # deleted file dropped


def test_files_still_being_written_wait_for_min_age(instance, files):
    spec = flow_spec("settle", params=PARAMS, triggers=[{"type": "file", "glob": "*.csv", "min_age_seconds": 3600}])
    sensor = compile_flows(spec).resolve_sensor_def("settle_file_sensor")
    root = Path(files.data_dir)
    import time

    touch(root / "old.csv", time.time() - 7200)
    touch(root / "fresh.csv", time.time())
    result = tick(sensor, instance, files, None)
    assert [r.run_config["path"] for r in result.run_requests] == ["old.csv"]
    assert "fresh.csv" not in json.loads(result.cursor)  # seen only once it has settled


def test_V3_symlink_out_of_the_root_is_refused(instance, files, tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("secret\n")
    root = Path(files.data_dir)
    (root / "incoming").mkdir()
    (root / "incoming" / "link.csv").symlink_to(outside)
    sensor = compile_flows(SPEC).resolve_sensor_def("ingest_file_sensor")
    with pytest.raises(Exception, match="leaves the 'data' root"):
        tick(sensor, instance, files, None)


@pytest.mark.parametrize(
    "trigger,message",
    [
        pytest.param({"glob": "../etc/*"}, "without '..'", id="V3-parent"),
        pytest.param({"glob": "/etc/*"}, "relative to the data root", id="V3-absolute"),
    ],
)
def test_V3_globs_outside_the_root_fail_validation(trigger, message):
    from dp_assets.catalog import default_catalog
    from dp_assets.spec.validation import FlowValidationError, validate_spec

    with pytest.raises(FlowValidationError, match=message):
        validate_spec(flow_spec("x", params=PARAMS, triggers=[{"type": "file", **trigger}]), default_catalog())


def test_the_path_param_must_exist_and_take_a_string():
    spec = flow_spec(
        "nopath", params={"n": {"type": "integer"}}, triggers=[{"type": "file", "glob": "*.csv", "param": "n"}]
    )
    with pytest.raises(
        ValueError, match=r"flow 'nopath', field 'triggers\[0\]\.params': .*n: Input should be a valid integer"
    ):
        compile_flows(spec)
    missing = flow_spec("nopath2", triggers=[{"type": "file", "glob": "*.csv"}])
    with pytest.raises(ValueError, match=r"field 'triggers\[0\]\.param': 'path' is not a param of this flow"):
        compile_flows(missing)


GLOB_PARTS = st.sampled_from([".", "..", "", "*", "**", "*.csv", "in", "\x00", "a" * 256, "\ud800"])
GLOBS = st.text(max_size=40) | st.lists(GLOB_PARTS | st.text(max_size=6), min_size=1, max_size=6).map("/".join)


@fuzz_settings(150, suppress_health_check=[*SLOW_CHECKS, HealthCheck.function_scoped_fixture])
@example(glob=".")  # validated, then every tick failed with pathlib's IndexError
@example(glob="in/**/x/**/*.csv")  # validated, then every tick failed: '**' at most once
@given(glob=GLOBS)
def test_a_glob_that_validates_is_one_the_files_resource_takes(files, glob):
    """The sensor globs at every tick with the files resource: a glob the spec accepts must not be
    one the resource refuses, or the flow validates and its sensor fails on every tick."""
    try:
        FileTrigger.model_validate({"type": "file", "glob": glob})
    except ValueError:
        return  # refused at validation, naming the field
    try:
        files.glob(glob)
    except PathNotAllowed as exc:
        raise AssertionError(f"validated glob {glob!r} refused at the tick: {exc}") from None
