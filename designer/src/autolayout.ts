// Auto-layout of a flow (an imported spec has no positions): dagre, left to right.
import dagre from "@dagrejs/dagre";
import type { FlowDocument, Position } from "./types";
import { specToGraph, type TypeMap } from "./mapping";

export const NODE_WIDTH = 180;
export const NODE_HEIGHT = 70;

export function autoLayout(doc: FlowDocument, types: TypeMap): Record<string, Position> {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 80 });
  graph.setDefaultEdgeLabel(() => ({}));
  const { nodes, edges } = specToGraph(doc, types);
  for (const node of nodes) graph.setNode(node.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const edge of edges) if (graph.hasNode(edge.source)) graph.setEdge(edge.source, edge.target);
  dagre.layout(graph);
  const positions: Record<string, Position> = {};
  for (const node of nodes) {
    const placed = graph.node(node.id);
    positions[node.id] = { x: Math.round(placed.x - NODE_WIDTH / 2), y: Math.round(placed.y - NODE_HEIGHT / 2) };
  }
  return positions;
}
