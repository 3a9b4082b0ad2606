"""Previews kept as test cases at the same time (two editors, two tabs of one flow) all land in
the flow's test file, each name once.

``append_case`` reads the test file, appends, checks and replaces it. Eight threads doing so at
once used to keep 8 cases of 40 and answer every caller as written; two cases of one name could
both be added. Real files in a temporary flows folder; the file is read back with ``dp test``'s
own loader.
"""

from __future__ import annotations

import threading
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from dp_assets.flowtest.runner import load_test_file
from dp_designer.case_files import append_case, test_file_for
from dp_designer.http import ApiError
from tests.fuzzing import fuzz_settings


def _case(name: str) -> dict:
    return {"name": name, "fixtures": {"orders": {"rows": [{"a": 1}]}}, "expect": {"orders": {"rows": 1}}}


@fuzz_settings(10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(st.sampled_from([f"case {i}" for i in range(12)]), min_size=2, max_size=12), existing=st.booleans()
)
def test_concurrent_appends_keep_every_case_and_each_name_once(tmp_path_factory, names, existing):
    """Any names appended at once (some the same): every call that answered "written" has its
    case in the file, every name is there once, and a call refused is a 409 for a name taken."""
    root: Path = tmp_path_factory.mktemp("flows")
    spec = root / "shop.yaml"
    spec.write_text("id: shop\n")
    if existing:
        append_case(spec, "shop", _case("hand written"))
    written: list[str] = []
    refused: list[ApiError] = []
    barrier = threading.Barrier(len(names))

    def keep(name: str) -> None:
        barrier.wait()
        try:
            append_case(spec, "shop", _case(name))
            written.append(name)
        except ApiError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=keep, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = [case.name for case in load_test_file(test_file_for(spec)).cases]
    assert sorted(kept) == sorted({*names, *(["hand written"] if existing else [])})
    assert sorted(written) == sorted(set(names))
    assert len(refused) == len(names) - len(set(names))
    assert all(exc.status == 409 and "already" in exc.message for exc in refused)
    assert sorted(p.name for p in (root / "tests").iterdir()) == ["shop.yaml"]  # no temporary or lock file
