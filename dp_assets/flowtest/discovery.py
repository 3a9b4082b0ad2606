"""Which spec a ``dp test`` argument means, and which test files belong to it.

Test files sit in a ``tests/`` folder beside the spec (the code location's import skips folders
named ``tests``, ``data``, ``fixtures`` and ``golden``) and name their flow with ``flow:``, or
by their file name when they do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dp_assets.publishing import spec_files
from dp_assets.spec.loading import SpecLoadError, load_yaml, read_spec_file

TEST_SUFFIXES = (".yaml", ".yml")


class NothingToTest(LookupError):
    """The argument names no spec, or a spec without test files."""


@dataclass(frozen=True)
class Target:
    flow_id: str
    spec: Path
    tests: tuple[Path, ...]


def _flow_id(spec: Path) -> str | None:
    try:
        value = read_spec_file(spec).get("id")
    except SpecLoadError:
        return None
    return value if isinstance(value, str) else None


def _tested_flow(path: Path) -> str | None:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - an unreadable file is reported when it is run
        return path.stem
    if isinstance(data, dict) and isinstance(data.get("flow"), str):
        return data["flow"]
    return path.stem


def test_files(spec: Path, flow_id: str) -> tuple[Path, ...]:
    folder = spec.parent / "tests"
    if not folder.is_dir():
        return ()
    found = [p for p in sorted(folder.iterdir()) if p.suffix in TEST_SUFFIXES and p.is_file()]
    return tuple(p for p in found if _tested_flow(p) == flow_id)


def find_targets(flow: str | None, search: Path) -> list[Target]:
    """``flow`` is a spec file, a folder, a flow id under ``search``, or None (every tested flow)."""
    candidate = Path(flow) if flow else None
    if candidate is not None and candidate.is_file():
        flow_id = _flow_id(candidate)
        if flow_id is None:
            raise NothingToTest(f"{candidate} is not a readable flow spec with an `id`")
        targets = [Target(flow_id, candidate, test_files(candidate, flow_id))]
    else:
        folder = candidate if candidate is not None and candidate.is_dir() else search
        if not folder.is_dir():
            raise NothingToTest(f"no folder {folder} to look for flows in (use --path)")
        specs = [(spec, _flow_id(spec)) for spec in spec_files(folder)]
        targets = [Target(fid, spec, test_files(spec, fid)) for spec, fid in specs if fid]
        if flow and not (candidate is not None and candidate.is_dir()):
            targets = [t for t in targets if t.flow_id == flow]
            if not targets:
                raise NothingToTest(f"no flow '{flow}' in {folder} (use --path, or give the spec file)")
        else:
            targets = [t for t in targets if t.tests]
    if flow and not any(t.tests for t in targets):
        where = ", ".join(str(t.spec.parent / "tests") for t in targets)
        raise NothingToTest(f"flow '{targets[0].flow_id}' has no test files (looked in {where})")
    if not targets:
        raise NothingToTest(f"no flow under {search} has test files in a tests/ folder beside it")
    return targets


test_files.__test__ = False  # type: ignore[attr-defined]
