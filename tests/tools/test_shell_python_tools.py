"""ShellTool (allow-listed argv, no shell) and PythonTool (the catalog's sandbox) as nodes."""

from __future__ import annotations

import pandas as pd
import pytest
from tool_servers import SECRET

from dp_assets.catalog.nodes.tools import (
    PythonToolParams,
    ShellToolParams,
    python_tool,
    shell_tool,
)
from dp_assets.spec.templates import render
from dp_resources.shell import ShellResource


def shell(ctx, inputs=None, **params):
    """The node run on ``params`` as a spec's author wrote them (rendered as the runtime does)."""
    return shell_tool(ctx, ShellToolParams.model_validate(render(params, ctx.flow_params)), inputs or {})


def test_shell_tool_stdout_stderr_and_exit_code_are_the_value(make_ctx):
    ctx = make_ctx()
    value = shell(ctx, argv=["printf", "%s-%s", "a", "b"])
    assert value["stdout"] == "a-b" and value["stderr"] == "" and value["exit_code"] == 0
    assert ctx.metadata["calls"][0] == {
        "program": "printf",
        "args": 3,
        "exit_code": 0,
        "duration_s": value["duration_s"],
    }


def test_shell_tool_a_failing_exit_code_fails_the_node_unless_listed(make_ctx):
    with pytest.raises(RuntimeError, match="exited with 2"):
        shell(make_ctx(), argv=["ls", "/nonexistent-dir"])
    value = shell(make_ctx(), argv=["ls", "/nonexistent-dir"], ok_exit_codes=[0, 1, 2])
    assert value["exit_code"] != 0 and "nonexistent" in value["stderr"]


def test_shell_tool_arguments_are_templated_from_input_one_element_each(make_ctx):
    frame = pd.DataFrame({"name": ["two words; rm -rf /"]})
    value = shell(make_ctx(), {"x": frame}, argv=["printf", "[%s]", "{{ input.0.name }}"])
    assert value["stdout"] == "[two words; rm -rf /]"


def test_shell_tool_environment_is_only_what_the_node_names(make_ctx):
    value = shell(make_ctx(), argv=["printenv"], env={"GREETING": "hi", "TOKEN": "${env:DP_SECRET_TOKEN}"})
    names = sorted(line.split("=", 1)[0] for line in value["stdout"].splitlines())
    assert names == ["GREETING", "LANG", "PATH", "TOKEN"]
    assert "TOKEN=***" in value["stdout"] and SECRET not in repr(value)


def test_shell_tool_working_folder_is_under_the_root(make_ctx, resources, tmp_path):
    value = shell(make_ctx(), argv=["ls"], cwd="jobs/a")
    assert value["exit_code"] == 0
    assert (tmp_path / "shell" / "jobs" / "a").is_dir()


def test_shell_tool_disabled_shell_refuses(make_ctx):
    with pytest.raises(PermissionError, match="shell is disabled"):
        shell(make_ctx(shell=ShellResource()), argv=["echo", "hi"])


def test_shell_tool_timeout_kills_the_program(make_ctx):
    with pytest.raises(TimeoutError, match="was killed"):
        shell(make_ctx(), argv=["sleep", "30"], timeout_seconds=0.5)


def test_python_tool_returns_the_sandbox_value(make_ctx):
    frame = pd.DataFrame({"x": [1, 2, 3]})
    ctx = make_ctx(flow_params={"factor": 10})
    value = python_tool(
        ctx,
        PythonToolParams(code="result = {'total': int(df['x'].sum()) * params['factor'], 'names': sorted(inputs)}"),
        {"numbers.result": frame},
    )
    assert value == {"total": 60, "names": ["numbers"]}
    assert ctx.metadata["calls"][0]["sandbox"] == "script"


def test_python_tool_refusals_name_the_node(make_ctx):
    with pytest.raises(Exception, match=r"node 'tool' \(PythonTool\) of flow 'tools_flow'.*refused") as info:
        python_tool(make_ctx(), PythonToolParams(code="import os\nresult = os.environ"), {})
    assert "Sandbox" in type(info.value).__name__
