"""Which executor runs a flow: the deployment's (``DP_EXECUTOR``) unless the spec says otherwise.

``policies.executor`` in a spec overrides the deployment for that flow (a heavy fan-out flow on
Celery while the rest stay in-process, or the reverse). Each executor definition is built once
per code location load and shared by the flows that use it.

A Celery step is killed at the deployment's time limit (``dp_assets.compiler.celery``), so a
flow whose declared node timeouts cannot fit in one step is refused here, at load, with the node
named, rather than killed mid-run later.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from dp_assets.spec.validation import ValidatedFlow
from dp_settings import PlatformSettings, current, fingerprint

EXECUTOR_ENV = "DP_EXECUTOR"
CHOICES = ("in_process", "multiprocess", "celery")


class FlowExecutors:
    """The executor definitions of one code location load, by name.

    ``settings`` are the location's (default: the ones its build made current,
    :func:`dp_settings.using`).
    """

    def __init__(self, default_name: str | None = None, settings: PlatformSettings | None = None) -> None:
        self.settings = settings or current()
        name = default_name or self.settings.default_executor()
        if name not in CHOICES:
            raise ValueError(f"{EXECUTOR_ENV}={name!r}: choose one of {', '.join(CHOICES)}")
        self.default_name = name
        #: The settings this load sees: compiled flows are reused only under the same ones.
        self.settings_key = fingerprint(self.settings)
        self._built: dict[str, dg.ExecutorDefinition] = {}
        self._celery: Any = None

    @property
    def default(self) -> dg.ExecutorDefinition:
        return self.named(self.default_name)

    def named(self, name: str) -> dg.ExecutorDefinition:
        if name not in self._built:
            if name == "multiprocess":
                self._built[name] = dg.multiprocess_executor
            elif name == "celery":
                self._built[name] = self.celery_deployment().executor()
            else:
                self._built[name] = dg.in_process_executor
        return self._built[name]

    def celery_deployment(self) -> Any:
        """The deployment's Celery settings (``$DP_CELERY_CONFIG``), read once."""
        if self._celery is None:
            from dp_assets.compiler.celery_deployment import celery_deployment

            self._celery = celery_deployment(self.settings.celery.config)
        return self._celery

    def for_flow(self, validated: ValidatedFlow) -> dg.ExecutorDefinition:
        """The flow's executor; raises ``ValueError`` when its node timeouts cannot fit Celery's."""
        name = validated.flow.policies.executor or self.default_name
        if name == "celery":
            problems = celery_step_problems(validated, self.celery_deployment().longest_step_seconds)
            if problems:
                raise ValueError("; ".join(problems))
        return self.named(name)


def celery_step_problems(validated: ValidatedFlow, longest_step_seconds: float) -> list[str]:
    """Steps whose declared node timeouts (times their attempts) exceed the Celery step bound.

    With ``steps: flow`` the whole flow is one step, so its nodes' timeouts add up; with
    ``steps: node`` each node is checked alone. Nodes without ``timeout_seconds`` are bounded
    only by the Celery time limit itself.
    """
    flow = validated.flow
    budgets: list[tuple[str, float]] = []
    for node in flow.nodes:  # type: ignore[attr-defined]
        if not node.timeout_seconds:
            continue
        retry = node.retry or flow.policies.retry
        attempts = 1 + (retry.max_retries if retry else 0)
        budgets.append((node.id, float(node.timeout_seconds) * attempts))
    groups = [budgets] if flow.policies.steps == "flow" else [[b] for b in budgets]
    problems = []
    for group in groups:
        total = sum(seconds for _, seconds in group)
        if total > longest_step_seconds:
            nodes = ", ".join(f"'{node_id}' ({seconds:g} s)" for node_id, seconds in group)
            problems.append(
                f"flow '{flow.id}' runs on Celery, whose steps are stopped after "
                f"{longest_step_seconds:g} s, but node(s) {nodes} may take {total:g} s in one "
                "step (timeout_seconds x attempts): lower their timeout_seconds, use "
                "`policies: {steps: node}`, or raise the deployment's bound "
                "(render-worker-yaml --longest-step-seconds, docs/deploy.md)"
            )
    return problems
