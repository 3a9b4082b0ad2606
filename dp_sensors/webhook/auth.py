"""Bearer tokens for the receiver: ``DP_WEBHOOK_TOKEN_<FLOW_ID>``, else ``DP_WEBHOOK_TOKEN``.

Secure by default: with no token configured for a flow (neither its own nor the global one) every
request for it is refused. A per-flow token replaces the global one for that flow, so a token
handed to one partner opens one flow only. The tokens come from the receiver's settings
(:class:`dp_settings.groups.WebhookSettings`), given when the app is built; an app built without
them reads the settings in force on every request (:func:`dp_settings.current`), so tests can
change tokens without rebuilding it.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable

from dp_settings import current
from dp_settings.groups import WebhookSettings

#: ``(flow_id, token, action) -> bool``: whether a service token of the store (``dpt_...``,
#: docs/security.md "Roles") may ``run`` or ``view`` the flow; injected by the platform's wiring
#: (``dp_assets.receiver``), since this package does not know the store's grants.
ServiceTokenCheck = Callable[[str, str, str], bool]
#: ``(flow_id, run_id, actor) -> None``: record a launch the receiver made (the audit trail).
LaunchAudit = Callable[[str, str, str], None]
SERVICE_TOKEN_PREFIX = "dpt_"
FLOW_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # the spec's FlowId
GLOBAL_TOKEN_ENV = "DP_WEBHOOK_TOKEN"


def flow_token_env(flow_id: str) -> str:
    """The per-flow variable, e.g. ``DP_WEBHOOK_TOKEN_DAILY_SALES`` for ``daily_sales``."""
    return f"{GLOBAL_TOKEN_ENV}_{flow_id.upper()}"


def expected_token(flow_id: str, webhook: WebhookSettings | None = None) -> str | None:
    """The token that opens ``flow_id``: its own when set, else the global one, else none."""
    webhook = webhook if webhook is not None else current().webhook
    if FLOW_ID_RE.fullmatch(flow_id):
        own = webhook.flow_token(flow_id)
        if own:
            return own
    return webhook.token.get_secret_value() if webhook.token else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, ``None`` for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def is_authorised(flow_id: str, authorization: str | None, webhook: WebhookSettings | None = None) -> bool:
    """Compare in constant time; a missing configuration or header is never authorised."""
    expected = expected_token(flow_id, webhook)
    given = bearer_token(authorization)
    if expected is None or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def is_authorised_by_any(
    flow_id: str,
    authorization: str | None,
    webhook: WebhookSettings | None,
    service_tokens: ServiceTokenCheck | None,
    action: str,
) -> bool:
    """The receiver's token (:func:`is_authorised`) or a service token whose roles allow
    ``action`` on the flow (a token scoped to flows: it opens those it holds a role on)."""
    if is_authorised(flow_id, authorization, webhook):
        return True
    given = bearer_token(authorization)
    if service_tokens is None or given is None or not given.startswith(SERVICE_TOKEN_PREFIX):
        return False
    return FLOW_ID_RE.fullmatch(flow_id) is not None and service_tokens(flow_id, given, action)


def caller_label(authorization: str | None) -> str:
    """Who launched, for the audit trail: ``token:<id>`` for a service token, else the
    receiver's shared token (which names no one)."""
    given = bearer_token(authorization) or ""
    if given.startswith(SERVICE_TOKEN_PREFIX) and given.count("_") >= 2:
        return f"token:{given.split('_')[1][:32]}"
    return "receiver-token"
