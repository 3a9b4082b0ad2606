import { describe, expect, it } from "vitest";
import {
  addNode,
  connect,
  disconnect,
  joinRef,
  newNodeId,
  removeNode,
  specToGraph,
  splitRef,
  type TypeMap,
} from "./mapping";
import type { FlowDocument, NodeTypeInfo } from "./types";
import { parseSpecText, specText } from "./yamlSync";

function nodeType(name: string, names: string[], variadic = false, outputs = ["result"]): NodeTypeInfo {
  return {
    name,
    category: "transform",
    description: "",
    docs: "",
    inputs: { names, variadic, min_count: variadic ? 1 : 0 },
    outputs,
    side_effects: false,
    params_schema: {},
    example: { id: "x", type: name, params: { sample: 1 } },
  };
}

const TYPES: TypeMap = {
  StaticData: nodeType("StaticData", []),
  FilterRows: nodeType("FilterRows", ["input"]),
  JoinMerge: nodeType("JoinMerge", ["left", "right"]),
  Merge: nodeType("Merge", [], true),
  Switch: nodeType("Switch", ["input"], false, ["matched", "unmatched"]),
};

const DOC: FlowDocument = {
  id: "f",
  description: "kept as written",
  nodes: [
    { id: "a", type: "StaticData", params: {} },
    { id: "b", type: "StaticData", params: {} },
    { id: "j", type: "JoinMerge", inputs: { left: "a", right: "b" }, params: { on: "k" } },
    { id: "s", type: "Switch", inputs: "j" },
    { id: "m", type: "Merge", inputs: ["s.matched", "s.unmatched"] },
  ],
  layout: { a: { x: 1, y: 2 } },
};

describe("spec to canvas", () => {
  it("gives one node per spec node and one edge per input, with named handles", () => {
    const { nodes, edges } = specToGraph(DOC, TYPES);
    expect(nodes.map((n) => n.id)).toEqual(["a", "b", "j", "s", "m"]);
    expect(nodes[0].position).toEqual({ x: 1, y: 2 });
    expect(nodes.find((n) => n.id === "j")!.data.inputHandles).toEqual(["left", "right"]);
    expect(edges.map((e) => [e.source, e.sourceHandle, e.target, e.targetHandle])).toEqual([
      ["a", "result", "j", "left"],
      ["b", "result", "j", "right"],
      ["j", "result", "s", "input"],
      ["s", "matched", "m", "inputs"],
      ["s", "unmatched", "m", "inputs"],
    ]);
  });

  it("refs split and join back", () => {
    expect(splitRef("s.matched")).toEqual(["s", "matched"]);
    expect(joinRef("a", "result")).toBe("a");
    expect(joinRef("s", "matched")).toBe("s.matched");
  });
});

describe("canvas edits change only what they touch", () => {
  it("a disconnect and the same connect give back the document as written", () => {
    const edge = specToGraph(DOC, TYPES).edges[1]; // b -> j.right
    const cut = disconnect(DOC, TYPES, edge);
    expect(cut.nodes[2].inputs).toEqual({ left: "a" });
    expect(connect(cut, TYPES, edge)).toEqual(DOC);
  });

  it("a positional list for named inputs stays a list when complete", () => {
    const doc: FlowDocument = { id: "f", nodes: [{ id: "j", type: "JoinMerge", inputs: ["a"] }] };
    const joined = connect(doc, TYPES, { source: "b", sourceHandle: "result", target: "j", targetHandle: "right" });
    expect(joined.nodes[0].inputs).toEqual(["a", "b"]);
  });

  it("variadic inputs append, without duplicates, and keep their order", () => {
    const doc = connect(DOC, TYPES, { source: "a", sourceHandle: "result", target: "m", targetHandle: "inputs" });
    expect(doc.nodes[4].inputs).toEqual(["s.matched", "s.unmatched", "a"]);
    expect(connect(doc, TYPES, { source: "a", target: "m", targetHandle: "inputs" })).toEqual(doc);
  });

  it("removing a node removes the inputs that read it and its position", () => {
    const doc = removeNode(DOC, TYPES, "a");
    expect(doc.nodes.map((n) => n.id)).toEqual(["b", "j", "s", "m"]);
    expect(doc.nodes[1].inputs).toEqual({ right: "b" });
    expect(doc.layout).toEqual({});
  });

  it("an added node takes a fresh id, the type's example params and a position", () => {
    expect(newNodeId(DOC, "FilterRows")).toBe("filter_rows");
    const [doc, id] = addNode(DOC, TYPES.FilterRows, { x: 5, y: 6 });
    expect(id).toBe("filter_rows");
    expect(doc.nodes.at(-1)).toEqual({ id: "filter_rows", type: "FilterRows", params: { sample: 1 } });
    expect(doc.layout!.filter_rows).toEqual({ x: 5, y: 6 });
    expect(newNodeId(doc, "FilterRows")).toBe("filter_rows_2");
  });
});

describe("the code editor's text", () => {
  it("round-trips the spec and leaves the layout out", () => {
    const text = specText(DOC);
    expect(text).not.toContain("layout");
    const { spec } = parseSpecText(text);
    expect({ ...spec, layout: DOC.layout }).toEqual(DOC);
  });

  it("reports text that is not a mapping instead of changing the document", () => {
    expect(parseSpecText("- a\n- b").spec).toBeNull();
    expect(parseSpecText("id: [unclosed").error).toBeTruthy();
  });
});
