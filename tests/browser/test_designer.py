"""The flow designer in a real browser, as a user builds a flow who has never seen YAML.

``dagster dev`` (what ``make run`` starts) on an empty flows folder, and ``dp designer`` on the
same home; headless Chromium (Debian's, driven by Playwright through ``executable_path``) starts
from an empty canvas: drags four nodes from the palette, connects them, sees the unknown-column
error on an edge, fixes it in the node's form, fills another form, previews the draft up to its
last node, sets a run policy in the flow's form, publishes, launches, sees every node succeed and a
node's output table, opens that run again from the past runs, publishes a second version and
restores the first; then drops a React Flow export on a new flow's canvas, whose file source's
panel says why its columns could not be read from its file.
Screenshots go to the test's tmp folder, and to ``docs/img/`` when ``DP_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dp_assets.spec.loading import read_spec_file
from tests.browser.test_ui_materialize import CHROMIUM, CHROMIUM_ARGS, RUN_BOUND_MS, _save, require_browser
from tests.support.dagster_processes import DagsterPlatform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
FLOW = "designer_demo"
NODES = ["static_data", "filter_rows", "limit", "display_results"]
PALETTE = ["StaticData", "FilterRows", "Limit", "DisplayResults"]
IMPORTED = "imported_demo"
IMPORTED_NODES = ["orders", "slim", "per_customer", "top", "export"]


@pytest.fixture(scope="module")
def designer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dagster dev`` and ``dp designer`` on one home in tmp; stopped by their process groups."""
    require_browser()
    if not (ROOT / "designer" / "dist" / "index.html").exists():
        pytest.fail("the designer's client is not built: `make install` builds designer/dist")
    root = tmp_path_factory.mktemp("designer")
    flows = root / "flows"
    flows.mkdir()
    platform = DagsterPlatform(root=root, flows=flows)
    subprocess.run([sys.executable, "-m", "dp_assets.cli", "init-home"], env=platform.env, check=True, cwd=ROOT)
    platform.start_dev()
    try:
        yield platform.start_designer()
    finally:
        platform.stop(grace_seconds=10)  # a test home: nothing to lose


def _connect(page, source: str, target: str) -> None:
    """Drag from the source node's output handle to the target node's input handle."""
    start = page.locator(f"[data-testid=node-{source}] .react-flow__handle.source").first.bounding_box()
    end = page.locator(f"[data-testid=node-{target}] .react-flow__handle.target").first.bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=10)
    page.mouse.up()


def test_build_run_and_restore_a_flow_from_an_empty_canvas(designer, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 850})
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)  # a publish compiles the flow and reloads the location
            page.goto(designer)
            page.get_by_label("new flow id").fill(FLOW)
            page.get_by_role("button", name="New flow").click()
            canvas = page.locator(".react-flow__pane")
            expect(canvas).to_be_visible()

            for i, name in enumerate(PALETTE):  # four nodes from the palette, left to right
                page.get_by_test_id(f"palette-{name}").drag_to(
                    canvas, target_position={"x": 40 + 240 * i, "y": 120 + 140 * (i % 2)}
                )
                expect(page.get_by_test_id(f"node-{NODES[i]}")).to_be_visible()
            for source, target in itertools.pairwise(NODES):
                _connect(page, source, target)
            expect(page.locator(".react-flow__edge")).to_have_count(3)

            # FilterRows comes with an example condition on 'amount', a column StaticData's rows lack
            bad_edge = page.locator(".react-flow__edge.edge-error")
            expect(bad_edge).to_have_count(1)
            expect(page.locator(".react-flow__edge-text").filter(has_text="amount").first).to_be_visible()
            expect(page.get_by_test_id("node-filter_rows")).to_have_attribute("data-state", "error")
            expect(page.get_by_test_id("node-display_results")).to_have_attribute("data-state", "ok")
            page.get_by_test_id("node-filter_rows").click()
            expect(page.get_by_test_id("node-errors")).to_contain_text("amount")  # and in its panel
            _save(page, "designer_column_error.png", tmp_path)

            expect(page.locator("#root_condition")).to_be_visible()
            page.locator("#root_condition").fill("target > 8")
            page.get_by_test_id("node-limit").click()
            page.locator("#root_n").fill("5")
            expect(page.get_by_test_id("check")).to_have_text("valid")
            expect(bad_edge).to_have_count(0)

            # a preview of the draft, up to the last node, before anything is published
            page.get_by_test_id("node-display_results").click()
            page.get_by_role("button", name="Run up to this node").click()
            preview = page.get_by_test_id("preview-output")
            expect(preview).to_contain_text("1 rows", timeout=120_000)
            expect(preview.locator("td").first).to_have_text("EU")
            _save(page, "designer_preview.png", tmp_path)

            # a flow setting, from the form generated from the flow's JSON Schema
            page.get_by_role("button", name="Flow", exact=True).click()
            page.get_by_test_id("flow-section-policies").locator("summary").click()
            page.locator("#policies_run_retries").fill("1")
            expect(page.get_by_test_id("save-state")).to_contain_text("draft saved")
            expect(page.get_by_test_id("check")).to_have_text("valid")

            page.get_by_label("publish message").fill("first")
            page.get_by_role("button", name="Publish").click()
            expect(page.get_by_test_id("save-state")).to_contain_text("published version", timeout=240_000)

            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_role("button", name="Launch").click()
            expect(page.get_by_test_id("run-status")).to_contain_text("SUCCESS", timeout=RUN_BOUND_MS)
            for node in NODES:
                expect(page.get_by_test_id(f"node-{node}")).to_have_attribute("data-state", "succeeded")

            page.get_by_test_id("node-display_results").click()
            output = page.get_by_test_id("node-output")
            expect(output).to_contain_text("1 rows")  # StaticData's example: targets 10 and 8; > 8 keeps EU
            expect(output.locator("td").first).to_have_text("EU")
            _save(page, "designer_run.png", tmp_path)

            # the run again, opened from the list of past runs after the page is loaded afresh
            page.reload()
            expect(page.get_by_test_id("node-display_results")).to_have_attribute("data-state", "ok")
            page.get_by_role("button", name="Run", exact=True).click()
            past = page.get_by_test_id("past-runs")
            expect(past.locator("tbody tr")).to_have_count(1)
            expect(past).to_contain_text("SUCCESS")
            past.get_by_role("button", name="Open").click()
            for node in NODES:
                expect(page.get_by_test_id(f"node-{node}")).to_have_attribute("data-state", "succeeded")
            page.get_by_test_id("node-display_results").click()
            expect(page.get_by_test_id("node-output")).to_contain_text("1 rows")

            # a second version, then the first one back as the draft
            page.get_by_test_id("node-limit").click()
            page.locator("#root_n").fill("3")
            page.get_by_label("publish message").fill("second")
            page.get_by_role("button", name="Publish").click()
            expect(page.get_by_test_id("save-state")).to_contain_text("published version", timeout=240_000)
            page.get_by_role("button", name="History").click()
            expect(page.get_by_test_id("version-2")).to_contain_text("second")
            page.get_by_test_id("version-1").get_by_role("checkbox").check()
            page.get_by_test_id("version-2").get_by_role("checkbox").check()
            expect(page.locator(".diff")).to_contain_text("limit (params.n)")
            _save(page, "designer_history.png", tmp_path)
            page.get_by_test_id("version-1").get_by_role("button", name="Restore").click()
            expect(page.get_by_test_id("save-state")).to_contain_text("restored")
            page.get_by_test_id("node-limit").click()
            expect(page.locator("#root_n")).to_have_value("5")

            # a React Flow export dropped on the canvas of a new flow
            page.goto(designer)
            page.get_by_label("new flow id").fill(IMPORTED)
            page.get_by_role("button", name="New flow").click()
            export = (ROOT / "flows" / "customer_orders.json").read_text(encoding="utf-8")
            dropped = page.evaluate_handle(
                """(text) => { const dt = new DataTransfer();
                dt.items.add(new File([text], 'customer_orders.json', {type: 'application/json'})); return dt; }""",
                export,
            )
            page.locator(".canvas").dispatch_event("drop", {"dataTransfer": dropped})
            for node in IMPORTED_NODES:
                expect(page.get_by_test_id(f"node-{node}")).to_be_visible()
            expect(page.locator(".react-flow__edge")).to_have_count(len(IMPORTED_NODES) - 1)
            expect(page.get_by_test_id("save-state")).to_contain_text("draft saved")
            # its CSV source declares no columns and its file is not in this home: the panel says so
            page.get_by_test_id("node-orders").click()
            expect(page.get_by_test_id("node-columns-note")).to_contain_text("columns not read from its files")
        finally:
            browser.close()

    # the store agrees: two versions, the second published, and the first as the draft
    flow = httpx.get(f"{designer}/api/flows/{FLOW}", timeout=30).json()
    history = httpx.get(f"{designer}/api/flows/{FLOW}/history", timeout=30).json()["versions"]
    assert [v["message"] for v in history] == ["first", "second"]
    assert flow["stored"]["version"] == history[1]["version"]
    assert flow["draft"]["base_version"] == history[0]["version"]
    # the policy set in the Flow form, and nothing the form filled in with its defaults
    assert flow["stored"]["document"]["policies"] == {"run_retries": 1}

    # the dropped export is the new flow's draft: the nodes the spec loader reads from the file
    imported = httpx.get(f"{designer}/api/flows/{IMPORTED}", timeout=30).json()["draft"]["document"]
    expected = read_spec_file(ROOT / "flows" / "customer_orders.json")
    assert imported["nodes"] == expected["nodes"]
    assert set(imported["layout"]) == set(IMPORTED_NODES)  # the export's positions
