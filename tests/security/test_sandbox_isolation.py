"""X3 (no state shared between snippets) and X4 (no network, environment or files).

X3 runs a first snippet that changes everything it can reach, then a second that looks for the
change, through the shared fork server and through fresh processes.

X4 is tested at both layers. Through the sandbox, snippets that try to reach the network, the
environment or files are refused. Below the policy, a real child process runs raw Python after
``isolation.lockdown`` to show the process walls hold on their own even for code that got past
RestrictedPython, and each wall is also tried alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dp_resources.sandbox import (
    Sandbox,
    SandboxCodeError,
    SandboxPolicyError,
    SandboxResult,
    run_in_sandbox,
)
from dp_resources.sandbox.launcher import CHILD_ENV, PACKAGE_ROOT

CANARY_NAME = "DP_SANDBOX_CANARY"
CANARY_VALUE = "canary-7f3a9c"

Runner = Callable[..., SandboxResult]


@pytest.fixture(params=["fork-server", "fresh-process"])
def run(request: pytest.FixtureRequest, sandbox: Sandbox) -> Runner:
    if request.param == "fork-server":
        return sandbox.run
    return run_in_sandbox


# -- X3 ------------------------------------------------------------------------------------------

STATE_CASES = [
    pytest.param(
        "leak = 42\nresult = 1",
        "result = leak",
        SandboxCodeError,
        id="X3-globals",
    ),
    pytest.param(
        "import decimal\ndecimal.getcontext().prec = 3\nresult = str(decimal.Decimal(1) / 3)",
        "import decimal\nresult = decimal.getcontext().prec",
        28,
        id="X3-decimal-context",
    ),
    pytest.param(
        "pd.set_option('display.max_rows', 3)\nresult = pd.get_option('display.max_rows')",
        "result = pd.get_option('display.max_rows')",
        60,
        id="X3-pandas-options",
    ),
    pytest.param(
        "np.set_printoptions(precision=2)\nresult = 1",
        "result = np.get_printoptions()['precision']",
        8,
        id="X3-numpy-printoptions",
    ),
    pytest.param(
        "print('first snippet secret')\nresult = 1",
        "result = 2",
        2,
        id="X3-stdout",
    ),
    pytest.param(
        "try:\n    getattr(1, '__class__')\nexcept Exception:\n    pass\nresult = 1",
        "result = 'clean'",
        "clean",
        id="X3-policy-refusal-does-not-stick",
    ),
]


@pytest.mark.parametrize(("first", "second", "expected"), STATE_CASES)
def test_X3_second_snippet_sees_nothing_of_the_first(sandbox: Sandbox, first: str, second: str, expected: Any) -> None:
    """X3: whatever the first snippet changed, the second (forked from the same server) cannot see.

    The fork server is the only thing snippets share, so it is the path that needs proving; a
    fresh interpreter per call is checked once below.
    """
    run = sandbox.run
    try:
        run(first, {})
    except SandboxPolicyError:
        pass  # the refusal case: the first snippet fails, the point is what the second sees
    if isinstance(expected, type):
        with pytest.raises(expected):
            run(second, {})
        return
    outcome = run(second, {})
    assert outcome.value == expected
    assert outcome.stdout == ""


def test_X3_fresh_processes_share_nothing() -> None:
    """X3: the same through ``run_in_sandbox``, which starts a new interpreter per call."""
    run_in_sandbox("import decimal\ndecimal.getcontext().prec = 3\nleak = 1\nresult = 1", {})
    assert run_in_sandbox("import decimal\nresult = decimal.getcontext().prec", {}).value == 28
    with pytest.raises(SandboxCodeError):
        run_in_sandbox("result = leak", {})


def test_X3_inputs_are_copies(run: Runner) -> None:
    """X3: a snippet mutating its input frame does not touch the caller's frame."""
    frame = pd.DataFrame({"a": [1, 2, 3]})
    changed = run("df['a'] = 0\ndf['b'] = 1\nresult = df", {"df": frame}).value
    assert changed["a"].tolist() == [0, 0, 0]
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"a": [1, 2, 3]}))


def test_X3_files_do_not_carry_over(sandbox: Sandbox, tmp_path: Path) -> None:
    """X3: a snippet cannot leave a file behind for the next one (or anyone) to find."""
    run = sandbox.run
    target = tmp_path / "left_behind.csv"
    with pytest.raises(SandboxPolicyError):
        run(f"df.to_csv({str(target)!r})\nresult = 1", {"df": pd.DataFrame({"a": [1]})})
    with pytest.raises(SandboxPolicyError):
        run("df.to_csv('relative.csv')\nresult = 1", {"df": pd.DataFrame({"a": [1]})})
    assert not target.exists()
    assert not Path("relative.csv").exists()
    with pytest.raises(SandboxPolicyError):
        run(f"result = pd.read_csv({str(target)!r})", {})


# -- X4 through the sandbox ----------------------------------------------------------------------

NETWORK_CASES = {
    "pandas-read-csv-url": "result = pd.read_csv('http://127.0.0.1:{port}/x.csv')",
    "pandas-read-json-url": "result = pd.read_json('http://127.0.0.1:{port}/x.json')",
    "import-socket": "import socket\ns = socket.create_connection(('127.0.0.1', {port}))",
    "import-urllib": "import urllib.request\nresult = urllib.request.urlopen('http://127.0.0.1:{port}/')",
    "import-http-client": "import http.client\nresult = http.client.HTTPConnection('127.0.0.1', {port})",
    "numpy-datasource": "result = np.DataSource().open('http://127.0.0.1:{port}/x')",
}


@pytest.mark.parametrize("code", [pytest.param(c, id=f"X4-network-{n}") for n, c in NETWORK_CASES.items()])
def test_X4_no_network(sandbox: Sandbox, loopback_server: Any, code: str) -> None:
    """X4: no snippet reaches a loopback server the test is running."""
    with pytest.raises(SandboxPolicyError):
        sandbox.run(code.format(port=loopback_server.port), {})
    assert loopback_server.connections == 0


FILE_CASES = {
    "open-passwd": "result = open('/etc/passwd').read()",
    "pandas-read-csv": "result = pd.read_csv('/etc/passwd')",
    "pandas-read-table": "result = pd.read_table('/etc/passwd')",
    "pandas-file-url": "result = pd.read_csv('file:///etc/passwd')",
    "numpy-loadtxt": "result = np.loadtxt('/etc/passwd', dtype=str)",
    "numpy-fromfile": "result = np.fromfile('/etc/passwd', dtype='uint8')",
    "numpy-genfromtxt": "result = np.genfromtxt('/etc/passwd', dtype=str)",
}


@pytest.mark.parametrize("code", [pytest.param(c, id=f"X4-read-{n}") for n, c in FILE_CASES.items()])
def test_X4_no_file_reads(sandbox: Sandbox, code: str) -> None:
    """X4: no file can be read."""
    with pytest.raises(SandboxPolicyError):
        sandbox.run(code, {})


WRITE_CASES = {
    "pandas-to-csv": "df.to_csv({path!r})",
    "pandas-to-json": "df.to_json({path!r})",
    "pandas-to-parquet": "df.to_parquet({path!r})",
    "pandas-to-pickle": "df.to_pickle({path!r})",
    "numpy-savetxt": "np.savetxt({path!r}, np.arange(3))",
    "numpy-tofile": "np.arange(3).tofile({path!r})",
    "csv-buffer-from-open": "df.to_csv(open({path!r}, 'w'))",
}


@pytest.mark.parametrize("code", [pytest.param(c, id=f"X4-write-{n}") for n, c in WRITE_CASES.items()])
def test_X4_no_file_writes(sandbox: Sandbox, tmp_path: Path, code: str) -> None:
    """X4: no file can be written, not even in a folder the parent can write to."""
    target = tmp_path / "written"
    with pytest.raises(SandboxPolicyError):
        sandbox.run(
            code.format(path=str(target)) + "\nresult = 1",
            {"df": pd.DataFrame({"a": [1]})},
        )
    assert list(tmp_path.iterdir()) == []


def test_X4_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """X4: a secret planted in the parent's environment never reaches the sandbox processes."""
    monkeypatch.setenv(CANARY_NAME, CANARY_VALUE)
    with Sandbox(fork_server=True) as fresh:
        with pytest.raises(SandboxPolicyError):
            fresh.run("import os\nresult = os.environ", {})
        assert fresh.run("result = 1", {}).value == 1
        server_pid = fresh._launcher._proc.pid  # type: ignore[attr-defined]
        server_env = Path(f"/proc/{server_pid}/environ").read_bytes()
    assert CANARY_VALUE.encode() not in server_env
    assert CANARY_NAME not in CHILD_ENV


# -- X4 below the policy: raw Python in a locked-down process ------------------------------------

LOCKED_PROBE = textwrap.dedent(
    """
    import json, os, resource, socket, subprocess, sys
    sys.path.insert(0, sys.argv[1])
    from dp_resources.sandbox import isolation

    initial_env = open("/proc/self/environ", "rb").read().decode("utf-8", "replace")
    result_fd = os.dup(1)
    isolation.apply_limits(20, 256, 30)
    fd, layers = isolation.lockdown(result_fd, sys.argv[2])
    port = int(sys.argv[3])
    probes = {}

    def probe(name, action):
        try:
            action()
            probes[name] = "allowed"
        except BaseException as exc:
            probes[name] = f"{type(exc).__name__}: {exc}"

    probe("read", lambda: open("/etc/passwd").read())
    probe("write", lambda: open(sys.argv[4], "w").write("x"))
    probe("socket", lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
    probe("listdir", lambda: os.listdir("/"))
    probe("raise_nofile", lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
    probe("raise_cpu", lambda: resource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6)))
    probe("subprocess", lambda: subprocess.run(["/bin/true"]))

    def fork_once():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    probe("fork", fork_once)
    report = {
        "layers": layers,
        "env": dict(os.environ),
        "initial_env": initial_env,
        "uid": os.getuid(),
        "probes": probes,
    }
    os.write(fd, json.dumps(report).encode())
    """
)


def _run_probe(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-I", "-c", script, PACKAGE_ROOT, *args],
        env=CHILD_ENV,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_X4_process_walls_hold_for_raw_python(
    loopback_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """X4: after lockdown even unrestricted Python has no files, network, env or new processes."""
    monkeypatch.setenv(CANARY_NAME, CANARY_VALUE)
    workdir = tmp_path / "root"
    workdir.mkdir()
    target = tmp_path / "written"
    report = _run_probe(LOCKED_PROBE, str(workdir), str(loopback_server.port), str(target))
    refused = {name: outcome for name, outcome in report["probes"].items() if outcome != "allowed"}
    assert refused == report["probes"], report["probes"]
    assert report["env"] == {}
    assert CANARY_VALUE not in report["initial_env"]
    assert loopback_server.connections == 0
    assert not target.exists()
    assert list(workdir.iterdir()) == []
    assert {"nofile", "noproc", "empty_env"} <= set(report["layers"])
    if os.geteuid() == 0:
        assert {"netns", "chroot", "nobody"} <= set(report["layers"])
        assert report["uid"] == 65534


ONE_WALL_PROBE = textwrap.dedent(
    """
    import json, os, socket, sys
    sys.path.insert(0, sys.argv[1])
    from dp_resources.sandbox import isolation

    wall, port = sys.argv[2], int(sys.argv[3])
    applied = isolation._enter_network_namespace() if wall == "netns" else isolation._enter_root(sys.argv[4])
    outcome = {}
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        outcome["socket"] = "allowed"
    except Exception as exc:
        outcome["socket"] = str(exc)
    try:
        outcome["passwd"] = len(open("/etc/passwd").read())
    except Exception as exc:
        outcome["passwd"] = str(exc)
    print(json.dumps({"applied": applied, **outcome}))
    """
)


def test_X4_network_namespace_alone_blocks_loopback(loopback_server: Any, tmp_path: Path) -> None:
    """X4 defence in depth: the network namespace alone (fds still available) reaches nothing."""
    report = _run_probe(ONE_WALL_PROBE, "netns", str(loopback_server.port), str(tmp_path))
    if report["applied"] is None:
        pytest.skip("this host permits no network namespace for the sandbox")
    assert report["socket"] != "allowed"
    assert loopback_server.connections == 0


def test_X4_chroot_alone_hides_the_filesystem(loopback_server: Any, tmp_path: Path) -> None:
    """X4 defence in depth: the chroot alone leaves nothing to read."""
    report = _run_probe(ONE_WALL_PROBE, "chroot", str(loopback_server.port), str(tmp_path))
    if report["applied"] is None:
        pytest.skip("this host permits no chroot for the sandbox")
    assert isinstance(report["passwd"], str) and "No such file" in report["passwd"]
