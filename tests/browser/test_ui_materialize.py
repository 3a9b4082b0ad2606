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
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench.harness import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FLOW = "maxdp_sales_dashboard"
WORKSPACE = ROOT / "workspace.yaml"  # what `make run` serves
LOCATION = "dp_platform"
START_BOUND = 240.0
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



def _loaded(url: str, process: subprocess.Popen, log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"dagster dev exited:\n{log.read_text(errors='replace')[-4000:]}")
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus locationOrLoadError { __typename } } } } }"
    try:
        entries = httpx.post(f"{url}/graphql", json={"query": query}, timeout=5).json()["data"][
            "workspaceOrError"]["locationEntries"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    return bool(entries) and all(e["loadStatus"] == "LOADED" and
                                 e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dagster dev`` on a home in tmp serving the MAX DP example; stopped by its process group."""
    require_browser()
    root = tmp_path_factory.mktemp("ui")
    flows = root / "flows"
    shutil.copytree(ROOT / "flows" / "maxdp", flows / "maxdp", ignore=shutil.ignore_patterns("tests"))
    home = root / "dp_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
    env.update({"DP_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "DP_FLOWS_DIR": str(flows),
                "DAGSTER_DISABLE_TELEMETRY": "yes", "PYTHONUNBUFFERED": "1"})
    # The instance `make run` gets: what `dp init-home` writes (one SQLite event log for all runs).
    subprocess.run([sys.executable, "-m", "dp_assets.cli", "init-home"], env=env, check=True, cwd=ROOT)
    with (home / "dagster" / "dagster.yaml").open("a") as instance_file:
        instance_file.write("nux:\n  enabled: false\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "dagster-dev.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=root, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_BOUND
        while not _loaded(url, process, log):
            assert time.monotonic() < deadline, f"dagster dev did not load:\n{log.read_text()[-4000:]}"
            time.sleep(1)
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):  # a test home: nothing to lose
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=grace)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _save(page, name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get("DP_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)
    return path


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
            expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible()
            _save(page, "maxdp_run_success.png", tmp_path)

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

    # the UI said Success; the API agrees, for the run the click started
    runs = httpx.post(f"{dagster_dev}/graphql", timeout=30, json={"query":
        '{ runsOrError(filter: {pipelineName: "__ASSET_JOB"}) { ... on Runs { results { runId status } } } }'})
    results = runs.json()["data"]["runsOrError"]["results"]
    assert [r["status"] for r in results if r["runId"].startswith(short_id)] == ["SUCCESS"]
