"""Bearer tokens for the receiver, read from the environment on every request.

Secure by default: with no token configured for a flow (neither its own nor the global one) every
request for it is refused. A per-flow token replaces the global one for that flow, so a token
handed to one partner opens one flow only. Reading the environment per request (not at import or
start-up) lets tests and operators change tokens without rebuilding the app.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Mapping

FLOW_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # the spec's FlowId
GLOBAL_TOKEN_ENV = "DP_WEBHOOK_TOKEN"


def flow_token_env(flow_id: str) -> str:
    """The per-flow variable, e.g. ``DP_WEBHOOK_TOKEN_DAILY_SALES`` for ``daily_sales``."""
    return f"{GLOBAL_TOKEN_ENV}_{flow_id.upper()}"


def expected_token(flow_id: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The token that opens ``flow_id``: its own when set, else the global one, else none."""
    env = os.environ if environ is None else environ
    if FLOW_ID_RE.fullmatch(flow_id):
        own = env.get(flow_token_env(flow_id))
        if own:
            return own
    return env.get(GLOBAL_TOKEN_ENV) or None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, ``None`` for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def is_authorised(
    flow_id: str, authorization: str | None, environ: Mapping[str, str] | None = None
) -> bool:
    """Compare in constant time; a missing configuration or header is never authorised."""
    expected = expected_token(flow_id, environ)
    given = bearer_token(authorization)
    if expected is None or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
