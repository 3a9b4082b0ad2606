// Two pages, by the URL's hash: the list of flows (#/) and a flow on the canvas (#/flow/ID).
import { useEffect, useState } from "react";
import { api } from "../api";
import { designerStore, useDesigner } from "../store";
import { startAutosave } from "../sync";
import { Editor } from "./Editor";
import { Home } from "./Home";

function currentFlow(): string | null {
  const match = window.location.hash.match(/^#\/flow\/([a-z][a-z0-9_]*)$/);
  return match ? match[1] : null;
}

export function App() {
  const [flowId, setFlowId] = useState(currentFlow());
  const catalog = useDesigner((s) => s.catalog);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const onHash = () => setFlowId(currentFlow());
    window.addEventListener("hashchange", onHash);
    api.catalog().then(designerStore.getState().setCatalog, (e) => setError(String(e.message)));
    const stop = startAutosave(designerStore);
    return () => {
      window.removeEventListener("hashchange", onHash);
      stop();
    };
  }, []);
  if (error) return <p className="error">The designer's server did not answer: {error}</p>;
  if (!catalog) return <p>Loading the catalog…</p>;
  return flowId ? <Editor key={flowId} flowId={flowId} /> : <Home />;
}
