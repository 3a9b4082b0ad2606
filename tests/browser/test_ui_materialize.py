"""The Dagster UI in a real browser: an example flow materialised by clicking, as a user does.

``dagster dev -w workspace.yaml`` (what ``make run`` starts) serves the MAX DP example; headless Chromium (Debian's
``chromium`` package, driven by Playwright for Python through ``executable_path`` — no browser
download) opens the flow's asset group, clicks **Materialize all**, follows the run to
**Success**, and opens the ``dashboard`` asset to see its preview metadata. Screenshots go to
the test's tmp folder, and to ``docs/img/`` when ``DP_UPDATE_SCREENSHOTS=1``.

Without Chromium or Playwright the test skips on a developer's machine and fails under
``CI=true``: CI must never go green by skipping what it was meant to test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.dagster_processes import LOCATION, DagsterPlatform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FLOW = "maxdp_sales_dashboard"
RUN_BOUND_MS = 240_000
SCREENSHOTS = ROOT / "docs" / "img"


def require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append("Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python (uv pip install playwright; no `playwright install` needed)")
    if not missing:
        return
    message = "the browser test needs " + " and ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: it must not skip)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dagster dev`` on a home in tmp serving the MAX DP example; stopped by its process group."""
    require_browser()
    root = tmp_path_factory.mktemp("ui")
    flows = root / "flows"
    shutil.copytree(ROOT / "flows" / "maxdp", flows / "maxdp", ignore=shutil.ignore_patterns("tests"))
    platform = DagsterPlatform(root=root, flows=flows)
    # The instance `make run` gets: what `dp init-home` writes (one SQLite event log for all runs).
    subprocess.run([sys.executable, "-m", "dp_assets.cli", "init-home"], env=platform.env, check=True, cwd=ROOT)
    with (platform.dagster_home / "dagster.yaml").open("a") as instance_file:
        instance_file.write("nux:\n  enabled: false\n")
    platform.start_dev()
    try:
        yield platform.url
    finally:
        platform.stop(grace_seconds=10)  # a test home: nothing to lose


def _save(page, name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get("DP_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)
    return path


#: Scrolls the nearest scrolling ancestor of an element to its end.
_SCROLL_TO_END = """row => {
    let box = row;
    while (box && !(box.scrollHeight > box.clientHeight + 1 && getComputedStyle(box).overflowY !== 'visible')) {
        box = box.parentElement;
    }
    if (box) { box.scrollTop = box.scrollHeight; }
}"""


def _scroll_log_to_end(page, last_event) -> None:
    """The run's log is a virtual list: a run opened after it ended shows its first events, and
    RUN_SUCCESS is rendered only once a user scrolls down to it (CI opened one so: the page said
    Success, the log showed the first materialisations). Scroll as a user does, a few times,
    since the list renders more rows as it goes."""
    for _ in range(20):
        if last_event.is_visible():
            return
        page.get_by_text(re.compile("ASSET_MATERIALIZATION|STEP_OUTPUT")).last.evaluate(_SCROLL_TO_END)
        page.wait_for_timeout(500)


def test_materialize_all_in_the_ui_succeeds_and_shows_the_preview(dagster_dev, tmp_path):
    """Open the flow's asset group, click Materialize all, see Success and the preview metadata."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(f"{dagster_dev}/locations/{LOCATION}/asset-groups/{FLOW}")
            expect(page.get_by_text("dashboard", exact=True).first).to_be_visible()

            page.get_by_role("button", name="Materialize all").click()
            launched = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
            expect(launched).to_be_visible()
            short_id = re.search(r"[0-9a-f]{8}", launched.inner_text()).group(0)

            page.goto(f"{dagster_dev}/runs")
            page.get_by_role("link", name=short_id).first.click()
            expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_BOUND_MS)
            _scroll_log_to_end(page, page.get_by_text("RUN_SUCCESS").first)
            expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible()
            _save(page, "maxdp_run_success.png", tmp_path)
            # One step runs every node; the run's log says when each finished, in how long and
            # with how many rows (dp_assets/compiler/node_report.py).
            page.get_by_placeholder(re.compile("Filter", re.I)).first.fill("finished in")
            expect(
                page.get_by_text(re.compile(r"node 'dashboard' \(\w+\) finished in [\d,]+ ms")).first
            ).to_be_visible()
            _save(page, "maxdp_run_node_timings.png", tmp_path)

            page.goto(f"{dagster_dev}/assets/{FLOW}/dashboard")
            expect(page.get_by_text("Latest materialization")).to_be_visible()
            preview = page.get_by_text("Lone Star Supply").first  # the preview table's first row
            expect(preview).to_be_visible()
            key = page.get_by_text("preview", exact=True).first
            key.evaluate("cell => { cell.scrollIntoView({block: 'start'}); window.scrollBy(0, -120); }")
            expect(key).to_be_visible()
            saved = _save(page, "maxdp_dashboard_preview.png", tmp_path)
            assert saved.stat().st_size > 10_000
        finally:
            browser.close()

    # the UI said Success; the API agrees, for the run the click started, and the run carries
    # the flow's tags as a run of its job would (per-flow run limits and filters hold for it)
    runs = httpx.post(
        f"{dagster_dev}/graphql",
        timeout=30,
        json={
            "query": '{ runsOrError(filter: {pipelineName: "__ASSET_JOB"}) { ... on Runs { results { runId status'
            " tags { key value } } } } }"
        },
    )
    results = [r for r in runs.json()["data"]["runsOrError"]["results"] if r["runId"].startswith(short_id)]
    assert [r["status"] for r in results] == ["SUCCESS"]
    tags = {tag["key"]: tag["value"] for tag in results[0]["tags"]}
    assert tags["dp/flow"] == FLOW and tags["dp/flow_version"], tags
