"""The proxy's login under attack, and any request answered below 500 (issue 16, endpoints).

- The login is not a user-existence oracle: an unknown name costs the same password hash (same
  scrypt cost) as a known one. Checked on the call path, not by timing.
- Failed logins are throttled per client (429 with Retry-After, no hash computed while locked
  out), and a flood from one client neither stops another client's login nor stalls requests
  of users already logged in (real uvicorn servers on loopback, clients on 127.0.0.1/127.0.0.2).
- Hypothesis: any method, path, headers and body: status < 500, answered in bounded time, and
  nothing unauthenticated reaches the webserver (a real upstream counts what it receives).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from dp_proxy import auth as auth_module
from dp_proxy.app import DagsterProxy
from dp_proxy.auth import Authenticator, hash_password
from dp_proxy.settings import ProxySettings
from dp_proxy.throttle import LoginThrottle, client_key
from dp_sensors.webhook.server import serve_in_thread
from tests.fuzzing import SLOW_CHECKS, fuzz_settings

PASSWORD = "correct horse battery"
TOKEN = "proxy-t0ken"
CSRF = {"X-Dagster-Request": "1"}


def cheap_hash(password: str, n: int = 16) -> str:
    """A stored hash of low scrypt cost (fast tests), in the proxy's format."""
    salt = b"fixed-test-salt!"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1)
    encoded = [base64.urlsafe_b64encode(x).decode().rstrip("=") for x in (salt, digest)]
    return f"scrypt:{n}:8:1:{encoded[0]}:{encoded[1]}"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Upstream:
    """A real HTTP server standing in for the webserver: it counts what reaches it."""

    def __init__(self) -> None:
        self.hits = 0
        self._lock = threading.Lock()

    async def handle(self, request: Request) -> PlainTextResponse:
        await request.body()
        with self._lock:
            self.hits += 1
        return PlainTextResponse("upstream ok")

    def app(self) -> Starlette:
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)])


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    counter = Upstream()
    with serve_in_thread(counter.app()) as url:
        yield counter, url


def proxy_settings(upstream_url: str, users: dict[str, str], **overrides) -> ProxySettings:
    return ProxySettings(upstream=upstream_url, users=users, tokens=[TOKEN], **overrides)


# --- constant-time login -------------------------------------------------------------------------


def test_unknown_user_costs_the_same_hash_as_a_known_one_S1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No user-existence oracle: a wrong password for a known user and any password for an
    unknown user each run exactly one scrypt with the users' cost parameters."""
    auth = Authenticator({"alice": hash_password(PASSWORD)})
    costs: list[tuple[int, int, int]] = []
    real = auth_module.hashlib.scrypt

    def counting(password: bytes, *, salt: bytes, n: int, r: int, p: int, **options) -> bytes:
        costs.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, **options)

    monkeypatch.setattr(auth_module.hashlib, "scrypt", counting)
    assert auth.principal(basic("alice", "wrong password")) is None
    known = list(costs)
    costs.clear()
    assert auth.principal(basic("mallory", "wrong password")) is None
    assert auth.principal(basic("", "")) is None
    assert known == [(2**14, 8, 1)]
    assert costs == known * 2
    costs.clear()
    assert auth.principal(basic("alice", PASSWORD)) == "alice"
    assert costs == known


def test_the_dummy_hash_follows_the_users_cost() -> None:
    cheap = {"a": cheap_hash("x"), "b": cheap_hash("y")}
    assert auth_module.dummy_hash_like(cheap.values()).startswith("scrypt:16:8:1:")
    assert auth_module.dummy_hash_like([]).startswith(f"scrypt:{2**14}:8:1:")


def test_non_ascii_basic_credentials_are_refused_not_500() -> None:
    """``Basic`` with latin-1 text used to raise ValueError out of base64 (a 500)."""
    auth = Authenticator({"alice": cheap_hash(PASSWORD)})
    assert auth.principal("Basic \u00e9\u00e9\u00e9") is None
    assert auth.quick_principal("Basic \u00e9") is None


# --- the throttle --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_burst_lockout_and_refill() -> None:
    clock = Clock()
    throttle = LoginThrottle(burst=3, per_minute=6, lockout_seconds=30, clock=clock)
    assert [throttle.take("a") for _ in range(3)] == [0, 0, 0]
    assert throttle.retry_after("a") == 30 and throttle.take("a") == 30
    assert throttle.retry_after("b") == 0 and throttle.take("b") == 0  # another client
    clock.now += 30  # the lockout is over and 3 attempts refilled (6 per minute)
    assert throttle.retry_after("a") == 0
    assert [throttle.take("a") for _ in range(3)] == [0, 0, 0]
    assert throttle.take("a") > 0


def test_throttle_success_gives_the_attempt_back() -> None:
    throttle = LoginThrottle(burst=2, per_minute=1, lockout_seconds=60, clock=Clock())
    for _ in range(5):
        assert throttle.take("a") == 0
        throttle.give_back("a")
    assert throttle.retry_after("a") == 0


def test_throttle_table_is_bounded() -> None:
    throttle = LoginThrottle(burst=1, per_minute=1, max_clients=100, clock=Clock())
    for number in range(1000):
        throttle.take(f"10.0.{number // 256}.{number % 256}")
    assert len(throttle._buckets) == 100


def test_client_key_groups_an_ipv6_host_by_its_network() -> None:
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == "2001:db8::/64"
    assert client_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert client_key("10.1.2.3") == "10.1.2.3"
    assert client_key(None) == "?" and client_key("testclient") == "testclient"


# --- the throttle in the app ---------------------------------------------------------------------


def test_a_flood_of_wrong_passwords_is_429_and_hashes_nothing_more_S1(
    upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the burst a client gets 429 + Retry-After, no hash runs for it (even with the right
    password, which would otherwise confirm a guess), and another client logs in at once."""
    counter, url = upstream
    users = {"alice": cheap_hash(PASSWORD)}
    app = DagsterProxy(proxy_settings(url, users, login_burst=5, login_lockout_seconds=60))
    hashes: list[int] = []
    real = auth_module.hashlib.scrypt
    monkeypatch.setattr(auth_module.hashlib, "scrypt", lambda *a, **k: hashes.append(1) or real(*a, **k))
    attacker = TestClient(app, client=("203.0.113.7", 4000))
    user = TestClient(app, client=("198.51.100.2", 5000))
    with attacker, user:
        statuses = [
            attacker.get("/", headers={"Authorization": basic("alice", f"guess{i}")}).status_code for i in range(40)
        ]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        assert len(hashes) == 5
        locked = attacker.get("/", headers={"Authorization": basic("alice", PASSWORD)})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        token = attacker.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert token.status_code == 429
        assert len(hashes) == 5
        ok = user.get("/", headers={"Authorization": basic("alice", PASSWORD)})
        assert ok.status_code == 200 and ok.text == "upstream ok"
    assert counter.hits == 1


def test_no_credentials_at_all_is_401_and_never_throttled(upstream) -> None:
    """A browser's first request has no credentials: it is challenged, not counted."""
    _, url = upstream
    app = DagsterProxy(proxy_settings(url, {"alice": cheap_hash(PASSWORD)}, login_burst=1))
    with TestClient(app) as client:
        for _ in range(5):
            response = client.get("/")
            assert response.status_code == 401 and "Basic" in response.headers["www-authenticate"]
        login = client.get("/", headers={"Authorization": basic("alice", PASSWORD)})
        assert login.status_code == 200


def test_a_login_flood_does_not_starve_other_clients_S1(upstream) -> None:
    """Real servers: 12 threads send wrong passwords from 127.0.0.1 while a user on 127.0.0.2
    logs in and keeps working. The hash never runs on the event loop, so every one of the user's
    requests is answered within the bound."""
    _, upstream_url = upstream
    settings = proxy_settings(
        upstream_url, {"alice": hash_password(PASSWORD)}, login_burst=1_000_000
    )  # no throttle: only the thread pool
    app = DagsterProxy(settings)
    stop = threading.Event()
    with serve_in_thread(app) as base:

        def flood() -> None:
            with httpx.Client(base_url=base, timeout=60, transport=httpx.HTTPTransport(local_address="127.0.0.1")) as c:
                while not stop.is_set():
                    c.get("/", headers={"Authorization": basic("alice", "wrong")})

        threads = [threading.Thread(target=flood, daemon=True) for _ in range(12)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the flood is under way
        latencies = []
        try:
            with httpx.Client(
                base_url=base, timeout=60, transport=httpx.HTTPTransport(local_address="127.0.0.2")
            ) as user:
                for _ in range(8):
                    started = time.monotonic()
                    response = user.get("/", headers={"Authorization": basic("alice", PASSWORD)})
                    latencies.append(time.monotonic() - started)
                    assert response.status_code == 200
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
    # The first request waits for a hashing slot; later ones are answered from the cache.
    assert max(latencies[1:]) < 2.0, latencies
    assert latencies[0] < 10.0, latencies


# --- any request: < 500, bounded, nothing unauthenticated upstream --------------------------------

CHEAP_USERS = {"alice": cheap_hash(PASSWORD)}
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=200)
CREDENTIALS = st.one_of(
    st.just(basic("alice", PASSWORD)),
    st.just(f"Bearer {TOKEN}"),
    st.builds(basic, HEADER_TEXT.filter(lambda t: ":" not in t), HEADER_TEXT),
    st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    HEADER_TEXT.map(lambda t: "Basic " + t),
    HEADER_TEXT.map(lambda t: "Bearer " + t),
    HEADER_TEXT,
)
PATHS = st.one_of(
    st.sampled_from(["/", "/graphql", "//graphql/", "/x/../graphql", "/server_info"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%"), max_size=60).map(
        lambda t: "/" + t
    ),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, bytes]], bytes, bool]:
    headers: dict[str, str] = {}
    authorization = draw(st.none() | CREDENTIALS)
    if authorization is not None:
        headers["Authorization"] = authorization
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    "Origin",
                    "Content-Type",
                    "Sec-Fetch-Site",
                    "X-Dagster-Request",
                    "Host-X",
                    "X-Forwarded-For",
                    "Cookie",
                    "Upgrade",
                ]
            ),
            max_size=4,
            unique=True,
        )
    ):
        headers[name] = draw(HEADER_TEXT)
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "PROPFIND"]))
    query = draw(st.sampled_from(["", "?query=mutation", "?a=%ff%fe", "?" + "x" * 3000]))
    body = draw(st.binary(max_size=300)) if method not in ("GET", "HEAD") else b""
    known = authorization in (basic("alice", PASSWORD), f"Bearer {TOKEN}")
    raw_headers = [(name, value.encode("latin-1")) for name, value in headers.items()]
    return method, draw(PATHS) + query, raw_headers, body, known


@fuzz_settings(150, suppress_health_check=[*SLOW_CHECKS, HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_fuzz_proxy_requests(upstream, request) -> None:
    """Any method, path, header and body: < 500 in bounded time; without valid credentials
    nothing reaches the webserver."""
    counter, url = upstream
    method, target, headers, body, known = request
    app = DagsterProxy(proxy_settings(url, CHEAP_USERS, login_burst=1_000_000))
    before = counter.hits
    started = time.monotonic()
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.request(method, target, headers=headers, content=body)
    assert time.monotonic() - started < 10
    assert response.status_code < 500, (response.status_code, response.text[:200])
    if not known:
        assert response.status_code in (401, 429) and counter.hits == before


# --- slow clients --------------------------------------------------------------------------------


def _trickle(base_url: str, head: bytes, tail: bytes, bound: float) -> tuple[bytes, float]:
    """Send ``head``, then ``tail`` a byte a second; what came back until the server closed."""
    host, port = base_url.removeprefix("http://").split(":")
    stop = threading.Event()
    with socket.create_connection((host, int(port)), timeout=bound) as sock:
        sock.sendall(head)
        started = time.monotonic()

        def send() -> None:
            for byte in tail:
                if stop.wait(1.0):
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return

        threading.Thread(target=send, daemon=True).start()
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except TimeoutError:
            pytest.fail(f"still open after {bound:.0f}s; got {received!r}")
        except ConnectionResetError:
            pass
        finally:
            stop.set()
        return received, time.monotonic() - started


@pytest.mark.parametrize(
    ("head", "tail", "status"),
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * 60, b"408", id="slow-headers"),
        pytest.param(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nX-Dagster-Request: 1\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Length: 60\r\n\r\n{",
            b" " * 59,
            None,
            id="slow-authenticated-body",
        ),
    ],
)
def test_slow_clients_are_cut_off_at_the_request_deadline(upstream, head, tail, status) -> None:
    """A slow client of the proxy is closed at its request deadline; others are served."""
    counter, url = upstream
    app = DagsterProxy(proxy_settings(url, CHEAP_USERS))
    with serve_in_thread(app, request_timeout_seconds=3.0) as base:
        result: dict[str, tuple[bytes, float]] = {}
        thread = threading.Thread(target=lambda: result.update(r=_trickle(base, head, tail, 8.0)))
        thread.start()
        time.sleep(0.5)
        quick = httpx.get(f"{base}/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert quick.status_code == 200
        thread.join(timeout=30)
    received, elapsed = result["r"]
    assert 2.5 < elapsed < 6.0
    if status:
        assert received.startswith(b"HTTP/1.1 " + status), received
    assert counter.hits == 1  # only the quick request reached the webserver whole
