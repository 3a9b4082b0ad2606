"""OpenID Connect sign-in at the proxy, against a real provider on loopback.

The provider (tests/support/oidc_provider.py) is built from Authlib's own authorization server
and grant classes and speaks the protocol over HTTP: discovery, JWKS, authorization code with
PKCE, an RS256 ID token. The proxy's client is the product's (Authlib's Starlette client). A
browser is an httpx client with a cookie jar that follows no redirect by itself, so each step
of the flow is seen. The webserver behind is the stand-in of test_proxy_roles (records bodies).
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_auth.identity import IDENTITY_HEADER, verify_identity
from dp_auth.permissions import LOCAL_ADMIN, Kind, Role
from dp_proxy.app import DagsterProxy
from dp_proxy.oidc import CALLBACK_PATH, LOGIN_PATH, SESSION_COOKIE, OidcSettings, _local_path
from dp_proxy.settings import ProxySettings
from dp_sensors.webhook.server import serve_in_thread
from tests.auth.test_proxy_roles import CSRF, KEY, Webserver, launch, two_workspaces
from tests.fuzzing import fuzz_settings
from tests.support.oidc_provider import LocalProvider

SESSION_KEY = "session-key-" + "y" * 24
RUNS_OF_SALES = '{ runsOrError(filter: {pipelineName: "sales"}) { __typename } }'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def oidc_stack(tmp_path) -> Iterator[tuple[str, LocalProvider, Webserver]]:
    store, access = two_workspaces(tmp_path)
    access.grant(LOCAL_ADMIN, Kind.group, "sales-runners", "sales", Role.runner)
    access.grant(LOCAL_ADMIN, Kind.user, "bob@example.com", "sales", Role.viewer)
    provider, webserver = LocalProvider(), Webserver()
    port = free_port()
    with serve_in_thread(provider.app()) as issuer, serve_in_thread(webserver.app()) as upstream:
        provider.issuer = issuer
        provider.redirect_uri = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
        oidc = OidcSettings(
            issuer=issuer,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            redirect_url=provider.redirect_uri,
            session_key=SESSION_KEY,
        )
        settings = ProxySettings(upstream=upstream, roles=True, store_url=store.url, identity_key=KEY, oidc=oidc)
        with serve_in_thread(DagsterProxy(settings), port=port) as proxy:
            yield proxy, provider, webserver


def sign_in(proxy: str, provider: LocalProvider, browser: httpx.Client, start: str = "/") -> httpx.Response:
    """A browser opens ``start``, is sent to the provider and back; the callback's answer."""
    first = browser.get(proxy + start, headers={"Accept": "text/html"})
    assert first.status_code == 303 and first.headers["location"].startswith(LOGIN_PATH)
    to_provider = browser.get(proxy + first.headers["location"])
    assert to_provider.status_code == 302
    asked = parse_qs(urlsplit(to_provider.headers["location"]).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"] and asked["nonce"]
    assert asked["state"] and asked["redirect_uri"] == [provider.redirect_uri]
    back = browser.get(to_provider.headers["location"])
    assert back.status_code == 302 and back.headers["location"].startswith(provider.redirect_uri)
    return browser.get(back.headers["location"])


def graphql(proxy: str, browser: httpx.Client, query: str) -> httpx.Response:
    return browser.post(proxy + "/graphql", json={"query": query}, headers=CSRF)


def test_a_user_signs_in_with_the_provider_and_the_id_tokens_groups_get_their_roles(oidc_stack):
    proxy, provider, webserver = oidc_stack
    provider.user = {"sub": "u-1", "email": "ann@example.com", "groups": ["sales-runners", "x"]}
    with httpx.Client(timeout=30) as browser:
        assert graphql(proxy, browser, "{ version }").status_code == 401  # a script is not redirected
        done = sign_in(proxy, provider, browser, start="/runs?tab=queued")
        assert done.status_code == 303 and done.headers["location"] == "/runs?tab=queued"
        assert provider.token_requests[-1]["code_verifier"]  # PKCE: the verifier went with the code

        # the ID token's groups claim gave ann the group's role: runner on sales, nothing on hr
        assert graphql(proxy, browser, launch("sales")).status_code == 200
        signed = verify_identity(KEY.encode(), webserver.headers[-1][IDENTITY_HEADER])
        assert signed.user == "ann@example.com" and signed.groups == {"sales-runners", "x"}
        assert graphql(proxy, browser, launch("payroll")).status_code == 403

        # the sign-in cookie is the proxy's signature: changed, it opens nothing
        cookie = browser.cookies[SESSION_COOKIE]
        browser.cookies.set(SESSION_COOKIE, cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
        assert graphql(proxy, browser, "{ version }").status_code == 401

    # without a groups claim the user's own grants apply
    provider.user = {"sub": "u-2", "email": "bob@example.com"}
    with httpx.Client(timeout=30) as browser:
        assert sign_in(proxy, provider, browser).status_code == 303
        assert graphql(proxy, browser, RUNS_OF_SALES).status_code == 200
        assert graphql(proxy, browser, launch("sales")).status_code == 403


#: What the proxy's answer names for each spoiled ID token (Authlib's and joserfc's checks).
REASONS = {"signature": "BadSignatureError", "audience": "'aud'", "expired": "expired", "nonce": "'nonce'"}


@pytest.mark.parametrize("tamper", ["signature", "audience", "expired", "nonce"])
def test_an_id_token_that_fails_a_check_signs_nobody_in(oidc_stack, tamper):
    proxy, provider, _ = oidc_stack
    provider.user = {"sub": "u-1", "email": "ann@example.com", "groups": ["sales-runners"]}
    with httpx.Client(timeout=30) as browser:  # a good login first: its nonce is the one replayed
        assert sign_in(proxy, provider, browser).status_code == 303
    provider.tamper = tamper
    with httpx.Client(timeout=30) as browser:
        refused = sign_in(proxy, provider, browser)
        assert refused.status_code == 401 and "sign-in refused" in refused.text, refused.text
        assert REASONS[tamper] in refused.text, refused.text
        assert SESSION_COOKIE not in browser.cookies
        assert graphql(proxy, browser, RUNS_OF_SALES).status_code == 401


def test_a_callback_is_used_once_and_only_by_the_browser_that_started_it(oidc_stack):
    proxy, provider, _ = oidc_stack
    with httpx.Client(timeout=30) as browser:
        started = browser.get(proxy + LOGIN_PATH + "?next=https://evil.example/")
        callback = browser.get(started.headers["location"]).headers["location"]  # the provider's answer
        assert callback.startswith(provider.redirect_uri)
        flow_cookies = dict(browser.cookies)
        # another browser (no sign-in cookie of this login) cannot use the code
        with httpx.Client(timeout=30) as other:
            assert other.get(callback).status_code == 401
        done = browser.get(callback)
        assert done.status_code == 303 and done.headers["location"] == "/"  # never to another site
    # the same callback again, with the cookies the browser had: the state was used
    with httpx.Client(timeout=30, cookies=flow_cookies) as replay:
        again = replay.get(callback)
        assert again.status_code == 401 and SESSION_COOKIE not in replay.cookies


@fuzz_settings(200)
@given(st.text(max_size=200))
def test_after_signing_in_the_browser_goes_to_a_page_of_this_proxy_only(text):
    """``next`` of any text: a path here, never another site (no scheme, no host, no ``//``)."""
    target = _local_path(text)
    parts = urlsplit(target)
    assert target.startswith("/") and not target.startswith("//") and "\\" not in target
    assert not parts.scheme and not parts.netloc


@functools.cache  # one proxy for every example
def _offline_proxy() -> DagsterProxy:
    """A proxy whose provider and webserver are not running: the sign-in paths still answer."""
    gone = f"http://127.0.0.1:{free_port()}"
    oidc = OidcSettings(
        issuer=gone, client_id="dp-proxy", redirect_url=f"http://127.0.0.1:1{CALLBACK_PATH}", session_key=SESSION_KEY
    )
    return DagsterProxy(ProxySettings(upstream=gone, oidc=oidc))


@fuzz_settings(50)
@given(
    query=st.dictionaries(st.sampled_from(["code", "state", "error", "next", "x"]), st.text(max_size=60), max_size=4),
    # A cookie is ASCII without separators (a browser sends no other).
    flow=st.one_of(
        st.none(),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\'), max_size=80),
        st.dictionaries(st.text(max_size=10), st.text(max_size=20)),
    ),
)
def test_any_callback_is_refused_without_a_sign_in(query, flow):
    """Any query and any flow cookie (random text, or a correctly signed cookie holding no login
    this proxy started): 4xx/502, never 500, and never a sign-in cookie."""
    from starlette.testclient import TestClient

    from dp_auth.identity import seal
    from dp_proxy.oidc import FLOW_COOKIE

    client = TestClient(_offline_proxy(), raise_server_exceptions=False)
    if isinstance(flow, dict):
        flow = seal(SESSION_KEY.encode(), {"session": flow, "next": "/"})
    if flow is not None:
        client.cookies.set(FLOW_COOKIE, flow)
    answer = client.get(CALLBACK_PATH, params=query, follow_redirects=False)
    assert answer.status_code in (400, 401, 502), answer.text
    assert SESSION_COOKIE not in answer.cookies
