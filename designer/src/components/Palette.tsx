// Every node type of the catalog, grouped and searchable, with its docs; drag one onto the canvas.
import { useState } from "react";
import { useDesigner } from "../store";

export const DRAG_TYPE = "application/dp-node-type";

export function Palette() {
  const catalog = useDesigner((s) => s.catalog)!;
  const [query, setQuery] = useState("");
  const [open, setOpen] = useState<string | null>(null);
  const q = query.trim().toLowerCase();
  return (
    <div className="palette">
      <input placeholder="Search nodes" aria-label="search nodes" value={query} onChange={(e) => setQuery(e.target.value)} />
      {catalog.groups.map((group) => {
        const types = group.types.filter(
          (t) => !q || t.name.toLowerCase().includes(q) || t.description.toLowerCase().includes(q),
        );
        if (types.length === 0) return null;
        return (
          <section key={group.name}>
            <h3>{group.label}</h3>
            {types.map((t) => (
              <div key={t.name} className="palette-item">
                <div
                  className="palette-node"
                  data-testid={`palette-${t.name}`}
                  draggable
                  onDragStart={(e) => {
                    e.dataTransfer.setData(DRAG_TYPE, t.name);
                    e.dataTransfer.effectAllowed = "move";
                  }}
                  title={t.description}
                >
                  {t.name}
                  <button className="docs-toggle" aria-label={`docs of ${t.name}`} onClick={() => setOpen(open === t.name ? null : t.name)}>
                    ?
                  </button>
                </div>
                {open === t.name && <pre className="docs">{t.docs}</pre>}
              </div>
            ))}
          </section>
        );
      })}
    </div>
  );
}
