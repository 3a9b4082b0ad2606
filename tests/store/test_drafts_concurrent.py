"""Concurrent first saves of one flow's draft: every save succeeds and one draft is left (the
save is one upsert, not an update that finds no row followed by an insert that then collides)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from dp_resources.store import drafts

WRITERS = 8


def test_concurrent_first_saves_of_a_draft_all_succeed_and_leave_one(store):
    start = threading.Barrier(WRITERS)

    def save(n: int) -> drafts.Draft:
        start.wait()
        return drafts.put_draft(store, "racing", {"id": "racing", "n": n}, layout={"a": {"x": n}}, author=f"u{n}")

    with ThreadPoolExecutor(WRITERS) as pool:
        saved = list(pool.map(save, range(WRITERS)))
    assert len(saved) == WRITERS
    kept = drafts.get_draft(store, "racing")
    assert kept is not None
    assert (kept.spec["n"], kept.author) in {(d.spec["n"], d.author) for d in saved}
    assert kept.layout == {"a": {"x": kept.spec["n"]}}
    assert set(drafts.draft_flow_ids(store)) == {"racing"}
