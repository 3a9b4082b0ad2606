"""Hostile bodies and headers at the receiver: always a 4xx with a JSON message, never a 500, in
bounded time, and nothing published or launched for a refused request (issue 16, endpoints).

Starlette's TestClient drives the app in-process (fast, so Hypothesis can try many inputs); the
ledger and the bus are real SQLite files. ``DP_FUZZ_EXAMPLES=N`` runs the properties N times
longer with fresh random inputs (docs/security.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict
from starlette.testclient import TestClient

from dp_sensors.events.sql import SqlEventBus
from dp_sensors.webhook import LaunchLedger, create_app
from dp_sensors.webhook.bodies import MAX_JSON_DEPTH
from tests.fuzzing import SLOW_CHECKS, fuzz_settings

TOKEN = "hostile-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 64 * 1024
ANSWER_BOUND_SECONDS = 5.0
# The app is built once per test; each example compares counts before and after itself.
SHARED_APP = [*SLOW_CHECKS, HealthCheck.function_scoped_fixture]


class OrderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: int
    region: str = "eu"
    tags: list[str] = []


class CountingLauncher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, dict]] = []

    def __call__(self, flow_id: str, params: dict, tags: dict) -> str:
        self.calls.append((flow_id, params, tags))
        return f"run-{len(self.calls)}"


class Receiver:
    def __init__(self, client: TestClient, bus: SqlEventBus, ledger: LaunchLedger, launcher: CountingLauncher) -> None:
        self.client, self.bus, self.ledger, self.launcher = client, bus, ledger, launcher

    def events(self) -> int:
        return len(self.bus.read_after(None, limit=100_000))


@pytest.fixture
def receiver(tmp_path) -> Iterator[Receiver]:
    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    bus, ledger, launcher = SqlEventBus(url), LaunchLedger(url), CountingLauncher()
    bus.ensure_schema()
    ledger.ensure_schema()
    app = create_app(
        catalog={"orders": OrderParams}.get,
        bus=bus,
        ledger=ledger,
        launcher=launcher,
        max_body_bytes=MAX_BODY,
        environ={"DP_WEBHOOK_TOKEN": TOKEN},
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Receiver(client, bus, ledger, launcher)
    bus.close()
    ledger.close()


def nested(depth: int, leaf: str = "1") -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


def nested_objects(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


HOSTILE_BODIES = [
    ("deep-arrays", nested(30_000), 400),
    ("deep-objects", nested_objects(10_000), 400),
    ("deep-at-recursion-limit", nested(990), 400),
    ("deep-just-over-limit", b'{"order_id": 1, "tags": ' + nested(MAX_JSON_DEPTH) + b"}", 400),
    ("deep-unclosed", b"[" * 50_000, 400),
    ("huge-exponent", b'{"order_id": 1e999999}', 400),
    ("negative-huge-exponent", b'{"order_id": -1e999999}', 400),
    ("nan", b'{"order_id": NaN}', 400),
    ("infinity", b'{"order_id": Infinity}', 400),
    ("huge-integer", b'{"order_id": ' + b"9" * 5000 + b"}", 400),
    ("duplicate-keys", b'{"order_id": 1, "order_id": 2}', 400),
    ("bad-utf8", b'{"order_id": 1, "region": "\xff\xfe"}', 400),
    ("utf16", '{"order_id": 1}'.encode("utf-16"), 400),
    ("utf8-bom", b'\xef\xbb\xbf{"order_id": 1}', 400),
    ("lone-surrogate", b'{"order_id": 1, "region": "\\ud800"}', 400),
    ("surrogate-in-key", b'{"\\udfff": 1}', 400),
    ("nul-in-text", b'{"order_id": 1, "region": "e\\u0000u"}', 400),
    ("nul-byte-raw", b'{"order_id": 1}\x00', 400),
    ("trailing-garbage", b'{"order_id": 1} {}', 400),
    ("array", b"[1, 2]", 422),
    ("string", b'"x"', 422),
    ("null", b"null", 422),
    ("whitespace", b"  \n ", 400),
]


@pytest.mark.parametrize(("body", "status"), [c[1:] for c in HOSTILE_BODIES], ids=[c[0] for c in HOSTILE_BODIES])
@pytest.mark.parametrize("route", ["hook", "launch"])
def test_hostile_bodies_are_4xx_and_do_nothing(receiver: Receiver, route: str, body: bytes, status: int) -> None:
    """Deep nesting, non-finite numbers, duplicate keys, bad text: 4xx, no event, no run."""
    if route == "launch":
        # The launch envelope is {"params": ...}: put the hostile value inside it.
        body = b'{"params": ' + body + b"}" if status != 422 else body
        path, headers = "/flows/orders/runs", {**AUTH, "Idempotency-Key": "k"}
    else:
        path, headers = "/hooks/orders", AUTH
    response = receiver.client.post(path, content=body, headers=headers)
    expected = {status} if route == "hook" else {400, 422}
    assert response.status_code in expected, response.text
    assert response.json()["detail"]
    assert "Traceback" not in response.text
    assert receiver.events() == 0 and receiver.launcher.calls == []
    assert receiver.ledger.get("k", "orders") is None


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/hooks/orders", 405),
        ("PUT", "/flows/orders/runs", 405),
        ("DELETE", "/runs/abc/result", 405),
        ("POST", "/no/such/route", 404),
        ("GET", "/", 404),
    ],
)
def test_a_wrong_route_or_method_is_answered_in_json_too(
    receiver: Receiver, method: str, path: str, status: int
) -> None:
    """docs/events.md: every answer is JSON with a detail (Starlette's own were plain text)."""
    response = receiver.client.request(method, path, headers=AUTH)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"] in ("Not Found", "Method Not Allowed")
    if status == 405:
        assert response.headers["allow"]
    assert receiver.events() == 0 and receiver.launcher.calls == []


def test_nesting_up_to_the_limit_is_accepted(receiver: Receiver) -> None:
    """The limit is a bound, not a ban: a body nested exactly MAX_JSON_DEPTH deep is parsed."""
    tags = json.loads(nested(MAX_JSON_DEPTH - 1, '"x"'))  # the body object is level 1
    response = receiver.client.post("/hooks/orders", json={"order_id": 1, "tags": tags}, headers=AUTH)
    assert response.status_code == 422  # parsed, then refused by the params model (not 400)
    assert [e["loc"][0] for e in response.json()["errors"]] == ["tags"]


CONTENT_TYPES = [
    ("text-plain", "text/plain", 415),
    ("form", "application/x-www-form-urlencoded", 415),
    ("multipart", "multipart/form-data; boundary=x", 415),
    ("json-as-parameter", "text/plain; a=application/json", 415),
    ("latin1-charset", "application/json; charset=latin-1", 415),
    ("json", "application/json", 202),
    ("json-utf8", "application/json; charset=UTF-8", 202),
    ("problem-json", "application/problem+json", 202),
]


@pytest.mark.parametrize(("content_type", "status"), [c[1:] for c in CONTENT_TYPES], ids=[c[0] for c in CONTENT_TYPES])
def test_only_json_media_types_are_read(receiver: Receiver, content_type: str, status: int) -> None:
    response = receiver.client.post(
        "/hooks/orders",
        content=b'{"order_id": 1}',
        headers={**AUTH, "Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    assert receiver.events() == (1 if status == 202 else 0)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Content-Length": "abc"}, id="content-length-text"),
        pytest.param({"Content-Length": "-1"}, id="content-length-negative"),
        pytest.param({"Content-Length": "9" * 40}, id="content-length-huge"),
        pytest.param({"Authorization": "Bearer \u00ff\u00fe"}, id="latin1-token"),
        pytest.param({"Authorization": "Bearer " + "x" * 8000}, id="long-token"),
        pytest.param({"Idempotency-Key": "a\u0085b"}, id="key-control-char"),
        pytest.param({"Idempotency-Key": "\u00e9" * 300}, id="key-too-long"),
    ],
)
def test_odd_headers_are_4xx(receiver: Receiver, headers: dict[str, str]) -> None:
    merged = {**AUTH, "Content-Type": "application/json", **headers}
    response = receiver.client.post("/hooks/orders", content=b'{"order_id": 1}', headers=latin1(merged))
    assert 400 <= response.status_code < 500, response.text
    assert receiver.events() == 0


# --- properties --------------------------------------------------------------------------------

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=[]), max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=[]), max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


def _dumps(value: object) -> bytes:
    # ensure_ascii: unpaired surrogates become \\udXXX escapes, as a hostile sender would write.
    return json.dumps(value).encode()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json", "params", "bytes", "deep", "mutated", "big"]))
    if kind == "json":
        return _dumps(draw(JSON_VALUES))
    if kind == "params":
        params = {"order_id": draw(JSON_LEAVES | st.integers()), "region": draw(JSON_LEAVES), "tags": draw(JSON_VALUES)}
        return _dumps(params)
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(MAX_JSON_DEPTH - 3, 3_000))
        opener = draw(st.sampled_from(["[", '{"k":', '{"params":']))
        closer = "]" if opener == "[" else "}"
        return (
            opener * depth + draw(st.sampled_from(["1", '"x"', "1e999999", ""])) + closer * draw(st.integers(0, depth))
        ).encode()
    if kind == "big":
        size = draw(st.integers(MAX_BODY - 40, MAX_BODY + 40))
        return b'{"order_id": 1, "region": "' + b"x" * size + b'"}'
    raw = bytearray(_dumps({"params": {"order_id": 1, "region": "eu"}}))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(raw)))
        raw[position:position] = draw(st.binary(min_size=1, max_size=4))
    return bytes(raw)


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)


@st.composite
def header_sets(draw: st.DrawFn) -> dict[str, str]:
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["Authorization"] = draw(
            st.sampled_from([f"Bearer {TOKEN}", "Bearer", "Basic x"]) | HEADER_TEXT.map(lambda t: "Bearer " + t)
        )
    if draw(st.booleans()):
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-16"]) | HEADER_TEXT
        )
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(HEADER_TEXT)
    for name in draw(
        st.lists(st.sampled_from(["X-Odd", "Content-Encoding", "Expect", "Transfer-Encoding-X"]), max_size=2)
    ):
        headers[name] = draw(HEADER_TEXT)
    return headers


def latin1(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    """Header values as the bytes a client may send (HTTP/1.1 header values are latin-1)."""
    return [(name, value.encode("latin-1")) for name, value in headers.items()]


def _post(receiver: Receiver, path: str, body: bytes, headers: dict[str, str]):
    started = time.monotonic()
    response = receiver.client.post(path, content=body, headers=latin1(headers))
    elapsed = time.monotonic() - started
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert elapsed < ANSWER_BOUND_SECONDS, f"answered after {elapsed:.1f}s"
    if response.status_code >= 400:
        assert response.json()["detail"]
    return response


@fuzz_settings(300, suppress_health_check=SHARED_APP)
@given(body=bodies(), headers=header_sets())
def test_fuzz_hook_bodies_and_headers(receiver: Receiver, body: bytes, headers: dict[str, str]) -> None:
    """Any body and headers at POST /hooks: < 500, bounded time, an event only when 202."""
    before = receiver.events()
    response = _post(receiver, "/hooks/orders", body, {**AUTH, **headers})
    published = receiver.events() - before
    assert published == (1 if response.status_code == 202 else 0) or (
        response.status_code == 202 and published == 0  # a redelivery with a known key
    )


@fuzz_settings(300, suppress_health_check=SHARED_APP)
@given(body=bodies(), headers=header_sets())
def test_fuzz_launch_bodies_and_headers(receiver: Receiver, body: bytes, headers: dict[str, str]) -> None:
    """Any body and headers at POST /flows/../runs: < 500, bounded time, a run only when 201."""
    before = len(receiver.launcher.calls)
    response = _post(receiver, "/flows/orders/runs", body, {**AUTH, "Idempotency-Key": "fuzz", **headers})
    launched = len(receiver.launcher.calls) - before
    assert launched == (1 if response.status_code == 201 else 0)
