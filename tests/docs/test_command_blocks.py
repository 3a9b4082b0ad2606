"""Every command block of README.md and docs/ works as written, run as a new user copies it.

One test per block, named ``path#n`` (the file's n-th command block), so a failure names the
block. How a block is run — from a copy of the repository's root, in a new user's environment,
page by page, against one ``make run`` platform — is in ``tests/docs/doc_sessions.py``. A block
that cannot run on a developer's machine (Docker, an external API) says why in a
``<!-- docs-test: not run: ... -->`` comment naming the test that covers it instead; the guards
below fail when such a comment is malformed, or when a Markdown file holds commands in a fence
the collector does not run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.doc_blocks import (
    REPO_ROOT,
    Block,
    all_command_blocks,
    doc_files,
    marker_problems,
    unseen_command_blocks,
)
from tests.docs.doc_sessions import BlockFailed, DocRunner, console_commands, first_line_matches

BLOCKS = all_command_blocks()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocRunner]:
    docs_runner = DocRunner(tmp_path_factory.mktemp("docs"), BLOCKS)
    try:
        yield docs_runner
    finally:
        docs_runner.close()


# A block's test may first run the blocks before it on its page, or start the platform.
@pytest.mark.e2e
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_command_block_works_as_written(block: Block, runner: DocRunner) -> None:
    if block.not_run is not None:
        pytest.skip(f"not run here: {block.not_run.reason}")
    try:
        runner.run(block)
    except BlockFailed as failed:
        pytest.fail(str(failed), pytrace=False)


def test_every_block_with_commands_is_collected() -> None:
    """A fence holding commands under another language (or none) would escape the test."""
    unseen = [problem for path in doc_files() for problem in unseen_command_blocks(path)]
    assert unseen == []


def test_not_run_markers_name_a_reason_and_an_existing_test() -> None:
    problems = [problem for path in doc_files() for problem in marker_problems(path)]
    assert problems == []


def test_most_blocks_run() -> None:
    """Markers stay rare: anything that can run here must run."""
    not_run = [block.id for block in BLOCKS if block.not_run is not None]
    assert BLOCKS
    assert len(not_run) <= len(BLOCKS) // 3, f"{len(not_run)} of {len(BLOCKS)} blocks are not run: {not_run}"


def test_the_collector_sees_what_a_reader_sees(tmp_path: Path) -> None:
    """Fences in list items, tildes, a marker before a block, and a command hidden in a text fence."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# r\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "Intro\n\n```bash\necho one\n```\n\n- item\n  ~~~sh\n  echo two\n  ~~~\n\n"
        "<!-- docs-test: not run: needs a Docker engine; tests/x/test_y.py -->\n\n```shell\ndocker compose up\n```\n\n"
        "```text\n$ dp list\n```\n\n```\nmake run\n```\n\n```yaml\nkey: value\n```\n"
    )
    blocks = all_command_blocks(tmp_path)
    assert [(b.id, b.language, b.text) for b in blocks] == [
        ("docs/page.md#1", "bash", "echo one\n"),
        ("docs/page.md#2", "sh", "echo two\n"),
        ("docs/page.md#3", "shell", "docker compose up\n"),
    ]
    assert blocks[2].not_run is not None and blocks[2].not_run.test_file == "tests/x/test_y.py"
    unseen = unseen_command_blocks(page, tmp_path)
    assert len(unseen) == 2 and "docs/page.md:18" in unseen[0] and "'make run'" in unseen[1]
    assert marker_problems(page, tmp_path) == ["docs/page.md:12: tests/x/test_y.py does not exist"]


def test_console_blocks_compare_the_shown_first_line() -> None:
    commands = console_commands("$ dp launch x\nError: no flow 'x' in ...\n$ dp list\n")
    assert commands == [("dp launch x", ["Error: no flow 'x' in ..."]), ("dp list", [])]
    assert first_line_matches("Error: no flow 'x' in ...", "\nError: no flow 'x' in any code location\n")
    assert not first_line_matches("Error: no flow 'x' in ...", "Error: flow 'x' refused the params")
    assert not first_line_matches("done", "")


def test_blocks_come_from_the_repository() -> None:
    assert {block.path for block in BLOCKS} >= {"README.md", "docs/launching.md"}
    assert all((REPO_ROOT / block.path).is_file() for block in BLOCKS)


def test_a_page_runs_in_order_in_one_session_and_failures_name_the_block(tmp_path: Path) -> None:
    """What the block tests rely on: exports reach the next block of the page, a failing command
    fails its block (naming it), the blocks after it are not run, and a console block's shown
    output and exit status are compared."""
    page = "docs/page.md"
    blocks = [
        Block(page, 1, 3, "bash", 'export GREETING=hello\ntest -d flows && test ! -e "$DP_HOME/store.db"\n', None),
        Block(page, 2, 9, "bash", 'test "$GREETING" = hello\nfalse\necho not reached\n', None),
        Block(page, 3, 15, "bash", "true\n", None),
        Block("docs/other.md", 1, 3, "console", "$ echo hi\nhi\n$ echo 'Error: bad' && false\nError: ...\n", None),
        Block("docs/other.md", 2, 9, "console", "$ echo hi\nhello\n", None),
        Block("docs/third.md", 1, 3, "console", "$ true\nError: shown on purpose\n", None),
    ]
    docs_runner = DocRunner(tmp_path, blocks)
    try:
        docs_runner.run(blocks[0])
        with pytest.raises(BlockFailed, match=r"docs/page.md#2 \(line 9\) exited 1"):
            docs_runner.run(blocks[1])
        with pytest.raises(BlockFailed, match=r"docs/page.md#2, which a reader runs first, failed"):
            docs_runner.run(blocks[2])
        docs_runner.run(blocks[3])
        with pytest.raises(BlockFailed, match=r"docs/other.md#2 \(line 9\): \$ echo hi: the doc shows\n  hello"):
            docs_runner.run(blocks[4])
        with pytest.raises(BlockFailed, match=r"\$ true: exited 0, the doc shows a failure"):
            docs_runner.run(blocks[5])
    finally:
        docs_runner.close()
