// What the canvas shows beyond the graph: errors on nodes and edges, the column schema along each
// edge, and node states of the run being followed. Pure functions of the state (tested).
import { Position, type Edge, type Node } from "@xyflow/react";
import { NODE_HEIGHT, NODE_WIDTH } from "./autolayout";
import type { CheckResult, RunState } from "./types";
import { joinRef, type DpNodeData } from "./mapping";

export type NodeState = "ok" | "error" | "succeeded" | "running" | "failed";

export function nodeErrors(check: CheckResult | null, id: string): string[] {
  return (check?.errors ?? []).filter((e) => e.node === id).map((e) => `${e.field}: ${e.message}`);
}

/** What the check says of a file source's columns: read from its files, or why they could not be. */
export function sourceColumnsNote(check: CheckResult | null, id: string): string | null {
  const note = (check?.notes ?? []).find((n) => n.node === id);
  if (note) return note.message;
  return check?.read_from_files?.includes(id) ? "Columns read from its files (not declared): checked downstream while you draw." : null;
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

/** Handle size in style.css (`.react-flow__handle`): the declared handles below sit where it draws them. */
const HANDLE_SIZE = 10;

function declaredHandles(ids: string[], type: "source" | "target"): NonNullable<Node["handles"]> {
  return ids.map((id, i) => ({
    id,
    type,
    position: type === "target" ? Position.Left : Position.Right,
    x: (type === "target" ? 0 : NODE_WIDTH) - HANDLE_SIZE / 2,
    y: ((i + 1) * NODE_HEIGHT) / (ids.length + 1) - HANDLE_SIZE / 2,
    width: HANDLE_SIZE,
    height: HANDLE_SIZE,
  }));
}

/**
 * The node with its size and handles declared (the size the layout gives every node). xyflow draws
 * every node once to measure it unless both are known; known, it draws only the nodes in view
 * (`onlyRenderVisibleElements`), which is what keeps a 300-node flow quick to open, pan and drag.
 */
export function sized(node: Node<DpNodeData>): Node<DpNodeData> {
  return {
    ...node,
    width: NODE_WIDTH,
    height: NODE_HEIGHT,
    handles: [...declaredHandles(node.data.inputHandles, "target"), ...declaredHandles(node.data.outputHandles, "source")],
  };
}

function sameNode(a: Node<DpNodeData>, b: Node<DpNodeData>): boolean {
  const x = a.data as Record<string, unknown>;
  const y = b.data as Record<string, unknown>;
  return (
    a.position.x === b.position.x &&
    a.position.y === b.position.y &&
    !!a.selected === !!b.selected &&
    Object.keys(x).length === Object.keys(y).length &&
    Object.keys(x).every((k) => x[k] === y[k] || JSON.stringify(x[k]) === JSON.stringify(y[k]))
  );
}

function sameEdge(a: Edge, b: Edge): boolean {
  return (
    a.id === b.id &&
    a.label === b.label &&
    a.className === b.className &&
    (a.data as { error?: unknown } | undefined)?.error === (b.data as { error?: unknown } | undefined)?.error
  );
}

/**
 * `next` with each element that did not change replaced by the one drawn before, so that an edit
 * re-renders only what it changed: xyflow skips a node or edge whose object is the same, and a
 * memoised node component skips its render.
 */
export function keepUnchanged<T extends Node<DpNodeData> | Edge>(previous: readonly T[], next: T[]): T[] {
  const before = new Map(previous.map((e) => [e.id, e]));
  const same = (a: T, b: T) => ("source" in a ? sameEdge(a as Edge, b as Edge) : sameNode(a as Node<DpNodeData>, b as Node<DpNodeData>));
  return next.map((e) => {
    const old = before.get(e.id);
    return old && same(old, e) ? old : e;
  });
}
