"""The designer's grant form checks names, workspaces and flows before it sends them
(designer/src/roles.ts); those patterns must stay the access store's own, or the form would
refuse what ``dp roles`` accepts (or let through what the server then answers 422)."""

from __future__ import annotations

import re
from pathlib import Path

from dp_auth.access import FLOW_RE, NAME_RE, TOKEN_RE, WORKSPACE_RE

ROLES_TS = Path(__file__).resolve().parents[2] / "designer" / "src" / "roles.ts"


def _client_pattern(name: str) -> str:
    found = re.search(rf"^const {name} = /(.+)/;$", ROLES_TS.read_text(), re.MULTILINE)
    assert found, f"designer/src/roles.ts no longer declares {name}"
    return found.group(1)


def test_the_grant_forms_patterns_are_the_access_stores():
    assert _client_pattern("NAME") == NAME_RE.pattern
    assert _client_pattern("WORKSPACE") == WORKSPACE_RE.pattern
    assert _client_pattern("FLOW") == FLOW_RE.pattern
    token_id = re.match(r"\^dpt_\((.+?)\)_", TOKEN_RE.pattern)
    assert token_id and _client_pattern("TOKEN_ID") == f"^{token_id.group(1)}$"
