// Every change of the document is checked by the server (validate_spec) and saved as the flow's
// draft, a moment after the last keystroke or drag. A run being followed is polled until it ends.
import { api } from "./api";
import type { createDesignerStore } from "./store";

export const SAVE_DELAY_MS = 400;
export const RUN_POLL_MS = 1000;
const TERMINAL = new Set(["SUCCESS", "FAILURE", "CANCELED"]);

type Store = ReturnType<typeof createDesignerStore>;

export function startAutosave(store: Store): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastRevision = store.getState().revision;
  const unsubscribe = store.subscribe((state) => {
    if (state.revision === lastRevision) return;
    lastRevision = state.revision;
    clearTimeout(timer);
    if (state.saveState !== "unsaved") return; // opened, published or restored: nothing to save
    timer = setTimeout(() => void saveNow(store), SAVE_DELAY_MS);
  });
  return () => {
    clearTimeout(timer);
    unsubscribe();
  };
}

export async function saveNow(store: Store): Promise<void> {
  const { flowId, doc, baseVersion, revision } = store.getState();
  if (!flowId || !doc) return;
  store.getState().setSaveState("saving");
  try {
    const saved = await api.saveDraft(flowId, doc, baseVersion);
    if (store.getState().revision !== revision) return; // edited meanwhile: the next save follows
    store.getState().setCheck(saved.check);
    store.getState().setSaveState("saved", `draft saved ${new Date(saved.saved_at).toLocaleTimeString()}`);
  } catch (error) {
    store.getState().setSaveState("error", `not saved: ${(error as Error).message}`);
  }
}

export async function followRun(store: Store, flowId: string, runId: string): Promise<void> {
  for (;;) {
    const state = await api.run(flowId, runId);
    if (store.getState().flowId !== flowId) return;
    store.getState().setRun(state);
    if (TERMINAL.has(state.status)) return;
    await new Promise((resolve) => setTimeout(resolve, RUN_POLL_MS));
  }
}
