"""``{{ partition.key }}`` (and ``.start``/``.end``) filled from a run's partition key, which a
user typed (``dp partitions add``, a static key in a spec). Whatever an accepted key holds, it
goes in as plain text: it never becomes a secret reference, a flow param, another partition
reference or (in a node that fills data templates itself) a template of its own."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dp_assets.spec import inert, templates
from dp_assets.spec.partitions import partition_key_problem
from dp_resources.secrets import SEALED_REFERENCE

PIECES = [
    "${env:DP_SECRET_TOKEN}",
    "${env:HOME}",
    "{{ params.p }}",
    "{{ partition.key }}",
    "{{ col }}",
    "{{",
    "}}",
    inert.MARK,
    "'; DROP TABLE t; --",
    "%s",
    "é",
]
keys = st.lists(st.sampled_from(PIECES) | st.text(max_size=8), min_size=1, max_size=6).map("".join)

AUTHOR = {
    "whole": "{{ partition.key }}",
    "inside": "day={{partition.key}} and p={{ params.p }}",
    "window": ["{{ partition.start }}", "{{ partition.end }}"],
    "secret": "${env:DP_SECRET_TOKEN}",
}


@settings(max_examples=300, deadline=None)
@given(key=keys)
def test_a_partition_key_goes_into_params_as_the_text_it_is(key):
    if partition_key_problem(key) is not None:
        return  # refused where keys are given (tests/partitions/test_partition_keys.py)
    values = {"p": "P", "partition.key": key, "partition.start": key, "partition.end": key}
    rendered = templates.render(AUTHOR, values)
    assert rendered["whole"] == key
    assert rendered["inside"] == f"day={key} and p=P"
    assert rendered["window"] == [key, key]
    # only the author's own reference is sealed; none comes from the key
    sealed = [SEALED_REFERENCE.findall(text) for text in (rendered["whole"], rendered["inside"])]
    assert sealed == [[], []]
    assert SEALED_REFERENCE.fullmatch(rendered["secret"])
    # a node filling data templates sees no template opened by the key, and gets it back whole
    filled = templates.render(AUTHOR, values, inert_params=True)
    assert "{{" not in filled["whole"].replace(inert.MARK, "")
    assert inert.restore(filled) == rendered
