"""Running the docs' command blocks as a new user who copies them into a terminal.

- **A fresh clone.** Blocks run from the root of a copy of the working tree (the files git tracks
  or would track), with the project's ``.venv`` linked in, so a block that writes a file
  (``dp schema > flow.schema.json``, ``dp test --update-golden``) changes the copy, never the
  repository. ``make`` sees the install done (``make install`` ran before the suite).
- **A new user's shell.** No ``DP_*`` or ``DAGSTER_*`` variable, ``.venv/bin`` not on ``PATH``;
  ``DP_HOME`` a fresh folder, ``DP_FLOWS_DIR`` the copy's ``flows/`` (the default of a clone),
  ``TMPDIR`` inside the test's own tmp.
- **A reader following a page.** The blocks of one Markdown file run in order in one session:
  the variables a block exports are there for the next block, and a test of block n first runs
  blocks 1..n-1 (whatever order pytest picked). Each block is one ``bash -euo pipefail`` script.
- **One running platform.** A ``make run`` line in a block is the module's platform: the first
  block that needs it starts ``make run`` in the copy (the README's command), and every doc
  whose blocks talk to a webserver (``dp launch``, ``dp status``, ``127.0.0.1:3000``...) runs in
  its ``DP_HOME``. The docs write the ports a user gets (3000, 8787); the test serves on free
  ports and rewrites those in the blocks, and sets ``DP_DAGSTER_GRAPHQL_URL`` (whose default is
  ``http://127.0.0.1:3000/graphql``) to the platform's.
- **Servers.** A command put in the background (``... &``) keeps running for the rest of its
  page: the test waits until the ports the command names accept connections, and stops its
  process group when the module ends. The process group of any other block is killed as soon
  as the block ends, so nothing a block leaves behind outlives it.
- **The suite's own tests.** ``python -m pytest ...`` lines run with ``--collect-only`` and
  ``make test`` with ``-n``: the suite runs those tests itself; the docs test checks that the
  command selects tests and that the target exists.
- **Console blocks.** Each ``$ `` line is run; its exit status must be non-zero when the shown
  output starts with ``Error:`` (a failure shown on purpose), zero otherwise, and the first line of
  its output must be the shown one (a shown line ending in ``...`` is a prefix).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.docs.doc_blocks import REPO_ROOT, Block
from tests.support.dagster_processes import LOCATION, location_loaded
from tests.support.processes import ManagedProcess, free_port, port_open, start_process, wait_for

#: A block's script may take this long (a `dp test` of every example on a loaded machine).
BLOCK_BOUND_SECONDS = 900.0
#: `make run` on a loaded 2-core machine: about two minutes until the location is loaded.
PLATFORM_BOUND_SECONDS = 420.0
SERVER_BOUND_SECONDS = 120.0

_PLATFORM_LINE = re.compile(r"^[ \t]*make run\b.*$", re.MULTILINE)
_NEEDS_PLATFORM = re.compile(
    r"make run\b|dp launch\b|dp invoke\b|dp status\b|dp retry-failed\b|dp webhook serve\b|(127\.0\.0\.1|localhost):3000\b"
)
_PYTEST = re.compile(r"(-m pytest)\b")
_MAKE_SUITE = re.compile(r"\bmake (test|test-serial|test-faults)\b")
_PORT_OPTION = re.compile(r"(?:--port|-p)[ =](\d+)\b")
_SHOWN_ERROR = "Error:"
# Set by an activated .venv, or by the `make test` this suite may run under.
_NOT_A_NEW_USERS = frozenset({"VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"})
# Variables of the shell itself, not of the reader's session.
_SHELL_VARIABLES = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


class BlockFailed(AssertionError):
    """A block did not work as written; the message says how, with its output."""


def copy_working_tree(destination: Path) -> Path:
    """A copy of the repository as a fresh clone has it, plus the project's installed .venv."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    destination.mkdir(parents=True)
    for relative in filter(None, listed):
        source = REPO_ROOT / relative
        if not source.is_file():  # deleted in the working tree, not yet committed
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        os.chmod(target, source.stat().st_mode)
    (destination / ".venv").symlink_to(REPO_ROOT / ".venv")
    # The install is done (`make test` installs first): files that make's install target depends
    # on are older than its stamp, so `make run` never reinstalls the shared .venv from a test.
    stamp = (
        (REPO_ROOT / ".venv" / ".installed").stat().st_mtime
        if (REPO_ROOT / ".venv" / ".installed").exists()
        else time.time()
    )
    for name in ("pyproject.toml", "requirements.lock"):
        os.utime(destination / name, (stamp - 60, stamp - 60))
    # The designer's built client and its packages, as installed: `make run` does not rebuild them.
    designer = REPO_ROOT / "designer"
    for built in ("node_modules", "dist"):
        if (designer / built).is_dir():
            (destination / "designer" / built).symlink_to(designer / built)
    if (designer / "dist" / "index.html").exists():
        built_at = (designer / "dist" / "index.html").stat().st_mtime
        for relative in filter(None, listed):
            if relative.startswith("designer/") and (destination / relative).is_file():
                os.utime(destination / relative, (built_at - 60, built_at - 60))
    return destination


def needs_platform(blocks: list[Block]) -> bool:
    return any(_NEEDS_PLATFORM.search(block.text) for block in blocks if block.not_run is None)


@dataclass
class Ports:
    """The ports the docs write, and the free ones the test serves on instead."""

    mapping: dict[int, int]

    def rewrite(self, text: str) -> str:
        for written, served in self.mapping.items():
            text = re.sub(
                rf"(?<=127\.0\.0\.1:){written}\b|(?<=localhost:){written}\b|(?<=--port ){written}\b", str(served), text
            )
        return text


@dataclass
class Platform:
    """``make run`` in the copy: ``dagster dev`` with the example flows, on a free port."""

    root: Path
    home: Path
    port: int
    base_env: Callable[[Path], dict[str, str]]
    logs: Path
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def ensure_started(self) -> None:
        if self.process is not None:
            if not self.process.alive():
                raise BlockFailed(f"`make run` exited:\n{self.process.log_tail()}")
            return
        env = {
            **self.base_env(self.home),
            "DAGSTER_CLI_DEV_PORT": str(self.port),  # `dagster dev --port`
            "DESIGNER_PORT": str(free_port()),  # `make run`'s designer, beside it
        }
        self.process = start_process(
            "make-run", ["bash", "-euo", "pipefail", "-c", "make run"], env=env, log_dir=self.logs, cwd=self.root
        )
        wait_for(
            "`make run` to serve the example flows",
            lambda: location_loaded(self.graphql_url, LOCATION),
            timeout=PLATFORM_BOUND_SECONDS,
            every=2,
            process=self.process,
            on_timeout=lambda: self.process.log_tail(),
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, grace_seconds=10)  # a home in tmp: nothing to lose


@dataclass
class DocSession:
    """One Markdown file read from top to bottom in one terminal."""

    blocks: list[Block]
    home: Path
    env: dict[str, str]
    outcomes: dict[int, str | None] = field(default_factory=dict)  # block index -> None (worked) or why not
    servers: list[ManagedProcess] = field(default_factory=list)


class DocRunner:
    """The module's copy of the repository, its platform and one session per Markdown file."""

    def __init__(self, tmp: Path, blocks: list[Block]):
        self.tmp = tmp
        self.root = copy_working_tree(tmp / "repo")
        (tmp / "tmp").mkdir()
        self.by_file: dict[str, list[Block]] = {}
        for block in blocks:
            self.by_file.setdefault(block.path, []).append(block)
        self.ports = Ports({3000: free_port(), 8787: free_port()})
        self.platform = Platform(
            self.root, tmp / "platform-home", self.ports.mapping[3000], self.base_env, tmp / "logs"
        )
        self.sessions: dict[str, DocSession] = {}

    def base_env(self, home: Path) -> dict[str, str]:
        """A new user's environment: no platform variable set, the project's .venv not activated."""
        venv_bin = {str(REPO_ROOT / ".venv" / "bin"), str(self.root / ".venv" / "bin")}
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DP_", "DAGSTER_", "PYTEST_")) and k not in _NOT_A_NEW_USERS
        }
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p not in venv_bin)
        env.update(
            {
                "DP_HOME": str(home),
                # Unset, it is the flows/ beside the installed package: the repository's, not the
                # copy's. A fresh clone's default is its own flows/, so the copy's stands in for it.
                "DP_FLOWS_DIR": str(self.root / "flows"),
                "TMPDIR": str(self.tmp / "tmp"),
                # what `dp launch` and the receiver default to (:3000), on the port the platform serves
                "DP_DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{self.ports.mapping[3000]}/graphql",
                "DAGSTER_DISABLE_TELEMETRY": "yes",
            }
        )
        return env

    def session(self, path: str) -> DocSession:
        if path not in self.sessions:
            blocks = self.by_file[path]
            home = self.platform.home if needs_platform(blocks) else self.tmp / "homes" / _file_name(path)
            self.sessions[path] = DocSession(blocks, home, self.base_env(home))
        return self.sessions[path]

    def run(self, block: Block) -> None:
        """Run ``block`` after the blocks before it on its page; raise BlockFailed if it fails."""
        session = self.session(block.path)
        for earlier in session.blocks[: block.index - 1]:
            if earlier.not_run is None and earlier.index not in session.outcomes:
                self._run_recorded(session, earlier)
            if session.outcomes.get(earlier.index):
                raise BlockFailed(f"{earlier.id}, which a reader runs first, failed: see its own test")
        self._run_recorded(session, block)
        if session.outcomes[block.index]:
            raise BlockFailed(session.outcomes[block.index])

    def _run_recorded(self, session: DocSession, block: Block) -> None:
        if block.index in session.outcomes:
            return
        try:
            if session.home == self.platform.home:  # a page read with the platform running
                self.platform.ensure_started()
            if block.language == "console":
                self._run_console(session, block)
            else:
                self._run_script(session, block)
        except BlockFailed as failed:
            session.outcomes[block.index] = str(failed)
        else:
            session.outcomes[block.index] = None

    def _script(self, session: DocSession, block: Block, text: str, options: str, name: str) -> tuple[int, str, Path]:
        logs = self.tmp / "logs"
        env_file = logs / f"{name}.env"
        script = logs / f"{name}.sh"
        logs.mkdir(exist_ok=True)
        script.write_text(f"trap 'env -0 > {env_file}' EXIT\n{text}")
        process = start_process(
            name, ["bash", options, "pipefail", str(script)], env=session.env, log_dir=logs, cwd=self.root
        )
        try:
            code = process.popen.wait(BLOCK_BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            process.stop()
            raise BlockFailed(
                f"{block.id} did not finish in {BLOCK_BOUND_SECONDS:g} s:\n{process.log_tail()}"
            ) from None
        if self._has_background_command(text):
            session.servers.append(process)  # its servers run on for the page; stopped at close()
        else:
            # What a finished block left behind in its process group (a stray child of a command)
            # does not outlive it: nothing a reader runs next may depend on it.
            process.stop(grace_seconds=0)
        return code, process.log_tail(20_000), env_file

    def _run_script(self, session: DocSession, block: Block) -> None:
        text = self.prepare(block.text)
        name = _file_name(block.id)
        code, output, env_file = self._script(session, block, text, "-euo", name)
        if code != 0:
            raise BlockFailed(
                f"{block.id} (line {block.line}) exited {code}; its output:\n{output}\nthe script as run:\n{text}"
            )
        session.env = self._read_env(env_file)
        for port in self._background_ports(text):
            self._wait_for_server(block, session.servers[-1], port)

    @staticmethod
    def _wait_for_server(block: Block, shell: ManagedProcess, port: int) -> None:
        def serving() -> bool:
            if port_open("127.0.0.1", port):
                return True
            if not group_alive(shell):
                raise BlockFailed(f"{block.id}: the server put in the background exited:\n{shell.log_tail()}")
            return False

        wait_for(
            f"{block.id}: the server in the background on port {port}",
            serving,
            timeout=SERVER_BOUND_SECONDS,
            on_timeout=shell.log_tail,
        )

    def _run_console(self, session: DocSession, block: Block) -> None:
        for n, (command, shown) in enumerate(console_commands(self.ports.rewrite(block.text)), start=1):
            name = f"{_file_name(block.id)}_{n}"
            code, output, _ = self._script(session, block, command + "\n", "-uo", name)
            expected_failure = shown[:1] != [] and shown[0].startswith(_SHOWN_ERROR)
            where = f"{block.id} (line {block.line}): $ {command}"
            if expected_failure != (code != 0):
                raise BlockFailed(
                    f"{where}: exited {code}, the doc shows {'a failure' if expected_failure else 'success'}:\n{output}"
                )
            if shown and not first_line_matches(shown[0], output):
                raise BlockFailed(f"{where}: the doc shows\n  {shown[0]}\nbut the output is\n{output}")

    def prepare(self, text: str) -> str:
        """The block as the test runs it (see the module docstring)."""
        text = self.ports.rewrite(text)
        text = _PLATFORM_LINE.sub(": # make run: the docs test's platform, started by `make run` in this copy", text)
        text = _PYTEST.sub(r"\1 --collect-only -q", text)
        return _MAKE_SUITE.sub(r"make -n \1", text)

    @staticmethod
    def _has_background_command(text: str) -> bool:
        return any(
            _strip_comment(line).endswith("&") and not _strip_comment(line).endswith("&&") for line in text.splitlines()
        )

    @staticmethod
    def _background_ports(text: str) -> list[int]:
        return [
            int(port)
            for line in text.splitlines()
            if DocRunner._has_background_command(line)
            for port in _PORT_OPTION.findall(_strip_comment(line))
        ]

    @staticmethod
    def _read_env(env_file: Path) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in env_file.read_bytes().decode().split("\0") if "=" in item)
        return {key: value for key, value in pairs if key not in _SHELL_VARIABLES}

    def close(self) -> None:
        for session in self.sessions.values():
            for server in session.servers:
                stop_group(server)
        self.platform.stop()


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` after whitespace, outside quotes: enough
    for the docs' blocks)."""
    return re.sub(r"(^|\s)#[^'\"]*$", "", line).rstrip()


def console_commands(text: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines of a console block, each with the output lines shown after it."""
    commands: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands and line.strip():
            commands[-1][1].append(line)
    return commands


def first_line_matches(shown: str, output: str) -> bool:
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return False
    shown = shown.strip()
    for ellipsis in ("...", "…"):
        if shown.endswith(ellipsis):
            return lines[0].strip().startswith(shown[: -len(ellipsis)].rstrip())
    return lines[0].strip() == shown


def _file_name(text: str) -> str:
    return re.sub(r"\W+", "_", text)


def group_alive(process: ManagedProcess) -> bool:
    """Whether any process of ``process``'s group (a server its shell left running) is alive."""
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(process: ManagedProcess, grace_seconds: float = 10) -> None:
    """SIGTERM the group of a block's shell (the shell may have exited, its servers not), then
    SIGKILL what is left after ``grace_seconds``."""
    process.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while group_alive(process) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.stop(grace_seconds=0)
