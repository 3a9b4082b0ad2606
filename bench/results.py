"""Result rows and where they are kept (``bench/results/latest.json``).

A row compares one measured value of the platform with its anchor (plain pandas, hand-written
Dagster, ...) measured in the same run, and says whether the correctness check passed first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATEST = RESULTS_DIR / "latest.json"


@dataclass
class Row:
    workload: str  # workload name, e.g. "overhead"
    case: str  # e.g. "10 nodes"
    measure: str  # what was measured, e.g. "run time" or "overhead per node"
    value: float | None  # the platform's figure (None: not measured, see notes)
    unit: str
    anchor: float | None = None  # the anchor's figure, same unit
    anchor_label: str = ""  # e.g. "plain pandas"
    target: str = ""  # e.g. "< 50 ms/node", "<= 1.3x"
    met: bool | None = None  # target met? None: no target for this row
    check: str = "n/a"  # correctness: "ok", "FAILED: ...", "n/a"
    notes: str = ""
    command: str = ""
    env: str = ""  # id of the environment record
    smoke: bool = False

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.anchor:
            return None
        return self.value / self.anchor


@dataclass
class WorkloadResult:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    text: str = ""  # extra markdown for the report (e.g. a table another tool printed)
    seconds: float = 0.0


@dataclass
class ResultSet:
    envs: dict[str, dict] = field(default_factory=dict)
    workloads: dict[str, WorkloadResult] = field(default_factory=dict)

    def add(self, result: WorkloadResult, env: dict) -> None:
        self.envs[env["id"]] = env
        self.workloads[result.name] = result

    def to_json(self) -> dict[str, Any]:
        return {
            "envs": self.envs,
            "workloads": {
                name: {**{k: v for k, v in asdict(w).items() if k != "rows"}, "rows": [asdict(r) for r in w.rows]}
                for name, w in self.workloads.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultSet:
        workloads = {}
        for name, item in data.get("workloads", {}).items():
            rows = [Row(**row) for row in item.get("rows", [])]
            workloads[name] = WorkloadResult(
                name=item["name"],
                title=item["title"],
                rows=rows,
                text=item.get("text", ""),
                seconds=item.get("seconds", 0.0),
            )
        return cls(envs=data.get("envs", {}), workloads=workloads)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> ResultSet:
        if not path.exists():
            return cls()
        return cls.from_json(json.loads(path.read_text()))
