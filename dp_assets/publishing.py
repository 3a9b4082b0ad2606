"""Validate-then-store: the only way specs enter the flow store.

Used by ``dp publish`` and by the code location when it imports ``DP_FLOWS_DIR``; a bad spec is
reported with every error and never stored, and it never stops the other files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dp_assets.catalog.base import Catalog
from dp_assets.spec.loading import SPEC_SUFFIXES, SpecLoadError, read_spec_file
from dp_assets.spec.validation import FlowValidationError, ValidatedFlow, validate_spec
from dp_resources.store import FlowStore, SaveResult

log = logging.getLogger("dp.publishing")


@dataclass
class ImportReport:
    published: list[SaveResult] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # file or flow -> error text


def publish_spec(
    store: FlowStore, data: Mapping[str, Any], catalog: Catalog, *, workspace: str = "default",
    message: str = "", publish: bool = True, check_compiles: bool = True,
) -> tuple[ValidatedFlow, SaveResult]:
    validated = validate_spec(data, catalog, check_compiles=check_compiles)
    result = store.save(validated.id, validated.version, validated.raw, workspace=workspace,
                        message=message, publish=publish)
    return validated, result


# Folders beside specs that hold sample data, flow tests or fixtures, not specs.
NOT_SPEC_FOLDERS = frozenset({"data", "tests", "fixtures", "golden"})


def spec_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix in SPEC_SUFFIXES and p.is_file() and not p.name.startswith(".")
        and not NOT_SPEC_FOLDERS & set(p.relative_to(folder).parts[:-1])
    )


def import_folder(store: FlowStore, folder: Path, catalog: Catalog) -> ImportReport:
    """Publish every valid spec file of a folder (idempotent); report the others."""
    report = ImportReport()
    for path in spec_files(folder):
        try:
            # The code location compiles every published flow right after this import and
            # reports the ones that fail, so compiling each file here too would be twice the work.
            _, result = publish_spec(store, read_spec_file(path), catalog,
                                     message=f"imported from {path.name}", check_compiles=False)
            report.published.append(result)
        except (SpecLoadError, FlowValidationError) as exc:
            report.problems[str(path)] = str(exc)
            log.error("flow spec %s was not published:\n%s", path, exc)
        except Exception as exc:  # noqa: BLE001 - one file must never stop the others importing
            report.problems[str(path)] = f"not published: {type(exc).__name__}: {exc}"
            log.exception("flow spec %s was not published", path)
    return report
