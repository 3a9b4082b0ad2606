"""The designer's roles settings and a flow's history with authors, in a real browser, with roles on.

The designer (its built client and API, roles on: ``DesignerAuth``) behind the authenticating
proxy (HTTP Basic users, roles, the identity it signs for the designer) on loopback, over one
flow store; headless Chromium signs in as each user. An admin of the workspace sees its grants,
is told what is wrong with a grant before and after it is sent, gives a runner role on one flow,
takes a viewer's role back, and reads the flow's history: who published it, and that role change, with when. The runner then
sees the role on her settings page and no grant form; the former viewer sees no role, no grant
form and no flow, and the API refuses her grant when she sends it anyway. Launches need no Dagster here: the flow's
runs are read by nothing this test opens.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.store_api import FlowStoreAPI
from dp_auth.permissions import LOCAL_ADMIN, Kind, Role
from dp_designer.app import build_app
from dp_designer.identity import DesignerAuth
from dp_designer.runs_api import RunsService
from dp_proxy.app import DagsterProxy
from dp_proxy.auth import hash_password
from dp_proxy.settings import ProxySettings
from dp_resources.store import FlowStore
from dp_sensors.webhook import serve_in_thread
from tests.browser.test_ui_materialize import CHROMIUM, CHROMIUM_ARGS, _save, require_browser
from tests.designer.conftest import SALES, closed_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
KEY = "browser-roles-identity-key-" + "q" * 16
PASSWORD = "a long enough password"
FLOW = SALES["id"]


@dataclass(frozen=True)
class Site:
    url: str  # the proxy in front of the designer
    api: FlowStoreAPI


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    dist = ROOT / "designer" / "dist"
    if not (dist / "index.html").exists():
        pytest.fail("the designer's client is not built: `make install` builds designer/dist")
    root = tmp_path_factory.mktemp("designer-roles")
    store = FlowStore(f"sqlite:///{root / 'store.db'}")
    api = FlowStoreAPI(store, default_catalog())
    api.publish(SALES, workspace="sales")
    access = api.access
    access.grant(LOCAL_ADMIN, Kind.user, "ada", "sales", Role.admin)
    access.grant(LOCAL_ADMIN, Kind.user, "ed", "sales", Role.editor)
    access.grant(LOCAL_ADMIN, Kind.user, "vic", "sales", Role.viewer)
    access.grant(LOCAL_ADMIN, Kind.user, "rita", "sales", Role.viewer)
    runs = RunsService(graphql_url=f"http://127.0.0.1:{closed_port()}/graphql")
    designer = build_app(api, runs, client_dist=dist, auth=DesignerAuth(access, KEY.encode()))
    users = {name: hash_password(PASSWORD) for name in ("ada", "ed", "vic", "rita")}
    with ExitStack() as stack:
        upstream = stack.enter_context(serve_in_thread(designer))
        proxied = ProxySettings(upstream=upstream, users=users, roles=True, store_url=store.url, identity_key=KEY)
        url = stack.enter_context(serve_in_thread(DagsterProxy(proxied)))
        # ed publishes a second version through the proxy: the history names him as its author
        body = {"document": {**SALES, "description": "by ed"}, "message": "ed's change"}
        published = httpx.post(
            f"{url}/api/flows/{FLOW}/publish", json=body, headers={**basic("ed"), "X-Dagster-Request": "1"}, timeout=120
        )
        assert published.status_code == 200, published.text
        yield Site(url, api)


def test_an_admin_grants_a_runner_role_the_runner_sees_it_a_viewer_cannot_grant(site, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:

            def page_as(user: str):
                context = browser.new_context(extra_http_headers=basic(user), viewport={"width": 1400, "height": 850})
                page = context.new_page()
                page.set_default_timeout(60_000)
                return page

            expect.set_options(timeout=60_000)
            ada = page_as("ada")
            ada.goto(site.url)
            ada.get_by_role("link", name="Settings (roles)").click()
            expect(ada.get_by_test_id("signed-in-as")).to_contain_text("user:ada")
            administered = ada.get_by_test_id("administered-grants")
            expect(administered.get_by_test_id("grant-user-vic")).to_contain_text("viewer")
            expect(administered.get_by_test_id("grant-user-rita")).to_contain_text("workspace sales")

            form = ada.get_by_test_id("grant-form")
            form.get_by_label("grant name").fill("rita")
            form.get_by_label("grant workspace").fill("Sales")  # not a workspace: named before sending
            form.get_by_label("grant role").select_option("runner")
            form.get_by_role("button", name="Grant").click()
            expect(form.get_by_test_id("grant-error-workspace")).to_contain_text("lower-case")
            form.get_by_label("grant workspace").fill("hr")  # well-formed, but ada is no admin there
            form.get_by_role("button", name="Grant").click()
            expect(form.get_by_test_id("grant-refused")).to_contain_text("may not grant")
            form.get_by_label("grant workspace").fill("sales")
            form.get_by_label("grant flow").fill(FLOW)
            form.get_by_role("button", name="Grant").click()
            expect(administered.locator("tr", has_text=f"flow {FLOW}")).to_contain_text("runner")
            expect(form.get_by_test_id("grant-refused")).to_have_count(0)
            _save(ada, "designer_roles.png", tmp_path)
            # and takes vic's viewer role back: the row goes, and so does her view of the flow
            administered.get_by_test_id("grant-user-vic").get_by_role("button", name="Revoke").click()
            expect(administered.get_by_test_id("grant-user-vic")).to_have_count(0)

            # the flow's history: versions with their authors, and who did what, newest first
            ada.goto(f"{site.url}/#/flow/{FLOW}")
            ada.get_by_role("button", name="History", exact=True).click()
            expect(ada.get_by_test_id("version-2")).to_contain_text("ed")
            entries = ada.get_by_test_id("activity-entry")
            expect(entries.first).to_contain_text("user:ada granted runner to user rita")
            expect(entries.filter(has_text="user:ed published version")).to_have_count(1)
            _save(ada, "designer_flow_activity.png", tmp_path)

            rita = page_as("rita")
            rita.goto(f"{site.url}/#/settings")
            mine = rita.get_by_test_id("my-grants")
            expect(mine.locator("tr", has_text="runner")).to_contain_text(f"flow {FLOW} (workspace sales)")
            expect(mine.locator("tr", has_text="viewer")).to_contain_text("workspace sales")
            expect(rita.get_by_test_id("grant-form")).to_have_count(0)

            vic = page_as("vic")
            vic.goto(f"{site.url}/#/settings")
            expect(vic.get_by_test_id("my-grants")).to_have_text("None.")
            expect(vic.get_by_test_id("grant-form")).to_have_count(0)
            expect(vic.get_by_test_id("administered-grants")).to_have_count(0)
            # the form is not the only guard: the same request sent from her page is refused
            status = vic.evaluate(
                """async () => (await fetch('/api/roles', {method: 'POST', headers: {'content-type':
                'application/json'}, body: JSON.stringify({kind: 'user', name: 'vic', workspace: 'sales',
                flow: null, role: 'admin'})})).status"""
            )
            assert status == 403
            vic.goto(site.url)
            expect(vic.locator("table.flows")).to_be_visible()
            expect(vic.locator("table.flows tbody tr")).to_have_count(0)  # no flow of sales for her now
        finally:
            browser.close()
    held = {(g.name, g.flow, g.role.name) for g in site.api.access.grants() if g.workspace == "sales"}
    assert ("rita", FLOW, "runner") in held
    assert not any(name == "vic" for name, _, _ in held)  # revoked, and her own grant refused
