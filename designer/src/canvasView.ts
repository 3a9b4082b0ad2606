// What the canvas shows beyond the graph: errors on nodes and edges, the column schema along each
// edge, and node states of the run being followed. Pure functions of the state (tested).
import type { Edge, Node } from "@xyflow/react";
import type { CheckResult, RunState } from "./types";
import { joinRef, type DpNodeData } from "./mapping";

export type NodeState = "ok" | "error" | "succeeded" | "running" | "failed";

export function nodeErrors(check: CheckResult | null, id: string): string[] {
  return (check?.errors ?? []).filter((e) => e.node === id).map((e) => `${e.field}: ${e.message}`);
}

export function nodeState(check: CheckResult | null, run: RunState | null, id: string): NodeState {
  if (run) {
    if (run.succeeded.includes(id)) return "succeeded";
    if (run.status === "FAILURE" || run.status === "CANCELED") return "failed";
    if (run.status !== "SUCCESS") return "running";
  }
  return nodeErrors(check, id).length ? "error" : "ok";
}

export function decorateNodes(nodes: Node<DpNodeData>[], check: CheckResult | null, run: RunState | null) {
  return nodes.map((n) => ({
    ...n,
    data: { ...n.data, state: nodeState(check, run, n.id), errors: nodeErrors(check, n.id) },
  }));
}

export function edgeError(check: CheckResult | null, edge: Edge): string | null {
  const found = (check?.errors ?? []).find((e) =>
    (e.edges ?? []).some((x) => x.source === edge.source && x.target === edge.target),
  );
  return found ? found.message : null;
}

/** Columns known at the edge's source output, as "name: type, ..." (shortened). */
export function edgeSchema(check: CheckResult | null, edge: Edge): string | null {
  const schema = check?.schemas[joinRef(edge.source, edge.sourceHandle)];
  if (!schema) return null;
  const text = Object.entries(schema)
    .map(([name, type]) => `${name}: ${type}`)
    .join(", ");
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

export function decorateEdges(edges: Edge[], check: CheckResult | null): Edge[] {
  return edges.map((e) => {
    const error = edgeError(check, e);
    // The message names the edge it was found on ("... (input 'a' -> 'b')"): on the edge, that is said.
    const label = (error ? error.split(" (input ")[0] : edgeSchema(check, e)) ?? undefined;
    return {
      ...e,
      label,
      className: error ? "edge-error" : undefined,
      data: { error },
      style: error ? { stroke: "#d33", strokeWidth: 2 } : undefined,
      labelStyle: error ? { fill: "#d33" } : { fill: "#555" },
    };
  });
}
