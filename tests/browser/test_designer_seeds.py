"""Every example flow under flows/ opens in the designer (a real `dp designer` process, headless
Chromium) with the version the store holds, and published from the browser without a change it
keeps that version: the store records no new one. The flows are laid out when opened (they have
no positions), which must not count as a change."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dp_assets.publishing import import_folder, spec_files
from dp_assets.spec.loading import read_spec_file
from tests.browser.test_ui_materialize import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.processes import free_port, start_process, stop_all, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted(spec_files(ROOT / "flows"))


@pytest.fixture(scope="module")
def designer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dp designer` on a home whose store holds the example flows; no Dagster (none is needed
    to open and publish: the reload after a publish is skipped when Dagster is not reachable)."""
    require_browser()
    if not (ROOT / "designer" / "dist" / "index.html").exists():
        pytest.fail("the designer's client is not built: `make install` builds designer/dist")
    from dp_assets.catalog import default_catalog
    from dp_resources.store import FlowStore

    home = tmp_path_factory.mktemp("designer-seeds")
    store = FlowStore(f"sqlite:///{home}/store.db")
    store.upgrade()
    assert import_folder(store, ROOT / "flows", default_catalog()).problems == {}
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "DP_HOME": str(home),
        "DP_FLOWS_DIR": str(ROOT / "flows"),
        "DP_DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{free_port()}/graphql",
    }
    process = start_process(
        "designer",
        [str(Path(sys.executable).parent / "dp"), "designer", "--port", str(port)],
        env=env,
        log_dir=home / "logs",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("dp designer to serve", lambda: _answers(f"{url}/api/flows"), process=process)
        yield url
    finally:
        stop_all([process])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_every_seed_example_opens_and_publishes_unchanged_from_the_browser(designer):
    from playwright.sync_api import expect, sync_playwright

    flows = [read_spec_file(path)["id"] for path in SEEDS]
    stored = {f: httpx.get(f"{designer}/api/flows/{f}", timeout=30).json()["stored"]["version"] for f in flows}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)
            for flow_id in flows:
                page.goto(f"{designer}/#/flow/{flow_id}")
                expect(page.get_by_test_id("check")).to_have_text("valid")
                expect(page.get_by_text(f"Valid: version {stored[flow_id]}.")).to_be_visible()
                page.get_by_label("publish message").fill("opened and published unchanged")
                page.get_by_role("button", name="Publish").click()
                expect(page.get_by_test_id("save-state")).to_contain_text(f"published version {stored[flow_id]}")
        finally:
            browser.close()
    for flow_id in flows:
        versions = httpx.get(f"{designer}/api/flows/{flow_id}/history", timeout=30).json()["versions"]
        assert [v["version"] for v in versions] == [stored[flow_id]], flow_id


def test_a_preview_in_the_browser_reads_the_flows_data_with_the_params_given(designer):
    """sales_summary's `revenue_by_region` previewed on all of flows/data/orders.csv with
    min_amount 100 from the preview's params form: the table equals pandas computed directly."""
    import pandas as pd
    from playwright.sync_api import expect, sync_playwright

    orders = pd.read_csv(ROOT / "flows" / "data" / "orders.csv")
    kept = orders[(orders["amount"] >= 100) & orders["region"].notna()]
    expected = kept.groupby("region")["amount"].sum().round(2).sort_index()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.set_default_timeout(120_000)
            expect.set_options(timeout=120_000)
            page.goto(f"{designer}/#/flow/sales_summary")
            expect(page.get_by_test_id("check")).to_have_text("valid")
            page.get_by_test_id("node-revenue_by_region").click()
            page.get_by_label("sample rows").locator("xpath=..").get_by_role("checkbox").uncheck()  # all rows
            page.get_by_test_id("preview-params").locator("summary").click()
            page.locator("#preview_params_min_amount").fill("100")
            page.get_by_role("button", name="Run up to this node").click()
            output = page.get_by_test_id("preview-output")
            expect(output).to_contain_text(f"{len(expected)} rows")
            shown = output.locator("tbody tr").all_inner_texts()
        finally:
            browser.close()
    got = {cells.split("\t")[0]: round(float(cells.split("\t")[1]), 2) for cells in shown}
    assert got == expected.to_dict()
