"""V9: the shell tool passes arguments literally as argv and runs only allow-listed programs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dp_assets.catalog.base import NodeContext
from dp_assets.catalog.nodes.tools import ShellToolParams, shell_tool
from dp_resources.secrets_resource import SecretsResource
from dp_resources.shell import ShellRefused, ShellResource, ShellTimeout

HOSTILE = [
    ("semicolon", "a; touch {canary}"),
    ("and", "a && touch {canary}"),
    ("pipe", "a | touch {canary}"),
    ("subshell", "$(touch {canary})"),
    ("backticks", "`touch {canary}`"),
    ("newline", "a\ntouch {canary}"),
    ("redirect", "> {canary}"),
    ("variable", "$HOME ${{PATH}}"),
    ("glob", "*"),
    ("quote", '\'"; touch {canary}; echo "'),
    ("dash-option", "--help"),
    ("empty", ""),
    ("unicode", "naïve ✓ \u202e"),
]


@pytest.fixture
def shell(tmp_path: Path) -> ShellResource:
    return ShellResource(
        enabled=True,
        allowed_programs=["printf", "printenv", "sleep", "head", "ls"],
        root=str(tmp_path / "root"),
        timeout_seconds=5,
        max_output_bytes=100_000,
    )


@pytest.mark.parametrize(("name", "argument"), HOSTILE, ids=[f"V9-{n}" for n, _ in HOSTILE])
def test_V9_arguments_reach_the_program_literally(shell, tmp_path, name, argument):
    """V9: shell syntax in an argument is data: the program gets it byte for byte, nothing else runs."""
    canary = tmp_path / f"canary-{name}"
    arg = argument.format(canary=canary)
    result = shell.run(["printf", "%s\\0", arg, "second"])
    assert result.stdout.split("\0")[:-1] == [arg, "second"]
    assert not canary.exists()


@pytest.mark.parametrize(
    "program",
    [
        "sh",
        "bash",
        "/bin/sh",
        "rm",
        "python3",
        "env",
        "./printf",
        "../../../usr/bin/printf",
        "/tmp/printf",
        "printf; id",
        "printf ",
        "PRINTF",
        "",
        "busybox",
    ],
    ids=lambda p: f"V9-not-allowed-{p or 'empty'}",
)
def test_V9_only_allow_listed_programs_run(shell, program):
    with pytest.raises(ShellRefused):
        shell.run([program, "-c", "id"])


def test_V9_an_allowed_name_cannot_be_swapped_through_the_path(shell, tmp_path):
    """A program of the same name in the working folder or in PATH given by the node is not used."""
    fake = tmp_path / "root" / "printf"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\ntouch /tmp/should-not-exist\n")
    fake.chmod(0o755)
    result = shell.run(["printf", "real"], cwd=".")
    assert result.stdout == "real" and result.program != str(fake)
    with pytest.raises(ShellRefused, match="'PATH' is not allowed"):
        shell.run(["printf", "x"], env={"PATH": str(fake.parent)})
    with pytest.raises(ShellRefused, match="'LD_PRELOAD' is not allowed"):
        shell.run(["printf", "x"], env={"LD_PRELOAD": "/tmp/evil.so"})


@pytest.mark.parametrize("cwd", ["..", "../..", "/etc", "a/../../..", "link-out"], ids=lambda c: f"V9-cwd-{c}")
def test_V9_working_folder_stays_under_the_root(shell, tmp_path, cwd):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    (root / "link-out").symlink_to("/etc")
    with pytest.raises(ShellRefused, match="outside the shell root"):
        shell.run(["ls"], cwd=cwd)


def test_V9_environment_holds_only_what_is_named(shell, monkeypatch):
    monkeypatch.setenv("DP_SECRET_SHOULD_NOT_LEAK", "leaky-value-123")
    result = shell.run(["printenv"], env={"ONLY": "this"})
    assert dict(line.split("=", 1) for line in result.stdout.splitlines()) == {
        "PATH": shell.search_path,
        "LANG": "C.UTF-8",
        "ONLY": "this",
    }


def test_V9_shell_is_off_by_default():
    with pytest.raises(ShellRefused, match="disabled"):
        ShellResource().run(["printf", "x"])


def test_V9_timeout_kills_the_whole_process_group(shell):
    with pytest.raises(ShellTimeout):
        shell.run(["sleep", "30"], timeout_seconds=0.5)


def test_V9_output_is_capped(shell):
    result = shell.run(["head", "-c", "3000000", "/dev/zero"])
    assert result.truncated and len(result.stdout) == shell.max_output_bytes and result.exit_code == 0


def test_V9_through_the_node_argv_templates_stay_one_argument(shell):
    """V9 via ShellTool: upstream data with shell syntax fills one argv element, never more."""
    import pandas as pd

    ctx = NodeContext("shell_flow", "run", "r1", {}, {"shell": shell, "secrets": SecretsResource()})
    frame = pd.DataFrame({"name": ["x; rm -rf ~ `id` $(id)\nnext"]})
    value = shell_tool(
        ctx, ShellToolParams(argv=["printf", "%s|", "{{ input.0.name }}", "{{ input.0.name }}!"]), {"names": frame}
    )
    assert value["stdout"] == "x; rm -rf ~ `id` $(id)\nnext|x; rm -rf ~ `id` $(id)\nnext!|"
    assert os.path.exists(os.path.expanduser("~"))
