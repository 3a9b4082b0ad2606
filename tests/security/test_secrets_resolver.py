"""S6 (properties): the one secret resolver, ``dp_resources.secrets``, on any text in any field.

1. Any string, in any field that may hold a secret (a node param the author wrote, a launch
   param filled into one, a ``notify:`` target, an operator's config), resolves only names the
   allow-list permits, and only where the author (or operator) wrote ``${env:NAME}`` themselves;
   everything else stays the inert text it was. A one-pass reference implementation is the oracle.
2. A resolved value never appears in what leaves: error messages, log records of the client
   libraries, metadata and outputs (in its plain, URL-, JSON- and base64-encoded forms).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from dp_assets.spec.templates import TEMPLATE, render
from dp_resources.notifications import NotificationFailed, NotificationsResource
from dp_resources.secrets import (
    ENV_REFERENCE,
    SecretError,
    SecretScope,
    as_written,
    seal_written,
)
from tests.fuzzing import fuzz_settings

# A field that is one params reference, spaces around it aside, takes the value itself (the
# oracle's own statement of the rule, independent of the product's regexes).
WHOLE = re.compile(r"^\s*\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")

ENV = {
    "DP_SECRET_OK": "allowed-value-4711",
    "DP_SECRET_SHORT": "ab",
    "FORBIDDEN_TOKEN": "forbidden-value-0815",
    "DP_STORE_URL": "postgresql://admin:pw-1234@db/dp",
}
ALLOWED = ("DP_SECRET_*",)
NAMES = [*ENV, "DP_SECRET_UNSET", "lower_case"]
# Pieces hostile text is made of: reference syntax, names, templates, look-alike and forged seals.
PIECES = [
    "${env:",
    "{env:",
    "$",
    "{",
    "}",
    "}}",
    "{{",
    " ",
    "x",
    "$[dp-secret:",
    ":",
    "]",
    "{{ params.p }}",
    "{{ params.q }}",
    "$[dp-secret:FORBIDDEN_TOKEN:" + "0" * 32 + "]",
    *NAMES,
    *("${env:" + name + "}" for name in NAMES),
]


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(st.lists(st.sampled_from(PIECES), max_size=8).map("".join), st.text(max_size=30))


def caller_value() -> st.SearchStrategy[str]:
    """A launch param or event value: hostile text, or a genuine seal that escaped somewhere."""
    escaped = st.sampled_from([seal_written("${env:" + name + "}") for name in NAMES])
    return st.one_of(hostile_text(), escaped, st.lists(st.one_of(hostile_text(), escaped), max_size=3).map("".join))


def oracle(author: str, params: dict[str, str] | None = None) -> str:
    """One pass over the author's text: references in its literal parts resolve, params are text.

    ``params=None``: text that is never templated (a ``notify:`` entry, an operator's config).
    """
    if params is not None and (whole := WHOLE.match(author)):
        return as_written(params[whole.group(1)])
    parts = TEMPLATE.split(author) if params is not None else [author]
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(as_written(params[part]))
            continue

        def value(match):
            name = match.group(1)
            if not any(name.startswith(p.rstrip("*")) for p in ALLOWED) or not ENV.get(name) or len(ENV[name]) < 4:
                raise SecretError(name)
            return ENV[name]

        out.append(ENV_REFERENCE.sub(value, part))
    return "".join(out)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DP_SECRET_UNSET", raising=False)
    monkeypatch.delenv("DP_ALLOWED_SECRET_NAMES", raising=False)


def _values_in(text: str) -> list[str]:
    return [name for name, value in ENV.items() if len(value) >= 4 and value in text]


def test_S6_any_text_in_a_param_resolves_only_the_authors_allowed_references(environment: None) -> None:
    """Author text with launch params filled in, rendered and resolved as a tool node does, equals
    the one-pass oracle: or both refuse. A refusal names no value."""

    @fuzz_settings(300)
    @given(author=hostile_text(), p=caller_value(), q=caller_value())
    @example(author="${env:FORBIDDEN_TOKEN}", p="", q="")
    @example(author="{{ params.p }}{{ params.q }}", p="$", q="{env:DP_SECRET_OK}")
    @example(author="${env:{{ params.p }}}", p="DP_SECRET_OK", q="")
    def check(author: str, p: str, q: str) -> None:
        params = {"p": p, "q": q}
        scope = SecretScope(ALLOWED)
        try:
            wanted = oracle(author, params)
        except SecretError:
            wanted = None
        try:
            got = scope.resolve(render({"field": author}, params), "params")["field"]
        except SecretError as exc:
            assert wanted is None, (author, params)
            assert not _values_in(str(exc)), str(exc)
            return
        assert got == wanted, (author, params)

    check()


def test_S6_any_notify_target_resolves_only_allowed_names(environment: None) -> None:
    """A `notify:` webhook or e-mail entry (the author's whole text) gives an allowed variable's
    value, its own plain text, or a refusal naming no value; never a refused variable's value."""
    resource = NotificationsResource(webhooks={"team": "http://hooks.test/team"})

    @fuzz_settings(200)
    @given(target=hostile_text())
    @example(target="${env:DP_STORE_URL}")
    @example(target="${env:DP_SECRET_OK}")
    def check(target: str) -> None:
        scope = SecretScope(ALLOWED)
        try:
            wanted = oracle(target)
        except SecretError:
            wanted = None
        try:
            url = resource.webhook_url(seal_written(target), scope, "notify[0].webhook")
        except NotificationFailed as exc:
            assert not _values_in(str(exc)), str(exc)
            return
        if ENV_REFERENCE.search(target):
            assert url == wanted, target
        else:
            assert (target, url) == ("team", "http://hooks.test/team")

    check()


def test_S6_operator_text_obeys_the_allow_list_too(environment: None) -> None:
    """`resolve_written` (MCP config and the like) resolves the same names the same way."""

    @fuzz_settings(150)
    @given(text=hostile_text())
    def check(text: str) -> None:
        scope = SecretScope(ALLOWED)
        try:
            wanted = oracle(text)
        except SecretError:
            wanted = None
        try:
            got = scope.resolve_written(text)
        except SecretError as exc:
            assert wanted is None and not _values_in(str(exc))
            return
        assert got == wanted

    check()


# --- a resolved value never leaves ------------------------------------------------------------------

SECRET_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=4, max_size=24)


def forms(value: str) -> list[str]:
    return [
        value,
        quote(value, safe=""),
        quote_plus(value),
        json.dumps(value)[1:-1],
        base64.b64encode(value.encode()).decode().rstrip("="),
    ]


@fuzz_settings(300)
@given(value=SECRET_TEXT, before=st.text(max_size=12), after=st.text(max_size=12), which=st.integers(0, 4))
@example(value="a***", before="a", after="", which=0)
@example(value="ab**", before="", after="**", which=0)
def test_S6_a_resolved_value_is_redacted_from_any_text(value: str, before: str, after: str, which: int) -> None:
    scope = SecretScope(["DP_SECRET_V"], environ={"DP_SECRET_V": value})
    scope.secret("DP_SECRET_V")
    text = before + forms(value)[which] + after
    assert value not in scope.redact(text)
    assert not scope.holds_secret(scope.redact(text))


def test_S6_a_resolved_value_never_reaches_errors_logs_or_metadata() -> None:
    import pandas as pd

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("httpx")
    handler = Keep()
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)

    def shown(scope: SecretScope, leaks: list[str]) -> list[str]:
        """What leaves a node built from ``leaks``: an error, metadata, a frame, a log record."""
        error = scope.safe_error(RuntimeError(" | ".join(leaks)), "node 'n'")
        metadata = scope.redact_value(
            {
                "calls": [{"url": leaks[1], "body": leaks[3].encode()}],
                "n": 1,
                "frame": pd.DataFrame({"c": [leaks[2], 1], "d": [leaks[0], 2]}),
            }
        )
        records.clear()
        with scope.logs_redacted():
            logger.info("POST %s %s", leaks[0], leaks[4])
        assert len(records) == 1, "the log record was dropped instead of redacted"
        return [
            str(error),
            json.dumps(metadata["calls"], default=str),
            metadata["frame"].to_json(),
            records[0].getMessage(),
        ]

    @fuzz_settings(150)
    @given(value=SECRET_TEXT, text=st.text(max_size=20))
    def check(value: str, text: str) -> None:
        # The same output with every form already "***": a value that is part of that scaffolding
        # ("node", '"calls"', '***"') is no leak, so such an example is skipped.
        scaffold = "\n".join(shown(SecretScope([]), [f"{text}***"] * 5))
        assume(not any(form in scaffold for form in forms(value)))
        scope = SecretScope(["DP_SECRET_V"], environ={"DP_SECRET_V": value})
        assert scope.resolve(seal_written("Bearer ${env:DP_SECRET_V}")) == f"Bearer {value}"
        for line in shown(scope, [f"{text}{form}" for form in forms(value)]):
            assert not any(form in line for form in forms(value)), (value, line)

    try:
        check()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
