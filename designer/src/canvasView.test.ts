import { describe, expect, it } from "vitest";
import { NODE_HEIGHT, NODE_WIDTH } from "./autolayout";
import { decorateEdges, decorateNodes, keepUnchanged, sized, sourceColumnsNote } from "./canvasView";
import { moveNodes, specToGraph, type TypeMap } from "./mapping";
import type { CheckResult, FlowDocument, NodeTypeInfo } from "./types";

function nodeType(name: string, names: string[], outputs = ["result"]): NodeTypeInfo {
  return {
    name,
    category: "transform",
    description: "",
    docs: "",
    inputs: { names, variadic: false, min_count: 0 },
    outputs,
    side_effects: false,
    params_schema: {},
    example: null,
  };
}

const TYPES: TypeMap = {
  StaticData: nodeType("StaticData", []),
  FilterRows: nodeType("FilterRows", ["input"]),
  JoinMerge: nodeType("JoinMerge", ["left", "right"]),
  Switch: nodeType("Switch", ["input"], ["matched", "unmatched"]),
};

const DOC: FlowDocument = {
  id: "f",
  nodes: [
    { id: "a", type: "StaticData" },
    { id: "b", type: "StaticData" },
    { id: "j", type: "JoinMerge", inputs: { left: "a", right: "b" } },
    { id: "s", type: "Switch", inputs: "j" },
    { id: "f1", type: "FilterRows", inputs: ["s.matched"] },
  ],
  layout: { a: { x: 0, y: 0 }, b: { x: 0, y: 100 }, j: { x: 200, y: 50 }, s: { x: 400, y: 50 }, f1: { x: 600, y: 0 } },
};

const VALID: CheckResult = { valid: true, version: "v1", errors: [], schemas: { a: { k: "int64" } } };

function drawn(doc: FlowDocument, check: CheckResult | null) {
  const { nodes, edges } = specToGraph(doc, TYPES);
  return { nodes: decorateNodes(nodes, check, null).map(sized), edges: decorateEdges(edges, check) };
}

describe("a node's declared size and handles", () => {
  it("is the layout's size, one handle per named input on the left and per output on the right", () => {
    const j = drawn(DOC, null).nodes.find((n) => n.id === "j")!;
    expect([j.width, j.height]).toEqual([NODE_WIDTH, NODE_HEIGHT]);
    const targets = j.handles!.filter((h) => h.type === "target");
    expect(targets.map((h) => h.id)).toEqual(["left", "right"]);
    // Spread evenly down the left edge, as DpNode draws them (top: 33% and 67%), centred on it.
    expect(targets.map((h) => h.y + h.height! / 2)).toEqual([NODE_HEIGHT / 3, (2 * NODE_HEIGHT) / 3]);
    expect(targets.every((h) => h.x + h.width! / 2 === 0)).toBe(true);
    const s = drawn(DOC, null).nodes.find((n) => n.id === "s")!;
    const sources = s.handles!.filter((h) => h.type === "source");
    expect(sources.map((h) => h.id)).toEqual(["matched", "unmatched"]);
    expect(sources.every((h) => h.x + h.width! / 2 === NODE_WIDTH)).toBe(true);
  });
});

describe("keepUnchanged", () => {
  it("keeps the objects of nodes and edges an edit did not change, and takes the changed ones", () => {
    const before = drawn(DOC, VALID);
    const after = drawn(moveNodes(DOC, { j: { x: 210, y: 50 } }), VALID);
    const nodes = keepUnchanged(before.nodes, after.nodes);
    expect(nodes.map((n, i) => n === before.nodes[i])).toEqual([true, true, false, true, true]);
    expect(nodes[2].position).toEqual({ x: 210, y: 50 });
    const edges = keepUnchanged(before.edges, after.edges);
    expect(edges.every((e, i) => e === before.edges[i])).toBe(true);
  });

  it("takes a node whose errors or state changed, and an edge whose label or error changed", () => {
    const before = drawn(DOC, VALID);
    const broken: CheckResult = {
      valid: false,
      version: null,
      schemas: {},
      errors: [
        {
          node: "f1",
          field: "params.condition",
          message: "unknown column 'x' (input 's.matched' -> 'f1')",
          edges: [{ source: "s", target: "f1" }],
          text: "",
        },
      ],
    };
    const after = drawn(DOC, broken);
    const nodes = keepUnchanged(before.nodes, after.nodes);
    expect(nodes.map((n, i) => n === before.nodes[i])).toEqual([true, true, true, true, false]);
    expect(nodes[4].data.errors).toEqual(["params.condition: unknown column 'x' (input 's.matched' -> 'f1')"]);
    const edges = keepUnchanged(before.edges, after.edges);
    // a -> j lost its schema label (the check has no schemas), s -> f1 now shows the error.
    expect(edges.map((e) => e === before.edges[before.edges.findIndex((b) => b.id === e.id)])).toEqual(
      after.edges.map((e) => !["a", "s"].includes(e.source)),
    );
    expect(edges.find((e) => e.source === "s")!.className).toBe("edge-error");
  });

  it("takes a node that became selected", () => {
    const before = drawn(DOC, VALID).nodes;
    const after = before.map((n) => ({ ...n, selected: n.id === "b" }));
    expect(keepUnchanged(before, after).map((n, i) => n === before[i])).toEqual([true, false, true, true, true]);
  });
});

describe("a file source's columns note", () => {
  it("says why the columns could not be read, or that they were read, or nothing", () => {
    const check: CheckResult = {
      ...VALID,
      read_from_files: ["orders"],
      notes: [{ node: "later", message: "columns not read from its files: no file 'later.parquet'" }],
    };
    expect(sourceColumnsNote(check, "later")).toContain("no file 'later.parquet'");
    expect(sourceColumnsNote(check, "orders")).toContain("read from its files");
    expect(sourceColumnsNote(check, "a")).toBeNull();
    expect(sourceColumnsNote(VALID, "orders")).toBeNull();
    expect(sourceColumnsNote(null, "orders")).toBeNull();
  });
});
