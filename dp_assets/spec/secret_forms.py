"""Secrets in a spec have one form, ``${env:NAME}``; older forms are read as it, with a warning.

``ApiEndpoint`` and ``APIRequest`` used to take ``header_env: {Header: VARIABLE}`` beside
``headers``. Stored and deployed specs that still say so keep working: where a spec is normalised
(``normalise_spec``, the one door of files, store rows and API bodies) each entry becomes
``headers: {Header: "${env:VARIABLE}"}``. That is the author's literal text, so the renderer seals
it and the node resolves it like any reference the author wrote, under the same allow-list; the
old form gets nothing the new one does not. A ``SecretFormDeprecated`` warning names the flow,
node and field and shows the new form (``dp validate`` prints it). A value that is not a variable
name is left in place for the params model to refuse: ``"{{ params.x }}"`` there would let the
caller choose which secret is sent.

``refused_references`` lists the references the deployment's allow-list would refuse at run time
(a ``notify:`` webhook named ``${env:SLACK_URL}`` when only ``DP_SECRET_*`` is allowed), so
``dp validate`` can say so before a run or a notification fails.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

HEADER_ENV_NODE_TYPES = frozenset({"ApiEndpoint", "APIRequest"})
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SecretFormDeprecated(FutureWarning):
    """A spec writes a secret in a form other than ``${env:NAME}``; it still works, as that form."""


def upgrade_nodes(nodes: list[Any], flow_id: str | None) -> list[Any]:
    """``nodes`` (and sub-chain bodies) with old secret forms rewritten; the caller's values are kept.

    Costs a few dictionary look-ups per node, since every load of every flow passes here.
    """
    return [_upgrade_node(node, flow_id, "") for node in nodes]


def _upgrade_node(node: Any, flow_id: str | None, where: str) -> Any:
    if not isinstance(node, Mapping):
        return node
    params = node.get("params")
    if not isinstance(params, Mapping):
        return node
    place = f"{where}node '{node.get('id')}'"
    new_params = params
    node_type = node.get("type")
    takes_header_env = isinstance(node_type, str) and node_type in HEADER_ENV_NODE_TYPES
    if takes_header_env and isinstance(params.get("header_env"), Mapping):
        new_params = _header_env_as_headers(params, flow_id, place)
    body = new_params.get("body")
    if isinstance(body, list):
        new_body = [_upgrade_node(item, flow_id, f"{place}, body ") for item in body]
        if any(a is not b for a, b in zip(new_body, body, strict=True)):
            new_params = {**new_params, "body": new_body}
    return node if new_params is params else {**node, "params": new_params}


def _header_env_as_headers(params: Mapping[str, Any], flow_id: str | None, place: str) -> Mapping[str, Any]:
    header_env = params["header_env"]
    headers = params.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        return params  # an odd shape: validation reports it at its place
    if not all(isinstance(v, str) and VARIABLE_NAME.fullmatch(v) for v in header_env.values()):
        return params  # not a plain name: the params model refuses header_env with the new form
    moved = {str(header): "${env:" + name + "}" for header, name in header_env.items()}
    upgraded = {key: value for key, value in params.items() if key != "header_env"}
    upgraded["headers"] = {**(headers or {}), **moved}  # header_env won over headers, and still does
    shown = ", ".join(f'{header}: "{value}"' for header, value in moved.items())
    warnings.warn(
        SecretFormDeprecated(
            f"flow '{flow_id}', {place}, params.header_env: deprecated; write headers: {{{shown}}} (read so meanwhile)"
        ),
        stacklevel=4,
    )
    return upgraded


def refuse_header_env(params: Any) -> Any:
    """A params model's ``before`` check: ``header_env`` left by ``upgrade_nodes`` is refused by name."""
    if isinstance(params, Mapping) and "header_env" in params:
        raise ValueError(
            "header_env is no longer a param: write each header in `headers` as "
            "'${env:NAME}' (NAME a variable name; a {{ params.x }} cannot choose a secret)"
        )
    return params


@contextmanager
def deprecations() -> Iterator[list[str]]:
    """The ``SecretFormDeprecated`` messages raised inside, for ``dp validate`` to print; others pass."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SecretFormDeprecated)
        yield notes
    for warning in caught:
        if issubclass(warning.category, SecretFormDeprecated):
            notes.append(str(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def refused_in(raw: Mapping[str, Any], catalog: Any) -> list[str]:
    """``refused_references`` under this deployment's allow-list, for the node types of ``catalog``."""
    from dp_resources.secrets import SecretScope

    def resolves_secrets(node_type: Any) -> bool:
        return isinstance(node_type, str) and node_type in catalog and "secrets" in catalog[node_type].resources

    return refused_references(raw, resolves_secrets, SecretScope().allowed)


def refused_references(raw: Mapping[str, Any], resolves_secrets: Any, allowed: Any) -> list[str]:
    """``flow, node, field: ${env:NAME}`` lines for each reference that ``allowed(name)`` refuses.

    ``raw`` is a normalised spec; ``resolves_secrets(node_type)`` says whether a node type resolves
    references (others read them as text, so theirs are not counted).
    """
    flow_id = raw.get("id")
    found = []
    for index, target in enumerate(raw.get("notify") or []):
        if isinstance(target, Mapping):
            for field in ("webhook", "email"):
                for path, name in _names(target.get(field), f"notify[{index}].{field}"):
                    found.append((f"flow '{flow_id}', {path}", name))
    for node, place in _all_nodes(raw.get("nodes") or [], ""):
        if resolves_secrets(node.get("type")):
            for path, name in _names(node.get("params"), "params"):
                found.append((f"flow '{flow_id}', {place}node '{node.get('id')}', {path}", name))
    return [
        f"{where}: ${{env:{name}}} is not an allowed secret name here; the deployment will refuse it"
        for where, name in found
        if not allowed(name)
    ]


def _all_nodes(nodes: list[Any], where: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    for node in nodes:
        if isinstance(node, Mapping):
            yield node, where
            body = (node.get("params") or {}).get("body") if isinstance(node.get("params"), Mapping) else None
            if isinstance(body, list):
                yield from _all_nodes(body, f"{where}node '{node.get('id')}', body ")


def _names(value: Any, path: str) -> Iterator[tuple[str, str]]:
    from dp_resources.secrets import ENV_REFERENCE

    if isinstance(value, str):
        for name in ENV_REFERENCE.findall(value):
            yield path, name
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _names(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _names(item, f"{path}[{index}]")
