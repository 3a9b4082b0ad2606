"""``dp test``: run the test cases written next to flows (docs/flow-tests.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("test")
@click.argument("flow", required=False)
@click.option(
    "--path",
    "search",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of flow specs a FLOW id is looked up in [default: DP_FLOWS_DIR, else the repository's flows/].",
)
@click.option(
    "--flows-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The read-only 'flows' file root FileInput nodes read example data from "
    "[default: DP_FLOWS_DIR, else the repository's flows/].",
)
@click.option("--case", "cases", multiple=True, help="Run only this case (repeatable).")
@click.option("--update-golden", is_flag=True, help="Write golden files from this run instead of comparing.")
@click.option("--verbose", "-v", is_flag=True, help="Also list the stand-ins of passing cases.")
def test(
    flow: str | None,
    search: Path | None,
    flows_root: Path | None,
    cases: tuple[str, ...],
    update_golden: bool,
    verbose: bool,
) -> None:
    """Run the test cases of FLOW (a flow id, a spec file or a folder; default: every tested flow).

    Cases live in YAML files in a tests/ folder beside the spec. Each runs in process on an
    ephemeral Dagster instance with fixtures in place of its sources and stand-ins in place of
    side-effecting sinks. Exits 1 when any case fails.
    """
    from dp_assets.cli.progress import Progress
    from dp_assets.flowtest import (
        FlowTestRunner,
        NothingToTest,
        TestFileError,
        find_targets,
    )
    from dp_settings import load

    settings = load()
    folder = search or settings.flows_folder() or Path("flows")
    try:
        targets = find_targets(flow, folder)
    except NothingToTest as exc:
        raise click.ClickException(str(exc)) from None
    passed = failed = 0
    ran: set[str] = set()
    files = [(target, test_path) for target in targets for test_path in target.tests]
    progress = Progress("testing", total=len(files))

    def report(result) -> None:
        nonlocal passed, failed
        ran.add(result.case)
        if result.passed:
            passed += 1
            plural = "" if result.checks == 1 else "s"
            progress.line(f"  PASS  {result.case}  ({result.checks} check{plural}, {result.seconds:.2f}s)")
            if verbose and result.stand_ins:
                progress.line(f"        stand-ins: {', '.join(result.stand_ins)}")
            return
        failed += 1
        progress.line(f"  FAIL  {result.case}  ({result.seconds:.2f}s)")
        for problem in result.problems:
            progress.line(f"        - {problem}")

    root = flows_root or settings.flows_folder() or search
    with FlowTestRunner(flows_root=root) as runner, progress:
        for target, test_path in files:
            progress.advance(0, label=f"testing {target.flow_id}")
            progress.line(f"flow {target.flow_id}  ({target.spec} <- {test_path})")
            try:
                runner.run_file(
                    target.spec, test_path, cases=cases or None, update_golden=update_golden, on_result=report
                )
            except TestFileError as exc:
                failed += 1
                progress.line(f"  ERROR {exc}")
            progress.advance()
    missing = sorted(set(cases) - ran)
    if missing:
        failed += len(missing)
        click.echo(f"  ERROR no case(s) named {', '.join(missing)}")
    click.echo(f"{passed} passed, {failed} failed" + (" (golden files written)" if update_golden else ""))
    if failed or not passed:
        sys.exit(1)
