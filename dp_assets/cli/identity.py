"""Who a ``dp`` command acts for against the store.

With ``DP_AUTH_TOKEN`` set, ``dp`` acts as that service token and its roles decide; a token
the store does not know (made up, revoked, another store's) is refused, never ignored. Unset,
``dp`` is the local admin: it holds the store's database login, which can change anything.
"""

from __future__ import annotations

import click

from dp_auth.access import AccessStore
from dp_auth.permissions import LOCAL_ADMIN, Principal
from dp_settings import current


def cli_actor(access: AccessStore) -> Principal:
    token = current().auth.token
    if token is None:
        return LOCAL_ADMIN
    principal = access.authenticate_token(token.get_secret_value())
    if principal is None:
        raise click.ClickException("DP_AUTH_TOKEN is not a live service token of this store (revoked or unknown)")
    return principal
