// A flow on the canvas: palette, canvas, side panel (node form, code, history, run), toolbar.
import { ReactFlowProvider } from "@xyflow/react";
import { useEffect, useState } from "react";
import { api, ApiError } from "../api";
import { autoLayout } from "../autolayout";
import { moveNodes } from "../mapping";
import { designerStore, useDesigner } from "../store";
import type { FlowDocument } from "../types";
import { Canvas } from "./Canvas";
import { CodeEditor } from "./CodeEditor";
import { FlowSettings } from "./FlowSettings";
import { HistoryPanel } from "./HistoryPanel";
import { NodePanel } from "./NodePanel";
import { Palette } from "./Palette";
import { RunPanel } from "./RunPanel";
import { Toolbar } from "./Toolbar";

const TABS = ["Node", "Flow", "Code", "History", "Run"] as const;
type Tab = (typeof TABS)[number];

export function Editor({ flowId }: { flowId: string }) {
  const doc = useDesigner((s) => s.doc);
  const [tab, setTab] = useState<Tab>("Node");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    api.open(flowId).then(
      (opened) => {
        if (!live) return;
        const fromDraft = opened.draft?.document;
        let document: FlowDocument = fromDraft ?? opened.stored?.document ?? { id: flowId, nodes: [] };
        const state = designerStore.getState();
        const baseVersion = opened.draft?.base_version ?? opened.stored?.version ?? null;
        // Asked first: the server checks the spec while the client lays it out and draws it (node
        // positions are not part of what is checked).
        const checked = api.validate(document, baseVersion);
        if (Object.keys(document.layout ?? {}).length === 0 && document.nodes.length > 0) {
          // A flow written by hand or imported is laid out when opened; not a change to save.
          document = moveNodes(document, autoLayout(document, state.types));
        }
        state.open(flowId, document, baseVersion);
        checked.then((check) => live && designerStore.getState().setCheck(check), () => undefined);
      },
      (e: ApiError) => {
        if (e.status === 404) designerStore.getState().open(flowId, { id: flowId, nodes: [] }, null);
        else setError(e.message);
      },
    );
    return () => {
      live = false;
    };
  }, [flowId]);
  if (error) return <p className="error">{error}</p>;
  if (!doc) return <p>Opening {flowId}…</p>;
  return (
    <ReactFlowProvider>
      <div className="editor">
        <Toolbar onShow={(t) => setTab(t as Tab)} />
        <Palette />
        <Canvas onSelect={() => setTab("Node")} />
        <aside className="panel">
          <nav className="tabs">
            {TABS.map((t) => (
              <button key={t} className={t === tab ? "active" : ""} onClick={() => setTab(t)}>
                {t}
              </button>
            ))}
          </nav>
          <div className="tab-body">
            {tab === "Node" && <NodePanel />}
            {tab === "Flow" && <FlowSettings />}
            {tab === "Code" && <CodeEditor />}
            {tab === "History" && <HistoryPanel />}
            {tab === "Run" && <RunPanel />}
          </div>
        </aside>
      </div>
    </ReactFlowProvider>
  );
}
