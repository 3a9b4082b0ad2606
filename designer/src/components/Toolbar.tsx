// Flow id, save state, undo/redo, auto-layout and publish.
import { useState } from "react";
import { api, ApiError } from "../api";
import { autoLayout } from "../autolayout";
import { moveNodes } from "../mapping";
import { designerStore, useDesigner } from "../store";
import type { CheckResult } from "../types";

export function Toolbar({ onShow }: { onShow: (tab: string) => void }) {
  const flowId = useDesigner((s) => s.flowId);
  const saveState = useDesigner((s) => s.saveState);
  const status = useDesigner((s) => s.status);
  const check = useDesigner((s) => s.check);
  const canUndo = useDesigner((s) => s.past.length > 0);
  const canRedo = useDesigner((s) => s.future.length > 0);
  const [message, setMessage] = useState("");
  const state = designerStore.getState();
  const publish = async () => {
    const { doc } = designerStore.getState();
    try {
      const result = await api.publish(flowId!, doc!, message);
      const check = designerStore.getState().check;
      designerStore.getState().open(flowId!, doc!, result.version);
      designerStore.getState().setCheck(check);
      designerStore.getState().setStatus(`published version ${result.version}`);
      setMessage("");
    } catch (e) {
      const error = e as ApiError;
      if (error.body?.errors) designerStore.getState().setCheck({ valid: false, version: null, errors: error.body.errors as CheckResult["errors"], schemas: {} });
      designerStore.getState().setStatus(`not published: ${error.message}`);
    }
  };
  return (
    <header className="toolbar">
      <a href="#/">Flows</a>
      <b>{flowId}</b>
      <button onClick={state.undo} disabled={!canUndo} title="Undo (Ctrl+Z)">
        Undo
      </button>
      <button onClick={state.redo} disabled={!canRedo} title="Redo (Ctrl+Shift+Z)">
        Redo
      </button>
      <button onClick={() => state.edit((d) => moveNodes(d, autoLayout(d, designerStore.getState().types)))}>Auto-layout</button>
      <span className={`check ${check?.valid ? "valid" : "invalid"}`} data-testid="check">
        {check === null ? "" : check.valid ? "valid" : `${check.errors.length} error(s)`}
      </span>
      <input placeholder="What changed" aria-label="publish message" value={message} onChange={(e) => setMessage(e.target.value)} />
      <button onClick={() => void publish()} disabled={!check?.valid || saveState === "saving"}>
        Publish
      </button>
      <button onClick={() => onShow("Run")}>Run…</button>
      <span className="save" data-testid="save-state">
        {saveState === "saved" ? status : saveState}
      </span>
    </header>
  );
}
