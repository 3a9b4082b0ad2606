"""V4 (SSRF) and V5 (response bombs) for every HTTP a node makes: ``HttpResource`` and ``HttpTool``.

Real servers on loopback; the "internal" ones must see no request at all. DNS answers are
simulated with a resolver hook (``socket.getaddrinfo`` patched for one made-up host name).
"""

from __future__ import annotations

import json
import socket
import sys
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from tool_servers import TargetServer, gzip_bomb

from dp_assets.catalog.base import NodeContext
from dp_assets.catalog.nodes.tools import HttpToolParams, http_tool
from dp_resources import netguard
from dp_resources.http import (
    HttpResource,
    RequestRefused,
    RequestTimedOut,
    ResponseTooLarge,
)


@pytest.fixture(scope="module")
def internal():
    """A server standing in for something internal (metadata service, admin API) on 127.0.0.1."""
    server = TargetServer()
    yield server
    server.close()


def node_ctx(http: HttpResource) -> NodeContext:
    return NodeContext("ssrf_flow", "fetch", "run-1", {}, {"http": http})


METADATA_FORMS = [
    ("http://169.254.169.254/latest/meta-data/", "dotted"),
    ("http://2852039166/latest/meta-data/", "decimal"),
    ("http://0xa9fea9fe/latest/meta-data/", "hex"),
    ("http://0251.0376.0251.0376/latest/meta-data/", "octal"),
    ("http://0xa9.0xfe.0xa9.0xfe/", "dotted-hex"),
    ("http://[::ffff:169.254.169.254]/", "ipv6-mapped"),
    ("http://[::ffff:a9fe:a9fe]/", "ipv6-mapped-hex"),
    ("http://[64:ff9b::a9fe:a9fe]/", "nat64"),
    ("http://169.254.170.2/v2/credentials", "ecs-credentials"),
    ("http://[fd00:ec2::254]/", "ec2-ipv6-metadata"),
    ("http://100.100.100.200/", "alibaba-metadata"),
    ("http://[fe80::1]/", "ipv6-link-local"),
]
INTERNAL_FORMS = [
    ("http://10.0.0.1/", "private-10"),
    ("http://172.16.5.4/", "private-172"),
    ("http://192.168.1.1/", "private-192"),
    ("http://[fd12:3456::1]/", "ipv6-ula"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "ipv6-unspecified"),
    ("http://224.0.0.1/", "multicast"),
]
SCHEMES = [
    ("file:///etc/passwd", "file"),
    ("ftp://example.com/x", "ftp"),
    ("gopher://127.0.0.1:70/", "gopher"),
    ("dict://127.0.0.1:11211/", "dict"),
]


@pytest.mark.parametrize(
    ("url", "form"),
    METADATA_FORMS + INTERNAL_FORMS + SCHEMES,
    ids=[f"V4-{form}" for _, form in METADATA_FORMS + INTERNAL_FORMS + SCHEMES],
)
def test_V4_internal_addresses_are_refused_by_default(url, form):
    """V4: every spelling of the metadata address, private ranges and other schemes are refused."""
    with pytest.raises((RequestRefused, httpx.InvalidURL, httpx.UnsupportedProtocol)):
        HttpResource(timeout_seconds=2).request("GET", url)


@pytest.mark.parametrize(
    "form",
    ["127.0.0.1", "2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]", "localhost"],
    ids=lambda f: f"V4-loopback-{f}",
)
def test_V4_loopback_in_any_form_is_refused_and_not_connected(internal, form):
    """V4: loopback forms are refused by the default resource and the server sees no request."""
    before = len(internal.requests)
    with pytest.raises(RequestRefused):
        HttpResource(timeout_seconds=2).request("GET", f"http://{form}:{internal.port}/json")
    assert len(internal.requests) == before


def test_V4_link_local_stays_refused_even_with_allow_private():
    """V4: allowing private addresses (as tests and some deployments do) never opens the metadata service."""
    for url in ("http://169.254.169.254/", "http://2852039166/", "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(RequestRefused, match=r"metadata|link-local"):
            HttpResource(allow_private=True, timeout_seconds=2).request("GET", url)


def test_V4_a_loopback_refusal_names_the_setting_that_allows_it():
    """A user pointing an HTTP node at a local server is told which variable lifts the refusal,
    for that address; a metadata or link-local refusal suggests no setting."""
    with pytest.raises(RequestRefused, match=r"DP_HTTP_ALLOWED_NETWORKS=127\.0\.0\.1/32 allows it"):
        HttpResource(timeout_seconds=2).request("GET", "http://127.0.0.1:9/json")
    with pytest.raises(RequestRefused) as refused:
        HttpResource(timeout_seconds=2).request("GET", "http://169.254.169.254/")
    assert "DP_HTTP_ALLOWED_NETWORKS" not in str(refused.value)


def test_V4_http_tool_refuses_and_fails_cleanly(internal):
    """V4 through the node: the refusal names the node and the deployment setting."""
    with pytest.raises(RequestRefused, match=r"node 'fetch' \(HttpTool\).*allowed_networks / allow_private"):
        http_tool(
            node_ctx(HttpResource(timeout_seconds=2)), HttpToolParams(url=f"http://2130706433:{internal.port}/json"), {}
        )


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("http://169.254.169.254/latest/meta-data/", 302),
        ("http://2852039166/", 301),
        ("http://[::ffff:a9fe:a9fe]/", 307),
        ("http://127.0.0.2:{port}/json", 302),
        ("file:///etc/passwd", 302),
        ("http://10.1.2.3/", 308),
    ],
    ids=[
        "V4-redirect-metadata",
        "V4-redirect-decimal",
        "V4-redirect-mapped",
        "V4-redirect-other-loopback",
        "V4-redirect-file",
        "V4-redirect-private",
    ],
)
def test_V4_every_redirect_is_checked_again(internal, location, code):
    """V4: the first hop is allowed (127.0.0.1 only); where it redirects to is checked like a new URL."""
    http = HttpResource(allowed_networks=["127.0.0.1/32"], timeout_seconds=3)
    target = location.format(port=internal.port)
    with pytest.raises((RequestRefused, httpx.UnsupportedProtocol)):
        http.request("GET", f"{internal.url}/redirect", params={"to": target, "code": code})


def test_V4_dns_answer_that_changes_after_the_check_is_not_followed(monkeypatch):
    """V4 (DNS rebinding): the first answer is an allowed address, later ones an internal one; the
    connection is pinned to the checked address, so the internal server sees nothing."""
    public = TargetServer("127.0.0.1")
    hidden = TargetServer("127.0.0.2", port=public.port)  # same port, another address
    real = socket.getaddrinfo
    answers: list[str] = []

    def resolver(host, port, *args, **kwargs):
        if host == "rebind.test":
            address = "127.0.0.1" if not answers else "127.0.0.2"
            answers.append(address)
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    try:
        http = HttpResource(allowed_networks=["127.0.0.1/32"], timeout_seconds=5)
        response = http.request("GET", f"http://rebind.test:{public.port}/echo")
        assert response.json()["headers"]["Host"] == f"rebind.test:{public.port}"
        assert answers == ["127.0.0.1"]  # resolved once; the connection went to the checked address
        assert len(public.requests) == 1 and hidden.requests == []
        with pytest.raises(RequestRefused, match=r"127\.0\.0\.2"):  # the next request sees the new answer
            http.request("GET", f"http://rebind.test:{public.port}/echo")
        assert hidden.requests == []
    finally:
        public.close()
        hidden.close()


def test_V4_one_bad_answer_among_several_refuses(monkeypatch, internal):
    """V4: a name resolving to an allowed and an internal address is refused outright."""
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host == "mixed.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port))
                for a in ("127.0.0.1", "169.254.169.254")
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(RequestRefused, match=r"169\.254\.169\.254"):
        HttpResource(allowed_networks=["127.0.0.1/32"]).request("GET", f"http://mixed.test:{internal.port}/json")


# --- V5: response bombs --------------------------------------------------------------------


CAP = 1_000_000


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/big?mb=5", ResponseTooLarge),
        ("/big?mb=5&declare=no", ResponseTooLarge),
        ("/endless", ResponseTooLarge),
        ("/gzip-bomb?mb=64", ResponseTooLarge),
        ("/slow?every=0.2", RequestTimedOut),
        ("/hang?seconds=10", RequestTimedOut),
    ],
    ids=["V5-declared-huge", "V5-undeclared-huge", "V5-endless", "V5-gzip-bomb", "V5-slow-stream", "V5-no-answer"],
)
def test_V5_bodies_stop_at_the_cap_or_the_total_deadline(internal, path, error):
    """V5: each hostile body ends in a clean error, by byte cap (after decompression) or total timeout."""
    http = HttpResource(allow_private=True, max_bytes=CAP, timeout_seconds=1.5)
    with pytest.raises(error):
        http.request("GET", f"{internal.url}{path}")


def test_V5_http_tool_fails_the_step_cleanly(internal):
    """V5 through the node: a clean, named failure; the node value never exists."""
    http = HttpResource(allow_private=True, max_bytes=CAP, timeout_seconds=3)
    with pytest.raises(ResponseTooLarge, match=r"node 'fetch' \(HttpTool\).*1000000-byte cap"):
        http_tool(node_ctx(http), HttpToolParams(url=f"{internal.url}/endless", retries=0), {})


def _peak_while(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    except (ResponseTooLarge, netguard.BodyTooLarge):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_V5_stacked_gzip_bomb_is_inflated_in_bounded_steps(internal):
    """V5: ``Content-Encoding: gzip, gzip`` of 256 MB of zeros (a few KB on the wire) never holds
    more than about the cap in memory when read with ``netguard.read_body``."""
    gzip_bomb(256, 2)  # built before memory is traced (the server runs in this process)

    def read() -> None:
        with httpx.Client() as client, client.stream("GET", f"{internal.url}/gzip-bomb?mb=256&layers=2") as response:
            netguard.read_body(response, CAP, time.monotonic() + 10, "bomb")

    with pytest.raises(netguard.BodyTooLarge, match="once decompressed"):
        read()
    assert _peak_while(read) < 16 * CAP


def test_V5_stacked_gzip_bomb_through_the_http_resource(internal):
    """V5: the same bomb through ``HttpResource``: a clean error and bounded memory."""
    http = HttpResource(allow_private=True, max_bytes=CAP, timeout_seconds=10)
    gzip_bomb(256, 2)
    peak = _peak_while(lambda: http.request("GET", f"{internal.url}/gzip-bomb?mb=256&layers=2"))
    assert peak < 16 * CAP


@pytest.mark.parametrize(
    ("encoding", "message"),
    [("br", "not supported"), ("gzip, gzip, gzip", "3 layers")],
    ids=["V5-unknown-coding", "V5-too-many-layers"],
)
def test_V5_unusual_encodings_are_refused(encoding, message):
    with pytest.raises(netguard.BodyTooLarge, match=message):
        list(netguard.decoded_chunks([b"x"], encoding))


def test_netguard_decodes_what_it_should():
    import gzip
    import zlib

    data = b"hello world " * 10_000
    for encoded, coding in [
        (gzip.compress(data), "gzip"),
        (zlib.compress(data), "deflate"),
        (zlib.compress(data)[2:-4], "deflate"),
        (gzip.compress(gzip.compress(data)), "gzip, gzip"),
        (gzip.compress(data[:5000]) + gzip.compress(data[5000:]), "gzip"),
        (data, None),
    ]:
        pieces = list(netguard.decoded_chunks([encoded[i : i + 1000] for i in range(0, len(encoded), 1000)], coding))
        assert b"".join(pieces) == data, coding
        assert max(len(p) for p in pieces) <= netguard.STEP


# --- redirects never carry credentials to another origin (issue 16) --------------------------

CREDENTIALS = {
    "Authorization": "Bearer tok-1234",
    "Proxy-Authorization": "Basic cHJveHk=",
    "Cookie": "sid=abc123",
    "X-API-Key": "key-5678",
    "X-Custom-Secret": "custom-9012",
}


@pytest.fixture(scope="module")
def elsewhere():
    """A second server: another port on 127.0.0.1 is another origin."""
    server = TargetServer()
    yield server
    server.close()


def _hops(server: TargetServer, before: int) -> list[dict]:
    return server.requests[before:]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308], ids=lambda c: f"S6-redirect-{c}")
def test_S6_credentials_do_not_follow_a_redirect_to_another_origin(internal, elsewhere, code):
    """S6: Authorization, Proxy-Authorization, Cookie, API-key headers and headers marked as secret
    are dropped when a redirect changes the port (another origin); other headers still go."""
    before = len(elsewhere.requests)
    response = HttpResource(allow_private=True, timeout_seconds=5).request(
        "GET",
        f"{internal.url}/redirect",
        params={"to": f"{elsewhere.url}/echo", "code": code},
        headers={**CREDENTIALS, "X-Plain": "kept"},
        sensitive_headers=["x-custom-secret"],
    )
    seen = _hops(elsewhere, before)
    assert response.status_code == 200 and len(seen) == 1
    received = {k.lower() for k in seen[0]["headers"]}
    assert not received & {k.lower() for k in CREDENTIALS}, received
    assert seen[0]["headers"]["X-Plain"] == "kept"


def test_S6_credentials_stay_on_a_same_origin_redirect(internal):
    """S6 counterpart: a redirect within the origin keeps the headers (nothing is stripped needlessly)."""
    before = len(internal.requests)
    HttpResource(allow_private=True, timeout_seconds=5).request(
        "GET", f"{internal.url}/redirect", params={"to": "/echo", "code": 307}, headers=CREDENTIALS
    )
    assert _hops(internal, before)[-1]["headers"]["Authorization"] == CREDENTIALS["Authorization"]


def test_S6_http_tool_secret_headers_do_not_follow_a_cross_origin_redirect(internal, elsewhere, monkeypatch):
    """S6 through the node: a header whose value came from ${env:...} (any name) and the auth header
    reach the first origin only."""
    from dp_assets.spec.templates import render

    monkeypatch.setenv("DP_SECRET_REDIRECT", "redirect-Secret-4455")
    raw = {
        "url": f"{internal.url}/redirect?code=302&to={elsewhere.url}/echo",
        "headers": {"X-Anything": "k=${env:DP_SECRET_REDIRECT}", "X-Plain": "kept"},
        "auth": {"type": "bearer", "token": "${env:DP_SECRET_REDIRECT}"},
    }
    first, before = len(internal.requests), len(elsewhere.requests)
    value = http_tool(
        node_ctx(HttpResource(allow_private=True, timeout_seconds=5)),
        HttpToolParams.model_validate(render(raw, {})),
        {},
    )
    assert internal.requests[first]["headers"]["X-Anything"] == "k=redirect-Secret-4455"
    seen = _hops(elsewhere, before)[0]["headers"]
    assert "X-Anything" not in seen and "Authorization" not in seen and seen["X-Plain"] == "kept"
    assert value["status"] == 200 and "redirect-Secret-4455" not in repr(value)


def test_S6_https_to_http_redirect_is_never_followed(elsewhere):
    """S6: a TLS endpoint that redirects to plain http is refused, whatever the origin; nothing is sent."""
    secure = TargetServer(tls=True)
    try:
        for to in (f"{elsewhere.url}/echo", f"http://127.0.0.1:{secure.port}/echo"):
            before = len(elsewhere.requests)
            with pytest.raises(RequestRefused, match="from https to http is never followed"):
                HttpResource(allow_private=True, verify_tls=False, timeout_seconds=5).request(
                    "GET", f"{secure.url}/redirect", params={"to": to, "code": 302}, headers=CREDENTIALS
                )
            assert len(elsewhere.requests) == before
        assert len(secure.requests) == 2
    finally:
        secure.close()


def test_S6_redirect_limits_per_node(internal, elsewhere):
    """S6: max_redirects 0 makes the 30x the value (nothing followed); the node can lower but never
    raise the resource's limit; past the limit the request fails naming it."""
    http = HttpResource(allow_private=True, timeout_seconds=5, max_redirects=1)
    url = f"{internal.url}/redirect?code=302&to={elsewhere.url}/echo"
    before = len(elsewhere.requests)
    value = http_tool(node_ctx(http), HttpToolParams(url=url, max_redirects=0), {})
    assert value["status"] == 302 and len(elsewhere.requests) == before
    chain = str(httpx.URL(f"{internal.url}/redirect", params={"code": 302, "to": url}))  # two hops
    with pytest.raises(RequestRefused, match=r"more than 1 redirects .*max_redirects"):
        http_tool(node_ctx(http), HttpToolParams(url=chain, max_redirects=5, retries=0), {})
    assert http_tool(node_ctx(http), HttpToolParams(url=url, max_redirects=5), {})["status"] == 200


def test_S6_api_nodes_keep_secret_headers_on_their_origin(internal, elsewhere, monkeypatch):
    """S6: ApiEndpoint's `${env:}` header goes neither through a cross-origin redirect nor to a
    next-page link on another origin; APIRequest's neither through a redirect."""
    import pandas as pd

    from dp_assets.catalog.nodes.sinks_api import APIRequestParams, api_request
    from dp_assets.catalog.nodes.sources_api import ApiEndpointParams, api_endpoint
    from dp_assets.spec.templates import render

    monkeypatch.setenv("DP_SECRET_API_TOKEN", "api-Token-6677")
    http = HttpResource(allow_private=True, timeout_seconds=5)
    before = len(elsewhere.requests)
    token = {"X-Token": "${env:DP_SECRET_API_TOKEN}"}
    api_endpoint(
        node_ctx(http),
        ApiEndpointParams.model_validate(
            render(
                {
                    "url": f"{internal.url}/page?next={elsewhere.url}/page",
                    "headers": token,
                    "pagination": {"type": "next_link"},
                },
                {},
            )
        ),
        {},
    )
    api_request(
        node_ctx(http),
        APIRequestParams.model_validate(
            render({"url": f"{internal.url}/redirect?code=307&to={elsewhere.url}/echo", "headers": token}, {})
        ),
        {"input": pd.DataFrame({"a": [1]})},
    )
    seen = _hops(elsewhere, before)
    assert [r["path"] for r in seen] == ["/page", "/echo"]
    assert all("X-Token" not in r["headers"] for r in seen)
    assert internal.requests[-1]["headers"]["X-Token"] == "api-Token-6677"


@pytest.mark.parametrize(
    ("code", "refused"),
    [(307, True), (308, True), (302, False), (303, False)],
    ids=lambda v: f"S6-body-{v}" if isinstance(v, int) else "",
)
def test_S6_a_body_holding_a_secret_is_not_resent_to_another_origin(internal, elsewhere, monkeypatch, code, refused):
    """S6: a 307/308 to another origin would send the POST body again: with a secret in it the node
    fails and the other origin sees nothing; a 302/303 drops the body, so it is followed."""
    from dp_assets.spec.templates import render

    monkeypatch.setenv("DP_SECRET_BODY", "body-Secret-8899")
    raw = {
        "url": f"{internal.url}/redirect?code={code}&to={elsewhere.url}/echo",
        "method": "POST",
        "body": {"key": "${env:DP_SECRET_BODY}"},
    }
    before = len(elsewhere.requests)
    params = HttpToolParams.model_validate(render(raw, {}))
    if refused:
        with pytest.raises(RequestRefused, match="body holding a secret"):
            http_tool(node_ctx(HttpResource(allow_private=True, timeout_seconds=5)), params, {})
        assert len(elsewhere.requests) == before
    else:
        http_tool(node_ctx(HttpResource(allow_private=True, timeout_seconds=5)), params, {})
        assert "body-Secret-8899" not in json.dumps(_hops(elsewhere, before))


def test_S6_redirect_chains_never_carry_credentials_past_an_origin_change(internal, elsewhere):
    """S6 (property): a chain of redirects of any codes bouncing between two origins, with credential
    headers in any letter case and custom headers marked secret: every hop before the first origin
    change gets them, no hop after it does (coming back to the first origin included), and plain
    headers always arrive."""
    from urllib.parse import quote

    from hypothesis import given
    from hypothesis import strategies as st

    from tests.fuzzing import fuzz_settings

    servers = {"a": internal, "b": elsewhere}
    names = st.sampled_from(["Authorization", "Proxy-Authorization", "Cookie", "X-API-Key", "Api-Key", "X-Auth-Token"])
    cased = names.flatmap(
        lambda n: st.lists(st.booleans(), min_size=len(n), max_size=len(n)).map(
            lambda flips: "".join(c.upper() if f else c.lower() for c, f in zip(n, flips, strict=True))
        )
    )
    custom = st.from_regex(r"X-Secret-[A-Za-z]{1,8}", fullmatch=True)

    @fuzz_settings(40)
    @given(
        hops=st.lists(
            st.tuples(st.sampled_from("ab"), st.sampled_from([301, 302, 303, 307, 308])), min_size=1, max_size=4
        ),
        last=st.sampled_from("ab"),
        credentials=st.lists(cased, min_size=1, max_size=3),
        marked=st.lists(custom, max_size=2),
    )
    def check(hops, last, credentials, marked):
        chain = ["a"] + [server for server, _ in hops[1:]] + [last]
        url = f"{servers[last].url}/echo?hop={len(chain) - 1}"
        for index in range(len(hops) - 1, -1, -1):
            url = f"{servers[chain[index]].url}/redirect?code={hops[index][1]}&hop={index}&to={quote(url, safe='')}"
        secret_names = {name.lower() for name in [*credentials, *marked]}
        headers = {**{name: f"v-{i}" for i, name in enumerate([*credentials, *marked])}, "X-Plain": "kept"}
        before = {key: len(server.requests) for key, server in servers.items()}
        HttpResource(allow_private=True, timeout_seconds=5, max_redirects=5).request(
            "GET", url, headers=headers, sensitive_headers=marked
        )
        seen = [r for key, server in servers.items() for r in server.requests[before[key] :]]
        assert sorted(int(r["query"]["hop"]) for r in seen) == list(range(len(chain)))
        for request in seen:
            hop = int(request["query"]["hop"])
            crossed = any(chain[k] != chain[k - 1] for k in range(1, hop + 1))
            got = {name.lower() for name in request["headers"]} & secret_names
            assert got == (set() if crossed else secret_names), (chain, hop, got)
            assert request["headers"]["X-Plain"] == "kept"

    check()
