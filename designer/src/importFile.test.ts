import { describe, expect, it } from "vitest";
import { adoptImported } from "./importFile";
import type { FlowDocument, NodeTypeInfo } from "./types";

const SOURCE: NodeTypeInfo = {
  name: "StaticData",
  category: "source",
  description: "",
  docs: "",
  inputs: { names: [], variadic: false, min_count: 0 },
  outputs: ["result"],
  side_effects: false,
  params_schema: {},
  example: null,
};
const STEP: NodeTypeInfo = { ...SOURCE, name: "FilterRows", inputs: { names: ["input"], variadic: false, min_count: 1 } };
const TYPES = { StaticData: SOURCE, FilterRows: STEP };

const IMPORTED: FlowDocument = {
  id: "exported_elsewhere",
  nodes: [
    { id: "a", type: "StaticData", params: { rows: [] } },
    { id: "b", type: "FilterRows", inputs: ["a"], params: { condition: "x > 1" } },
  ],
};

describe("a dropped file becomes this flow's document", () => {
  it("takes the flow's id and keeps every node and param as the server read them", () => {
    const doc = adoptImported({ ...IMPORTED, layout: { a: { x: 0, y: 0 }, b: { x: 300, y: 0 } } }, "mine", TYPES);
    expect(doc.id).toBe("mine");
    expect(doc.nodes).toEqual(IMPORTED.nodes);
    expect(doc.layout).toEqual({ a: { x: 0, y: 0 }, b: { x: 300, y: 0 } }); // the export's positions
  });

  it("lays out an import without positions, upstream left of downstream", () => {
    const doc = adoptImported({ ...IMPORTED, layout: {} }, "mine", TYPES);
    expect(Object.keys(doc.layout ?? {}).sort()).toEqual(["a", "b"]);
    expect(doc.layout!.a.x).toBeLessThan(doc.layout!.b.x);
  });
});
