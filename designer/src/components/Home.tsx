// The flows of the store: version, draft or published, last run, errors; and "new flow".
import { useEffect, useState } from "react";
import { api } from "../api";
import type { FlowRow } from "../types";

export function Home() {
  const [flows, setFlows] = useState<FlowRow[] | null>(null);
  const [name, setName] = useState("");
  useEffect(() => {
    api.flows().then((r) => setFlows(r.flows));
  }, []);
  const valid = /^[a-z][a-z0-9_]{0,63}$/.test(name);
  return (
    <div className="home">
      <nav className="home-links">
        <a href="#/settings">Settings (roles)</a>
      </nav>
      <h1>Flows</h1>
      <form
        className="new-flow"
        onSubmit={(e) => {
          e.preventDefault();
          if (valid) window.location.hash = `#/flow/${name}`;
        }}
      >
        <input
          aria-label="new flow id"
          placeholder="new_flow_id"
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
        <button type="submit" disabled={!valid}>
          New flow
        </button>
      </form>
      {flows === null ? (
        <p>Loading…</p>
      ) : (
        <table className="flows">
          <thead>
            <tr>
              <th>flow</th>
              <th>state</th>
              <th>latest version</th>
              <th>draft</th>
              <th>last run</th>
              <th>errors</th>
            </tr>
          </thead>
          <tbody>
            {flows.map((f) => (
              <tr key={f.id} className={f.errors.length ? "broken" : ""}>
                <td>
                  <a href={`#/flow/${f.id}`}>{f.id}</a>
                </td>
                <td>{f.state}</td>
                <td>
                  <code>{f.latest_version ?? "—"}</code> ({f.versions})
                </td>
                <td>{f.draft ? "draft" : ""}</td>
                <td>{f.last_run_status ?? "—"}</td>
                <td className="error">{f.errors.join("; ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
