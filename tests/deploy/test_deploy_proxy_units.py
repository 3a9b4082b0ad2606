"""The proxy's pure parts: password hashes, the Authorization check and the request policy.

The end-to-end tests (test_deploy_proxy_e2e.py) show the same rules on real processes; these
tables pin down the edge cases quickly.
"""

from __future__ import annotations

import base64

import pytest
from click.testing import CliRunner

from dp_proxy.auth import Authenticator, hash_password, parse_users, verify_password
from dp_proxy.cli import proxy_cli
from dp_proxy.policy import check_http, check_websocket, media_type, normalise_path
from dp_proxy.settings import ProxySettings

HOST = "dagster.example:8080"
SAME = f"http://{HOST}"
SETTINGS = ProxySettings(upstream="http://127.0.0.1:3000", tokens=["t0ken"])
JSON = {"content-type": "application/json", "host": HOST}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_password_hash_round_trip_S1() -> None:
    encoded = hash_password("correct horse battery")
    assert encoded.startswith("scrypt:") and "$" not in encoded
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    assert hash_password("same", salt=b"x" * 16) != hash_password("same")


@pytest.mark.parametrize("encoded", ["", "scrypt:1:2", "md5:a:b:c:d:e", "scrypt:16384:8:1:!!:!!", "scrypt:x:8:1:a:b"])
def test_malformed_hash_never_matches_S1(encoded: str) -> None:
    assert not verify_password("anything", encoded)


def test_parse_users_rejects_plain_passwords_S1() -> None:
    entry = f"alice:{hash_password('pw-alice-123456')}"
    assert set(parse_users(f"{entry}, bob:{hash_password('pw-bob-1234567')}")) == {"alice", "bob"}
    with pytest.raises(ValueError, match="NAME:scrypt"):
        parse_users("alice:plaintext")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, None, id="S1-none"),
        pytest.param("", None, id="S1-empty"),
        pytest.param(_basic("alice", "pw-alice-123456"), "alice", id="S1-basic-ok"),
        pytest.param(_basic("alice", "wrong"), None, id="S1-basic-wrong-password"),
        pytest.param(_basic("mallory", "pw-alice-123456"), None, id="S1-basic-unknown-user"),
        pytest.param("Basic not-base64!", None, id="S1-basic-garbage"),
        pytest.param("Bearer t0ken", "token", id="S1-bearer-ok"),
        pytest.param("bearer t0ken", "token", id="S1-bearer-case"),
        pytest.param("Bearer t0ken2", None, id="S1-bearer-wrong"),
        pytest.param("Digest x", None, id="S1-other-scheme"),
    ],
)
def test_authenticator(header: str | None, expected: str | None) -> None:
    auth = Authenticator({"alice": hash_password("pw-alice-123456")}, ["t0ken"])
    assert auth.principal(header) == expected
    assert auth.principal(header) == expected  # the cached answer is the same


@pytest.mark.parametrize(
    ("method", "path", "headers", "query", "status"),
    [
        pytest.param("GET", "/", {}, set(), None, id="S2-ui-get"),
        pytest.param("GET", "/graphql", {}, set(), None, id="S2-graphiql-page"),
        pytest.param("GET", "/graphql", {}, {"query"}, 405, id="S2-get-query"),
        pytest.param("HEAD", "/graphql", {}, {"query"}, 405, id="S2-head-query"),
        pytest.param("GET", "/graphql/", {}, {"query"}, 405, id="S2-trailing-slash"),
        pytest.param("GET", "/x/../graphql", {}, {"query"}, 405, id="S2-dot-dot"),
        pytest.param("GET", "//GRAPHQL", {}, {"variables"}, 405, id="S2-case"),
        pytest.param("TRACE", "/", {}, set(), 405, id="S2-trace"),
        pytest.param("POST", "/graphql", {**JSON, "origin": SAME}, set(), None, id="S3-same-origin"),
        pytest.param("POST", "/graphql", {**JSON, "x-dagster-request": "1"}, set(), None, id="S3-header"),
        pytest.param("POST", "/graphql", JSON, set(), 403, id="S3-neither"),
        pytest.param(
            "POST",
            "/graphql",
            {**JSON, "origin": "http://evil.example", "x-dagster-request": "1"},
            set(),
            403,
            id="S3-foreign-origin-with-header",
        ),
        pytest.param(
            "POST",
            "/graphql",
            {"content-type": "text/plain; a=application/json", "host": HOST, "origin": SAME},
            set(),
            403,
            id="S3-json-as-parameter",
        ),
        pytest.param(
            "POST",
            "/graphql",
            {"content-type": "application/x-www-form-urlencoded", "origin": SAME, "host": HOST},
            set(),
            403,
            id="S3-form",
        ),
        pytest.param(
            "POST",
            "/graphql",
            {**JSON, "x-dagster-request": "1", "sec-fetch-site": "same-site"},
            set(),
            403,
            id="S3-fetch-metadata",
        ),
        pytest.param(
            "DELETE",
            "/anything",
            {"host": HOST, "origin": "http://evil.example"},
            set(),
            403,
            id="S3-unsafe-elsewhere",
        ),
        pytest.param(
            "POST",
            "/report_asset_materialization/a",
            {"host": HOST, "x-dagster-request": "1"},
            set(),
            None,
            id="S3-report-with-header",
        ),
    ],
)
def test_http_policy(method: str, path: str, headers: dict, query: set[str], status: int | None) -> None:
    refusal = check_http(method, path, headers, query, SETTINGS)
    assert (refusal.status if refusal else None) == status


def test_configured_origins_replace_same_origin_S3() -> None:
    settings = SETTINGS.model_copy(update={"allowed_origins": ["https://ui.example"]})
    allowed = {**JSON, "origin": "https://UI.example/"}
    assert check_http("POST", "/graphql", allowed, set(), settings) is None
    same_host = {**JSON, "origin": SAME}
    assert check_http("POST", "/graphql", same_host, set(), settings).status == 403


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        pytest.param({"host": HOST, "origin": SAME}, False, id="S4-same-origin"),
        pytest.param({"host": HOST, "origin": "http://evil.example"}, True, id="S4-foreign"),
        pytest.param({"host": HOST, "origin": "null"}, True, id="S4-null"),
        pytest.param({"host": HOST}, True, id="S4-no-origin"),
        pytest.param({"host": HOST, "x-dagster-request": "1"}, False, id="S4-script"),
    ],
)
def test_websocket_policy(headers: dict, refused: bool) -> None:
    assert (check_websocket(headers, SETTINGS) is not None) == refused


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json; charset=utf-8", "application/json"),
        (None, ""),
        ("TEXT/Plain", "text/plain"),
    ],
)
def test_media_type(value: str | None, expected: str) -> None:
    assert media_type(value) == expected


def test_normalise_path() -> None:
    assert normalise_path("//graphql/") == "/graphql"
    assert normalise_path("") == "/"


def test_settings_from_env_S1() -> None:
    entry = f"alice:{hash_password('pw-alice-123456')}"
    settings = ProxySettings.from_env(
        {
            "DP_PROXY_USERS": entry,
            "DP_PROXY_TOKEN": "a, b",
            "DP_PROXY_ALLOWED_ORIGINS": "https://X.example/,",
            "DP_PROXY_UPSTREAM": "http://webserver:3000/",
        }
    )
    assert settings.upstream == "http://webserver:3000"
    assert [t.get_secret_value() for t in settings.tokens] == ["a", "b"]
    assert settings.allowed_origins == ["https://x.example"]
    assert "a" not in repr(settings.tokens)


def test_proxy_refuses_to_start_without_credentials_S1() -> None:
    """S1: a proxy with no users and no token would let everyone in, so it does not start."""
    result = CliRunner().invoke(proxy_cli, ["serve"], env={"DP_PROXY_USERS": "", "DP_PROXY_TOKEN": ""})
    assert result.exit_code != 0
    assert "no credentials" in result.output


def test_hash_password_command_S1() -> None:
    result = CliRunner().invoke(proxy_cli, ["hash-password", "alice", "--stdin"], input="a-long-password\n")
    assert result.exit_code == 0, result.output
    name, _, encoded = result.output.strip().partition(":")
    assert name == "alice" and verify_password("a-long-password", encoded)
