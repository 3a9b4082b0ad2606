"""Flow params cannot form data templates: a launch param whose text is ``{{ input }}``,
``{{ row.col }}`` or ``{{ args.x }}`` (alone or with the text beside it) stays that text; only the
spec author's own templates are filled from data (issue 16's class "text produced by templating is
read again": the same rule as for secret references, dp_assets/spec/inert.py)."""

from __future__ import annotations

import json
import re

from hypothesis import example, given
from hypothesis import strategies as st

from dp_assets.catalog.nodes.tools import DATA_TEMPLATE, fill
from dp_assets.spec.inert import MARK
from dp_assets.spec.templates import TEMPLATE, render
from tests.fuzzing import fuzz_settings

# A field that is one params reference, spaces around it aside, takes the value itself (the
# oracle's own statement of the rule, independent of the product's regexes).
WHOLE = re.compile(r"^\s*\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")

HIDDEN = "upstream-only-7c1f"  # a value only upstream data holds
DATA = {"input": {"col": HIDDEN, "0": {"col": HIDDEN}}, "row": {"col": HIDDEN}, "args": {"x": HIDDEN}}
PIECES = [
    "{{",
    "}}",
    "{",
    "}",
    " ",
    "input",
    "row",
    "args",
    ".col",
    ".x",
    ".0",
    "params.p",
    "$",
    "{env:",
    MARK,
    "\ue001",
    "\ue002",
    "a",
    "é",
]
texts = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
author_pieces = st.sampled_from(
    [
        "{{ params.p }}",
        "{{ params.q }}",
        "{{ input.col }}",
        "{{ row.col }}",
        "{{ args.x }}",
        "x",
        "/",
        "{{",
        "}}",
        MARK,
        " ",
    ]
)
authors = st.lists(author_pieces, min_size=1, max_size=8).map("".join)


def one_pass(author: str, params: dict[str, str]) -> str:
    """The meaning of a template: the author's text read once, each reference filled once (a
    field that is one reference, spaces around it aside, takes the value itself)."""
    whole = WHOLE.match(author)
    if whole:
        return params[whole.group(1)]
    both = re.compile(f"{TEMPLATE.pattern}|{DATA_TEMPLATE.pattern}")
    if DATA_TEMPLATE.fullmatch(author.strip()):
        author = author.strip()

    def value(match: re.Match) -> str:
        if match.group(1) is not None:
            return params[match.group(1)]
        node = DATA[match.group(2)]
        for key in [k for k in match.group(3).split(".") if k]:
            node = node[key]
        return node if isinstance(node, str) else json.dumps(node)

    return both.sub(value, author)


@fuzz_settings(300)
# Found by a long run (DP_FUZZ_EXAMPLES=10): the author's '{{' and a param's 'input}}' formed a
# data template across the param's edge, and a param's 'col...' extended the author's path.
@example(author="{{{{ params.p }}", p="input}}", q="")
@example(author="{{{{ params.q }}", p="", q="input.col{{}}")
@example(author="{{{{ params.p }}}}", p="input", q="")
@example(author="{{ params.p }}{{ params.q }}", p="{", q="{input}}")
@example(author="{{ params.p }}{{ input.col }} ", p="", q="")  # an empty param made it a whole value
@given(author=authors, p=texts, q=texts)
def test_params_never_form_a_data_template(author: str, p: str, q: str) -> None:
    """Whatever a caller puts in the params, a tool node's text is the author's template read once:
    upstream data appears only where the author wrote a data template."""
    params = {"p": p, "q": q}
    rendered = render({"field": author}, params, seal=False, inert_params=True)
    assert fill(rendered, DATA)["field"] == one_pass(author, params)


@fuzz_settings(100)
@given(p=texts)
def test_a_whole_value_param_is_never_read_as_a_data_template(p: str) -> None:
    rendered = render(
        {"url": "{{ params.p }}", "body": {"k": "{{ params.p }}"}}, {"p": p}, seal=False, inert_params=True
    )
    assert fill(rendered, DATA) == {"url": p, "body": {"k": p}}


def test_the_issue_shapes_stay_text() -> None:
    for p in ["{{ input }}", "{{ input.col }}", "{{ row.col }}", "{{ args.x }}", "{{", "{"]:
        for author in ["{{ params.p }}", "h: {{ params.p }}", "{{ params.p }} input.col }}"]:
            out = fill(render({"f": author}, {"p": p}, seal=False, inert_params=True), DATA)["f"]
            assert HIDDEN not in out and out == author.replace("{{ params.p }}", p)


def test_every_tool_node_type_declares_its_data_templates() -> None:
    """Tool and agent nodes are the ones that fill data templates (`fill`, the agent's prompt); a
    tool type added without `data_templates=True` would read launch params as templates."""
    from dp_assets.catalog import default_catalog

    catalog = default_catalog()
    tools = {name for name, node_type in catalog.items() if node_type.category == "tool"}
    assert tools and {name for name, node_type in catalog.items() if node_type.data_templates} == tools
