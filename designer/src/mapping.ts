// The spec <-> canvas mapping. The flow document is the one source of truth: the canvas is
// derived from it (specToGraph), and every canvas edit is a small change to the document
// (connect, disconnect, add, remove, move). Nothing is regenerated from the canvas, so a
// hand-written spec opened and saved unchanged keeps every key as written, and its version.
import type { Edge, Node } from "@xyflow/react";
import type { FlowDocument, NodeSpec, NodeTypeInfo, Position } from "./types";

export type TypeMap = Record<string, NodeTypeInfo>;

export const DEFAULT_OUTPUT = "result";
/** The one target handle of a node type that takes any number of inputs. */
export const VARIADIC_HANDLE = "inputs";

export interface DpNodeData extends Record<string, unknown> {
  nodeType: string;
  label: string;
  inputHandles: string[];
  outputHandles: string[];
}

export function splitRef(ref: string): [string, string] {
  const dot = ref.indexOf(".");
  return dot < 0 ? [ref, DEFAULT_OUTPUT] : [ref.slice(0, dot), ref.slice(dot + 1)];
}

export function joinRef(source: string, output: string | null | undefined): string {
  return !output || output === DEFAULT_OUTPUT ? source : `${source}.${output}`;
}

export function inputHandles(info: NodeTypeInfo | undefined): string[] {
  if (!info) return [VARIADIC_HANDLE];
  if (info.inputs.variadic) return [VARIADIC_HANDLE];
  return info.inputs.names;
}

/** (handle, ref) pairs of a node's inputs as written: a list is bound to the type's names in order. */
export function boundInputs(node: NodeSpec, info: NodeTypeInfo | undefined): [string, string][] {
  const inputs = typeof node.inputs === "string" ? [node.inputs] : node.inputs;
  if (!inputs) return [];
  if (Array.isArray(inputs)) {
    const names = info && !info.inputs.variadic ? info.inputs.names : [];
    return inputs
      .filter((ref): ref is string => typeof ref === "string")
      .map((ref, i) => [names[i] ?? VARIADIC_HANDLE, ref]);
  }
  return Object.entries(inputs).filter((e): e is [string, string] => typeof e[1] === "string");
}

export function edgeId(source: string, sourceHandle: string, target: string, targetHandle: string): string {
  return `${source}:${sourceHandle}->${target}:${targetHandle}`;
}

export function specToGraph(doc: FlowDocument, types: TypeMap): { nodes: Node<DpNodeData>[]; edges: Edge[] } {
  const layout = doc.layout ?? {};
  const specNodes = Array.isArray(doc.nodes) ? doc.nodes : [];
  const nodes: Node<DpNodeData>[] = specNodes.map((node, i) => {
    const info = types[node.type];
    return {
      id: String(node.id),
      type: "dp",
      position: layout[node.id] ?? { x: 40 + (i % 5) * 220, y: 40 + Math.floor(i / 5) * 140 },
      data: {
        nodeType: node.type,
        label: String(node.id),
        inputHandles: inputHandles(info),
        outputHandles: info ? info.outputs : [DEFAULT_OUTPUT],
      },
    };
  });
  const edges: Edge[] = [];
  for (const node of specNodes) {
    for (const [handle, ref] of boundInputs(node, types[node.type])) {
      const [source, output] = splitRef(ref);
      edges.push({
        id: edgeId(source, output, String(node.id), handle),
        source,
        sourceHandle: output,
        target: String(node.id),
        targetHandle: handle,
      });
    }
  }
  return { nodes, edges };
}

function replaceNode(doc: FlowDocument, id: string, change: (node: NodeSpec) => NodeSpec): FlowDocument {
  return { ...doc, nodes: doc.nodes.map((n) => (n.id === id ? change(n) : n)) };
}

/** Connect `source.output` to `target`'s input `handle`, in the form the target's inputs are written. */
export function connect(
  doc: FlowDocument,
  types: TypeMap,
  edge: { source: string; sourceHandle?: string | null; target: string; targetHandle?: string | null },
): FlowDocument {
  const ref = joinRef(edge.source, edge.sourceHandle);
  return replaceNode(doc, edge.target, (node) => {
    const info = types[node.type];
    const handle = edge.targetHandle ?? VARIADIC_HANDLE;
    const current = typeof node.inputs === "string" ? [node.inputs] : node.inputs;
    if (!info || info.inputs.variadic) {
      const list = Array.isArray(current) ? current : Object.values(current ?? {});
      return list.includes(ref) ? node : { ...node, inputs: [...list, ref] };
    }
    const names = info.inputs.names;
    if (names.length === 1) return { ...node, inputs: [ref] };
    if (Array.isArray(current)) {
      // A positional list stays a list while it names every input in order; else it becomes a mapping.
      const named: Record<string, string> = {};
      current.forEach((r, i) => names[i] && (named[names[i]] = r));
      named[handle] = ref;
      const full = names.every((n) => named[n] !== undefined);
      return { ...node, inputs: full ? names.map((n) => named[n]) : named };
    }
    return { ...node, inputs: { ...(current ?? {}), [handle]: ref } };
  });
}

/** Remove the input that an edge stands for. */
export function disconnect(doc: FlowDocument, types: TypeMap, edge: Edge): FlowDocument {
  const ref = joinRef(edge.source, edge.sourceHandle);
  return replaceNode(doc, edge.target, (node) => {
    const bound = boundInputs(node, types[node.type]);
    const kept = bound.filter(([h, r]) => !(r === ref && h === (edge.targetHandle ?? VARIADIC_HANDLE)));
    const { inputs: _dropped, ...rest } = node;
    if (kept.length === 0) return rest as NodeSpec;
    const asList = Array.isArray(node.inputs) || typeof node.inputs === "string";
    const info = types[node.type];
    const positional = asList && (!info || info.inputs.variadic || info.inputs.names.length === 1);
    return { ...rest, inputs: positional ? kept.map(([, r]) => r) : Object.fromEntries(kept) } as NodeSpec;
  });
}

/** A fresh node id from the type's name: `filter_rows`, `filter_rows_2`... */
export function newNodeId(doc: FlowDocument, type: string): string {
  const base = type.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase().replace(/[^a-z0-9_]/g, "_");
  const taken = new Set(doc.nodes.map((n) => n.id));
  let id = base;
  for (let i = 2; taken.has(id); i++) id = `${base}_${i}`;
  return id;
}

export function addNode(doc: FlowDocument, info: NodeTypeInfo, position: Position): [FlowDocument, string] {
  const id = newNodeId(doc, info.name);
  const params = info.example?.params ? structuredClone(info.example.params) : {};
  const node: NodeSpec = { id, type: info.name, params };
  return [{ ...doc, nodes: [...doc.nodes, node], layout: { ...(doc.layout ?? {}), [id]: position } }, id];
}

export function removeNode(doc: FlowDocument, types: TypeMap, id: string): FlowDocument {
  let next: FlowDocument = { ...doc, nodes: doc.nodes.filter((n) => n.id !== id) };
  for (const edge of specToGraph(next, types).edges.filter((e) => e.source === id)) {
    next = disconnect(next, types, edge);
  }
  const { [id]: _gone, ...layout } = doc.layout ?? {};
  return { ...next, layout };
}

export function moveNodes(doc: FlowDocument, positions: Record<string, Position>): FlowDocument {
  return { ...doc, layout: { ...(doc.layout ?? {}), ...positions } };
}

export function setParams(doc: FlowDocument, id: string, params: Record<string, unknown>): FlowDocument {
  return replaceNode(doc, id, (node) => ({ ...node, params: params as NodeSpec["params"] }));
}

/** The spec without the designer's layout: what the code editor shows and what is versioned. */
export function specOf(doc: FlowDocument): Record<string, unknown> {
  const { layout: _layout, ...spec } = doc;
  return spec;
}
