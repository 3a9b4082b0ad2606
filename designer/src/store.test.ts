import { describe, expect, it } from "vitest";
import { decorateEdges, nodeState } from "./canvasView";
import { paramErrors } from "./formErrors";
import { createDesignerStore } from "./store";
import type { CheckResult, FlowDocument } from "./types";

const EMPTY: FlowDocument = { id: "f", nodes: [] };
const addNode = (id: string) => (d: FlowDocument) => ({ ...d, nodes: [...d.nodes, { id, type: "StaticData" }] });

describe("undo and redo", () => {
  it("walk back and forth through recorded edits; a new edit clears the redo", () => {
    const store = createDesignerStore();
    store.getState().open("f", EMPTY, null);
    store.getState().edit(addNode("a"));
    store.getState().edit(addNode("b"));
    store.getState().undo();
    expect(store.getState().doc!.nodes.map((n) => n.id)).toEqual(["a"]);
    store.getState().redo();
    expect(store.getState().doc!.nodes.map((n) => n.id)).toEqual(["a", "b"]);
    store.getState().undo();
    store.getState().edit(addNode("c"));
    expect(store.getState().future).toEqual([]);
    store.getState().undo();
    store.getState().undo();
    expect(store.getState().doc).toEqual(EMPTY);
    store.getState().undo(); // nothing left: no change
    expect(store.getState().doc).toEqual(EMPTY);
  });

  it("an unrecorded edit (a drag in progress) is not an undo step; every edit bumps the revision", () => {
    const store = createDesignerStore();
    store.getState().open("f", EMPTY, null);
    const before = store.getState().revision;
    store.getState().edit((d) => ({ ...d, layout: { a: { x: 1, y: 1 } } }), { record: false });
    expect(store.getState().past).toEqual([]);
    expect(store.getState().revision).toBe(before + 1);
    expect(store.getState().saveState).toBe("unsaved");
  });
});

const CHECK: CheckResult = {
  valid: false,
  version: null,
  errors: [
    {
      node: "total",
      field: "params.agg.total",
      message: "column 'amont' is not in the input",
      edges: [{ source: "orders", target: "total" }],
    },
  ],
  schemas: { orders: { region: "string", amount: "float" } },
};

describe("errors and schemas on the canvas", () => {
  it("a column error is shown on its edge and on the form field it names", () => {
    const [bad, good] = decorateEdges(
      [
        { id: "1", source: "orders", target: "total", sourceHandle: "result" },
        { id: "2", source: "orders", target: "other", sourceHandle: "result" },
      ],
      CHECK,
    );
    expect(bad.label).toContain("amont");
    expect(bad.className).toBe("edge-error");
    expect(good.label).toBe("region: string, amount: float");
    expect(paramErrors(CHECK, "total")).toEqual({ agg: { total: { __errors: ["column 'amont' is not in the input"] } } });
  });

  it("node colours follow the run", () => {
    const run = { run_id: "r", status: "STARTED", succeeded: ["orders"], links: {} };
    expect(nodeState(null, run, "orders")).toBe("succeeded");
    expect(nodeState(null, run, "total")).toBe("running");
    expect(nodeState(null, { ...run, status: "FAILURE" }, "total")).toBe("failed");
    expect(nodeState(CHECK, null, "total")).toBe("error");
  });
});

describe("autosave", () => {
  it("saves after an edit, not after opening a flow", async () => {
    const { startAutosave, SAVE_DELAY_MS } = await import("./sync");
    const store = createDesignerStore();
    const saved: number[] = [];
    const stop = startAutosave(store);
    const original = globalThis.fetch;
    globalThis.fetch = (async () => {
      saved.push(store.getState().revision);
      return new Response(JSON.stringify({ saved_at: new Date().toISOString(), check: null }), { status: 200 });
    }) as typeof fetch;
    try {
      store.getState().open("f", EMPTY, null);
      await new Promise((r) => setTimeout(r, SAVE_DELAY_MS + 100));
      expect(saved).toEqual([]);
      store.getState().edit(addNode("a"));
      await new Promise((r) => setTimeout(r, SAVE_DELAY_MS + 100));
      expect(saved).toEqual([store.getState().revision]);
      expect(store.getState().saveState).toBe("saved");
    } finally {
      globalThis.fetch = original;
      stop();
    }
  });
});
