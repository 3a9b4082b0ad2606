"""The command blocks of the docs, found as a reader finds them: fenced blocks in Markdown.

A *command block* is a fenced block whose language is one of :data:`COMMAND_LANGUAGES`. Every
other fence (YAML, Python, diagrams, sample output) is left alone, but
:func:`unseen_command_blocks` reports one that holds commands a reader would type (a ``$ `` prompt,
a ``.venv/bin/`` program, or, in a fence without a language, a line starting with a command such
as ``make`` or ``dp``), so that a new block can never escape the test by its fence's language.

A block that cannot run on a developer's machine is marked right before its fence::

    <!-- docs-test: not run: needs a Docker engine; tests/deploy/test_deploy_compose.py -->

The reason is free text and must name the test file that covers what the block does instead.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<body>.*?)\s*-->", re.DOTALL)
_NOT_RUN = re.compile(r"^not run:\s*(?P<reason>.+)$", re.DOTALL)
_TEST_FILE = re.compile(r"\btests/[\w./-]+\.py\b")
# What a reader would type, in a fence that is not marked as commands.
_PROMPT_OR_VENV = re.compile(r"^\s*\$ |\.venv/bin/", re.MULTILINE)
_BARE_COMMAND = re.compile(
    r"^\s*(make|dp|dagster|dagster-\w+|python3?|pip|uv|curl|export|psql|docker|celery|cd|cp|sed)\s",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Fence:
    path: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    language: str
    text: str  # the body, dedented by the fence's indentation
    marker: str | None  # the body of a `<!-- docs-test: ... -->` comment right before the fence


@dataclass(frozen=True)
class NotRun:
    reason: str
    test_file: str | None  # the test named in the reason, as written


@dataclass(frozen=True)
class Block:
    """A command block: ``id`` is ``path#n``, n counting the file's command blocks from 1."""

    path: str
    index: int
    line: int
    language: str
    text: str
    not_run: NotRun | None

    @property
    def id(self) -> str:
        return f"{self.path}#{self.index}"


def doc_files(root: Path = REPO_ROOT) -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def fences(path: Path, root: Path = REPO_ROOT) -> Iterator[Fence]:
    """Every fenced block of ``path`` (CommonMark fences, also inside list items)."""
    lines = path.read_text().splitlines()
    relative = path.relative_to(root).as_posix()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = "\n".join(line[indent:] if line[:indent].isspace() else line.lstrip() for line in lines[i + 1 : end])
        yield Fence(
            relative,
            i + 1,
            opening["info"].strip().split(" ")[0].lower(),
            textwrap.dedent(body) + "\n",
            _marker_before(lines, i),
        )
        i = end + 1


def _marker_before(lines: list[str], fence_index: int) -> str | None:
    """The docs-test comment on the last non-blank line before the fence, if it is one."""
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0 or "-->" not in lines[j]:
        return None
    start = j
    while start >= 0 and "<!--" not in lines[start]:
        start -= 1
    found = _MARKER.search("\n".join(lines[max(start, 0) : j + 1]))
    return found["body"] if found else None


def parse_not_run(marker: str) -> NotRun | None:
    found = _NOT_RUN.match(marker.strip())
    if found is None:
        return None
    reason = " ".join(found["reason"].split())
    test_file = _TEST_FILE.search(reason)
    return NotRun(reason, test_file.group(0) if test_file else None)


def command_blocks(path: Path, root: Path = REPO_ROOT) -> list[Block]:
    blocks = []
    for fence in fences(path, root):
        if fence.language in COMMAND_LANGUAGES:
            not_run = parse_not_run(fence.marker) if fence.marker else None
            blocks.append(Block(fence.path, len(blocks) + 1, fence.line, fence.language, fence.text, not_run))
    return blocks


def all_command_blocks(root: Path = REPO_ROOT) -> list[Block]:
    return [block for path in doc_files(root) for block in command_blocks(path, root)]


def unseen_command_blocks(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """Fences outside COMMAND_LANGUAGES that hold commands: each named with why."""
    found = []
    for fence in fences(path, root):
        if fence.language in COMMAND_LANGUAGES:
            continue
        looks = _PROMPT_OR_VENV.search(fence.text)
        if looks is None and not fence.language:
            looks = _BARE_COMMAND.search(fence.text)
        if looks is not None:
            line = fence.text[looks.start() :].strip().splitlines()[0]
            found.append(
                f"{fence.path}:{fence.line}: a ```{fence.language} block holds the command "
                f"{line!r}: fence it as bash (or console, with its output) so the docs test runs it"
            )
    return found


def marker_problems(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """docs-test comments that are not a well-formed marker right before a command block."""
    text = path.read_text()
    relative = path.relative_to(root).as_posix()
    attached = {f.marker for f in fences(path, root) if f.marker is not None and f.language in COMMAND_LANGUAGES}
    problems = []
    for found in _MARKER.finditer(text):
        where = f"{relative}:{text.count(chr(10), 0, found.start()) + 1}"
        body = found["body"]
        if body not in attached:
            problems.append(f"{where}: a docs-test comment must be the line right before a command block")
            continue
        not_run = parse_not_run(body)
        if not_run is None:
            problems.append(f"{where}: unknown docs-test directive {body!r} (known: 'not run: REASON, TEST FILE')")
        elif not_run.test_file is None:
            problems.append(f"{where}: the not-run reason must name the test file that covers the block")
        elif not (root / not_run.test_file).is_file():
            problems.append(f"{where}: {not_run.test_file} does not exist")
        elif len(not_run.reason.replace(not_run.test_file, "").split()) < 3:
            problems.append(f"{where}: say why the block cannot run here, not only which test covers it")
    return problems
