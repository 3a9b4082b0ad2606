"""``file`` triggers: one run per new (or changed) file matching a glob under the data root.

The cursor is a JSON map of the files seen, ``{relative path: mtime in ns}``, so a file starts
a run when it appears and again when it is replaced (a new mtime); entries of deleted files are
dropped so the cursor does not grow without bound. The run key is ``path@mtime_ns``, which makes
a repeated tick harmless. Paths are resolved through the ``files`` resource, the same checks as
file nodes (no ``..``, no symlinks out of the root, reliability test V3), and handed to the flow
as a path relative to the data root in the trigger's ``param``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dagster as dg

from dp_sensors.triggers.common import indexed, sensor_interval, sensor_status
from dp_sensors.triggers.params import ParamsRejected, check_params
from dp_sensors.triggers.policy import (
    FILE_TAG,
    TRIGGER_TAG,
    busy_reason,
    runs_in_progress,
)

FILES_RESOURCE = "files"
FILES_PER_TICK = 200


def file_sensor_name(flow_id: str, index: int) -> str:
    return indexed(f"{flow_id}_file_sensor", index)


def read_cursor(cursor: str | None) -> dict[str, int]:
    if not cursor:
        return {}
    try:
        seen = json.loads(cursor)
    except json.JSONDecodeError:
        raise ValueError(f"the file sensor's cursor is not JSON: {cursor[:80]!r}; reset it in the UI") from None
    if not isinstance(seen, dict):
        raise ValueError("the file sensor's cursor is not a JSON object; reset it in the UI")
    return {str(k): int(v) for k, v in seen.items()}


def build_file_sensor(
    flow: Any, trigger: Any, index: int, *, files_per_tick: int = FILES_PER_TICK
) -> dg.SensorDefinition:
    if trigger.param not in flow.params:
        raise ValueError(
            f"param '{trigger.param}' is not a param of flow '{flow.id}'; declare it (type: string) "
            "or set 'param' to the one that takes the path"
        )
    try:
        fixed = check_params(flow.id, flow.params, {**trigger.params, trigger.param: "probe"})
    except ParamsRejected as exc:
        raise ValueError(str(exc)) from None
    fixed.pop(trigger.param)
    name = file_sensor_name(flow.id, index)
    skip_when_running = flow.policies.when_running == "skip"

    @dg.sensor(
        name=name,
        job_name=flow.id,
        minimum_interval_seconds=sensor_interval(trigger.interval_seconds),
        default_status=sensor_status(trigger.enabled),
        required_resource_keys={FILES_RESOURCE},
        description=f"Starts flow '{flow.id}' once per new file matching '{trigger.glob}'.",
    )
    def _file_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        files = context.resources.files
        root = files.resolve(".", "data")
        seen = read_cursor(context.cursor)
        present: dict[str, int] = {}
        new: list[tuple[str, int]] = []
        settled_before = time.time_ns() - int(trigger.min_age_seconds * 1e9)
        for path in files.glob(trigger.glob, "data"):
            relative = Path(path).relative_to(root).as_posix()
            mtime = path.stat().st_mtime_ns
            if mtime > settled_before:
                if relative in seen:
                    present[relative] = seen[relative]  # changing again: keep the old entry
                continue
            present[relative] = mtime
            if seen.get(relative) != mtime:
                new.append((relative, mtime))
        new.sort(key=lambda item: (item[1], item[0]))
        postponed = new[files_per_tick:]
        for relative, _ in postponed:  # the next tick takes them
            if relative in seen:
                present[relative] = seen[relative]
            else:
                present.pop(relative)
        busy = runs_in_progress(context.instance, flow.id) if skip_when_running and new else 0
        requests: list[dg.RunRequest] = []
        for relative, mtime in new[:files_per_tick]:
            if skip_when_running and (busy or requests):
                context.log.info(f"file '{relative}' skipped: {busy_reason(flow.id, busy or 1)}")
                continue
            requests.append(
                dg.RunRequest(
                    run_key=f"{relative}@{mtime}",
                    run_config={**fixed, trigger.param: relative},
                    tags={TRIGGER_TAG: "file", FILE_TAG: relative[-200:]},
                )
            )
        cursor = json.dumps(present, sort_keys=True, separators=(",", ":"))
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        return dg.SensorResult(skip_reason=f"no new files matching '{trigger.glob}'", cursor=cursor)

    return _file_sensor
