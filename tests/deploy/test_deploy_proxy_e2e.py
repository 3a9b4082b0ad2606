"""S1-S4 on real processes: a dagster-webserver bound to loopback and the proxy in front.

Each refused request is a real mutation (it launches a run when sent straight to the webserver:
the control tests show the hole is real) and each test checks that the instance's run count did
not move. Accepted controls show the proxy still lets the legitimate UI and scripts through.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import httpx
import pytest
from conftest import LOCATION_NAME, Proxy, Webserver
from dagster import AssetKey, DagsterInstance
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.processes import listening_addresses

pytestmark = pytest.mark.e2e

LAUNCH = (
    "mutation { launchRun(executionParams: { selector: { repositoryLocationName: "
    f'"{LOCATION_NAME}", repositoryName: "__repository__", jobName: "hello_job" }} }}) '
    "{ __typename } }"
)
LAUNCH_JSON = json.dumps({"query": LAUNCH})
EVIL = "http://evil.example"
CSRF = {"X-Dagster-Request": "1"}


def runs_count(server: Webserver) -> int:
    with DagsterInstance.from_config(str(server.home)) as instance:
        return instance.get_runs_count()


def canary_materializations(server: Webserver) -> int:
    with DagsterInstance.from_config(str(server.home)) as instance:
        return len(instance.fetch_materializations(AssetKey("canary"), limit=1000).records)


def same_origin(proxy: Proxy) -> str:
    return f"http://{proxy.host}"


# --- S1: authentication, loopback only ---------------------------------------------------------


def test_webserver_listens_on_loopback_only_S1(webserver: Webserver) -> None:
    """S1: the webserver behind the proxy is bound to 127.0.0.1, not to every interface."""
    assert listening_addresses(webserver.port) == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        pytest.param("GET", "/", {}, None, id="S1-ui"),
        pytest.param("GET", "/server_info", {}, None, id="S1-server-info"),
        pytest.param(
            "POST",
            "/graphql",
            {"Content-Type": "application/json", **CSRF},
            LAUNCH_JSON,
            id="S1-graphql-mutation",
        ),
        pytest.param(
            "POST",
            "/graphql",
            {"Content-Type": "application/json", **CSRF, "Authorization": "Basic bm9ib2R5Og=="},
            LAUNCH_JSON,
            id="S1-unknown-user",
        ),
        pytest.param(
            "POST",
            "/graphql",
            {"Content-Type": "application/json", **CSRF, "Authorization": "Bearer not-the-token"},
            LAUNCH_JSON,
            id="S1-wrong-token",
        ),
        pytest.param(
            "POST",
            "/graphql",
            {"Content-Type": "application/json", **CSRF, "Authorization": "Basic !!!"},
            LAUNCH_JSON,
            id="S1-malformed-basic",
        ),
    ],
)
def test_proxy_requires_credentials(
    proxy: Proxy, webserver: Webserver, method: str, path: str, headers: dict, body: str | None
) -> None:
    """S1: no or bad credentials -> 401 with a challenge, and nothing reaches the webserver."""
    before = runs_count(webserver)
    response = httpx.request(method, proxy.url + path, headers=headers, content=body, timeout=30)
    assert response.status_code == 401
    assert "Basic" in response.headers.get_list("www-authenticate")[0]
    assert runs_count(webserver) == before


def test_wrong_password_is_refused_S1(proxy: Proxy) -> None:
    """S1: the right user with a wrong password is refused."""
    raw = base64.b64encode(b"alice:not-the-password").decode()
    response = httpx.get(proxy.url + "/", headers={"Authorization": f"Basic {raw}"}, timeout=30)
    assert response.status_code == 401


@pytest.mark.parametrize("auth", ["basic", "bearer"], ids=lambda a: f"S1-control-{a}")
def test_credentials_open_the_ui(proxy: Proxy, auth: str) -> None:
    """S1 control: with credentials the UI and server info come through the proxy."""
    headers = proxy.basic if auth == "basic" else {"Authorization": f"Bearer {proxy.token}"}
    ui = httpx.get(proxy.url + "/", headers=headers, timeout=30)
    assert ui.status_code == 200 and "<html" in ui.text.lower()
    assert ui.headers["x-frame-options"] == "DENY"
    info = httpx.get(proxy.url + "/server_info", headers=headers, timeout=30)
    assert info.status_code == 200 and "dagster_webserver_version" in info.json()


# --- S2: no mutation by GET ----------------------------------------------------------------------


def test_get_mutation_works_on_the_bare_webserver_S2_control(webserver: Webserver) -> None:
    """S2 control: the stock webserver runs a mutation sent by GET (the hole the proxy closes)."""
    before = runs_count(webserver)
    response = httpx.get(f"{webserver.url}/graphql?query={quote(LAUNCH)}", timeout=60)
    assert response.json()["data"]["launchRun"]["__typename"] == "LaunchRunSuccess"
    assert runs_count(webserver) == before + 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/graphql", id="S2-get"),
        pytest.param("HEAD", "/graphql", id="S2-head"),
        pytest.param("GET", "/graphql/", id="S2-trailing-slash"),
        pytest.param("GET", "//graphql", id="S2-double-slash"),
        pytest.param("GET", "/GraphQL", id="S2-case"),
    ],
)
def test_get_mutation_is_refused(proxy: Proxy, webserver: Webserver, method: str, path: str) -> None:
    """S2: a mutation sent by GET/HEAD through the proxy is refused; no run is created."""
    before = runs_count(webserver)
    response = httpx.request(method, f"{proxy.url}{path}?query={quote(LAUNCH)}", headers=proxy.basic, timeout=30)
    assert response.status_code == 405
    assert runs_count(webserver) == before


# --- S3: no cross-site POST ----------------------------------------------------------------------


def test_cross_origin_text_plain_works_on_the_bare_webserver_S3_control(
    webserver: Webserver,
) -> None:
    """S3 control: a browser's "simple" cross-origin POST launches a run on the bare webserver
    (its Content-Type check is a substring test)."""
    before = runs_count(webserver)
    response = httpx.post(
        f"{webserver.url}/graphql",
        headers={"Content-Type": "text/plain; x=application/json", "Origin": EVIL},
        content=LAUNCH_JSON,
        timeout=60,
    )
    assert response.json()["data"]["launchRun"]["__typename"] == "LaunchRunSuccess"
    assert runs_count(webserver) == before + 1


S3_CASES = [
    pytest.param({"Content-Type": "text/plain", "Origin": EVIL}, LAUNCH_JSON, "", id="S3-text-plain"),
    pytest.param(
        {"Content-Type": "text/plain; x=application/json", "Origin": "SAME"},
        LAUNCH_JSON,
        "",
        id="S3-text-plain-json-parameter",
    ),
    pytest.param(
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": EVIL},
        f"query={quote(LAUNCH)}",
        "",
        id="S3-form-cross-origin",
    ),
    pytest.param(
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "SAME"},
        f"query={quote(LAUNCH)}",
        "",
        id="S3-form-same-origin",
    ),
    pytest.param(
        {"Content-Type": "multipart/form-data; boundary=x", "Origin": EVIL},
        f'--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n{LAUNCH}\r\n--x--\r\n',
        "",
        id="S3-multipart",
    ),
    pytest.param({"Content-Type": "application/json"}, LAUNCH_JSON, "", id="S3-no-header"),
    pytest.param(
        {"Content-Type": "application/json", "Origin": EVIL, **CSRF},
        LAUNCH_JSON,
        "",
        id="S3-foreign-origin-with-header",
    ),
    pytest.param({"Content-Type": "application/json", "Origin": "null"}, LAUNCH_JSON, "", id="S3-null-origin"),
    pytest.param(
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", **CSRF},
        LAUNCH_JSON,
        "",
        id="S3-fetch-metadata-cross-site",
    ),
    pytest.param({"Content-Type": "text/plain", **CSRF}, "", f"?query={quote(LAUNCH)}", id="S3-query-string"),
]


@pytest.mark.parametrize(("headers", "body", "query"), S3_CASES)
def test_cross_site_post_is_refused(proxy: Proxy, webserver: Webserver, headers: dict, body: str, query: str) -> None:
    """S3: cross-origin, non-JSON or header-less POSTs get 403; no run is created."""
    headers = {k: same_origin(proxy) if v == "SAME" else v for k, v in headers.items()}
    before = runs_count(webserver)
    response = httpx.post(
        f"{proxy.url}/graphql{query}",
        headers={**proxy.basic, **headers},
        content=body.encode(),
        timeout=30,
    )
    assert response.status_code == 403, response.text
    assert runs_count(webserver) == before


def test_cross_origin_asset_report_is_refused_S3(proxy: Proxy, webserver: Webserver) -> None:
    """S3: the REST asset-report endpoints are behind the same cross-site rule."""
    before = canary_materializations(webserver)
    response = httpx.post(
        f"{proxy.url}/report_asset_materialization/canary",
        headers={**proxy.basic, "Origin": EVIL, "Content-Type": "text/plain"},
        content=b"{}",
        timeout=30,
    )
    assert response.status_code == 403
    assert canary_materializations(webserver) == before


@pytest.mark.parametrize(
    ("auth", "extra"),
    [
        pytest.param("basic", CSRF, id="S3-control-script-header"),
        pytest.param("basic", {"Origin": "SAME"}, id="S3-control-ui-same-origin"),
        pytest.param("bearer", CSRF, id="S3-control-bearer-token"),
    ],
)
def test_legitimate_mutation_passes(proxy: Proxy, webserver: Webserver, auth: str, extra: dict) -> None:
    """S3 control: JSON POST with the header, or from the proxy's own origin, launches a run."""
    headers = proxy.basic if auth == "basic" else {"Authorization": f"Bearer {proxy.token}"}
    extra = {k: same_origin(proxy) if v == "SAME" else v for k, v in extra.items()}
    before = runs_count(webserver)
    response = httpx.post(
        f"{proxy.url}/graphql",
        headers={**headers, **extra, "Content-Type": "application/json; charset=utf-8"},
        content=LAUNCH_JSON,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["launchRun"]["__typename"] == "LaunchRunSuccess"
    assert runs_count(webserver) == before + 1


# --- S4: WebSocket origin ------------------------------------------------------------------------


def _ws_url(proxy: Proxy) -> str:
    return f"ws://{proxy.host}/graphql"


@pytest.mark.parametrize(
    ("origin", "auth", "header", "status"),
    [
        pytest.param(EVIL, True, False, 403, id="S4-foreign-origin"),
        pytest.param(EVIL, True, True, 403, id="S4-foreign-origin-with-header"),
        pytest.param("null", True, False, 403, id="S4-null-origin"),
        pytest.param(None, True, False, 403, id="S4-no-origin-no-header"),
        pytest.param("SAME", False, False, 401, id="S4-no-credentials"),
    ],
)
def test_websocket_upgrade_is_refused(proxy: Proxy, origin: str | None, auth: bool, header: bool, status: int) -> None:
    """S4: a WebSocket upgrade from a foreign Origin (or without credentials) is refused."""
    headers = dict(proxy.basic) if auth else {}
    if header:
        headers.update(CSRF)
    origin = same_origin(proxy) if origin == "SAME" else origin
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(
            _ws_url(proxy),
            origin=origin,
            additional_headers=headers,
            subprotocols=["graphql-ws"],
            open_timeout=30,
        ),
    ):
        pass
    assert refused.value.response.status_code == status


@pytest.mark.parametrize(
    ("origin", "header"),
    [
        pytest.param("SAME", False, id="S4-control-same-origin"),
        pytest.param(None, True, id="S4-control-script-header"),
    ],
)
def test_websocket_from_allowed_origin_reaches_graphql(proxy: Proxy, origin: str | None, header: bool) -> None:
    """S4 control: the UI's own origin gets a working GraphQL WebSocket through the proxy."""
    headers = {**proxy.basic, **(CSRF if header else {})}
    with connect(
        _ws_url(proxy),
        origin=same_origin(proxy) if origin == "SAME" else origin,
        additional_headers=headers,
        subprotocols=["graphql-ws"],
        open_timeout=30,
    ) as websocket:
        assert websocket.subprotocol == "graphql-ws"
        websocket.send('{"type": "connection_init", "payload": {}}')
        assert '"connection_ack"' in websocket.recv(timeout=30)
