"""What spec validation reports: one problem (:class:`SpecError`, naming flow, node and field),
and the error that lists every problem of a flow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecError:
    flow: str
    node: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"flow '{self.flow}'"
        if self.node is not None:
            where += f", node '{self.node}'"
        return f"{where}, field '{self.field}': {self.message}"


class FlowValidationError(ValueError):
    def __init__(self, flow_id: str, errors: list[SpecError]):
        self.flow_id = flow_id
        self.errors = errors
        super().__init__(
            f"flow '{flow_id}' is invalid ({len(errors)} error(s)):\n" + "\n".join(f"  - {e}" for e in errors)
        )
