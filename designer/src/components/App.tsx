// Three pages, by the URL's hash: the list of flows (#/), a flow on the canvas (#/flow/ID) and
// the settings (#/settings: roles).
import { useEffect, useState } from "react";
import { api } from "../api";
import { designerStore, useDesigner } from "../store";
import { startAutosave } from "../sync";
import { Editor } from "./Editor";
import { Home } from "./Home";
import { Settings } from "./Settings";

type Page = { flow: string } | "settings" | "home";

function currentPage(): Page {
  if (window.location.hash === "#/settings") return "settings";
  const match = window.location.hash.match(/^#\/flow\/([a-z][a-z0-9_]*)$/);
  return match ? { flow: match[1] } : "home";
}

export function App() {
  const [page, setPage] = useState(currentPage());
  const catalog = useDesigner((s) => s.catalog);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const onHash = () => setPage(currentPage());
    window.addEventListener("hashchange", onHash);
    api.catalog().then(designerStore.getState().setCatalog, (e) => setError(String(e.message)));
    const stop = startAutosave(designerStore);
    return () => {
      window.removeEventListener("hashchange", onHash);
      stop();
    };
  }, []);
  if (error) return <p className="error">The designer's server did not answer: {error}</p>;
  if (page === "settings") return <Settings />;
  if (!catalog) return <p>Loading the catalog…</p>;
  return page === "home" ? <Home /> : <Editor key={page.flow} flowId={page.flow} />;
}
