// Client state (zustand): the flow document being edited, undo/redo of its changes, the server's
// check of it, the selection and the run being followed. Side effects live in sync.ts.
import { createStore } from "zustand/vanilla";
import { useStore } from "zustand";
import type { CatalogInfo, CheckResult, FlowDocument, RunState } from "./types";
import type { TypeMap } from "./mapping";

export const HISTORY_LIMIT = 200;

export interface DesignerState {
  catalog: CatalogInfo | null;
  types: TypeMap;
  flowId: string | null;
  doc: FlowDocument | null;
  baseVersion: string | null;
  /** Bumped on every change of `doc`; the autosave compares it with the last saved one. */
  revision: number;
  past: FlowDocument[];
  future: FlowDocument[];
  check: CheckResult | null;
  selected: string | null;
  saveState: "saved" | "saving" | "unsaved" | "error";
  status: string;
  run: RunState | null;
  setCatalog(catalog: CatalogInfo): void;
  open(flowId: string, doc: FlowDocument, baseVersion: string | null): void;
  edit(change: (doc: FlowDocument) => FlowDocument, options?: { record?: boolean }): void;
  undo(): void;
  redo(): void;
  select(id: string | null): void;
  setCheck(check: CheckResult | null): void;
  setSaveState(state: DesignerState["saveState"], status?: string): void;
  setStatus(status: string): void;
  setRun(run: RunState | null): void;
}

export function createDesignerStore() {
  return createStore<DesignerState>()((set, get) => ({
    catalog: null,
    types: {},
    flowId: null,
    doc: null,
    baseVersion: null,
    revision: 0,
    past: [],
    future: [],
    check: null,
    selected: null,
    saveState: "saved",
    status: "",
    run: null,
    setCatalog: (catalog) =>
      set({ catalog, types: Object.fromEntries(catalog.groups.flatMap((g) => g.types).map((t) => [t.name, t])) }),
    open: (flowId, doc, baseVersion) =>
      set((s) => ({
        flowId,
        doc,
        baseVersion,
        revision: s.revision + 1,
        past: [],
        future: [],
        check: null,
        selected: null,
        saveState: "saved",
        run: null,
      })),
    edit: (change, options) => {
      const { doc, past } = get();
      if (!doc) return;
      const next = change(doc);
      if (next === doc) return;
      const record = options?.record ?? true;
      set((s) => ({
        doc: next,
        revision: s.revision + 1,
        past: record ? [...past, doc].slice(-HISTORY_LIMIT) : past,
        future: record ? [] : s.future,
        saveState: "unsaved",
      }));
    },
    undo: () => {
      const { doc, past, future } = get();
      if (!doc || past.length === 0) return;
      set((s) => ({
        doc: past[past.length - 1],
        past: past.slice(0, -1),
        future: [doc, ...future],
        revision: s.revision + 1,
        saveState: "unsaved",
      }));
    },
    redo: () => {
      const { doc, past, future } = get();
      if (!doc || future.length === 0) return;
      set((s) => ({
        doc: future[0],
        past: [...past, doc],
        future: future.slice(1),
        revision: s.revision + 1,
        saveState: "unsaved",
      }));
    },
    select: (selected) => set({ selected }),
    setCheck: (check) => set({ check }),
    setSaveState: (saveState, status) => set(status === undefined ? { saveState } : { saveState, status }),
    setStatus: (status) => set({ status }),
    setRun: (run) => set({ run }),
  }));
}

export const designerStore = createDesignerStore();

export function useDesigner<T>(selector: (state: DesignerState) => T): T {
  return useStore(designerStore, selector);
}
