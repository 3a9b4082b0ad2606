// Versions of the flow: who published what, a diff of any two (by node and as YAML), and
// restoring an old version as a new draft; below, the flow's activity from the audit: who
// published, launched, deleted and changed its roles, and when.
import { useEffect, useState } from "react";
import { api, type NodeDiff } from "../api";
import { type AuditEntry, auditLine, newestFirst } from "../roles";
import { designerStore, useDesigner } from "../store";
import type { VersionInfo } from "../types";

export function HistoryPanel() {
  const flowId = useDesigner((s) => s.flowId)!;
  const [versions, setVersions] = useState<VersionInfo[]>([]);
  const [picked, setPicked] = useState<string[]>([]);
  const [diff, setDiff] = useState<{ nodes: NodeDiff; yaml: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [activity, setActivity] = useState<AuditEntry[]>([]);
  useEffect(() => {
    api.history(flowId).then((h) => setVersions(h.versions), () => setVersions([]));
    api.audit(flowId).then((a) => setActivity(newestFirst(a.entries)), () => setActivity([]));
  }, [flowId]);
  useEffect(() => {
    setDiff(null);
    if (picked.length === 2) api.diff(flowId, picked[0], picked[1]).then(setDiff, (e) => setError(e.message));
  }, [flowId, picked]);
  const toggle = (v: string) => setPicked((p) => (p.includes(v) ? p.filter((x) => x !== v) : [...p, v].slice(-2)));
  const restore = async (version: string) => {
    const restored = await api.restore(flowId, version);
    designerStore.getState().open(flowId, restored.document, restored.base_version);
    api.validate(restored.document, restored.base_version).then(designerStore.getState().setCheck, () => undefined);
    designerStore.getState().setStatus(`version ${version.slice(0, 8)} restored as the draft`);
  };
  if (versions.length === 0) return <p>No version published yet.</p>;
  return (
    <div className="history">
      <Activity entries={activity} />
      <p>Tick two versions to compare them.</p>
      <ul>
        {versions.map((v, i) => (
          <li key={v.version} data-testid={`version-${i + 1}`}>
            <input type="checkbox" aria-label={`compare ${v.version}`} checked={picked.includes(v.version)} onChange={() => toggle(v.version)} />
            <code>{v.version.slice(0, 8)}</code> {v.published && <b>published</b>} {v.message}
            <small>
              {" "}
              {new Date(v.created_at).toLocaleString()} {v.author ?? ""}
            </small>{" "}
            <button onClick={() => void restore(v.version)}>Restore</button>
          </li>
        ))}
      </ul>
      {error && <p className="error">{error}</p>}
      {diff && (
        <div className="diff">
          <p>
            added: {diff.nodes.added.join(", ") || "—"}; removed: {diff.nodes.removed.join(", ") || "—"}; changed:{" "}
            {diff.nodes.changed.map((c) => `${c.id} (${c.fields.join(", ")})`).join("; ") || "—"}
          </p>
          <pre>{diff.yaml}</pre>
        </div>
      )}
    </div>
  );
}

function Activity({ entries }: { entries: AuditEntry[] }) {
  if (entries.length === 0) return null;
  return (
    <details className="activity" data-testid="activity" open>
      <summary>Activity ({entries.length})</summary>
      <ul>
        {entries.map((e, i) => (
          <li key={i} data-testid="activity-entry">
            <small>{new Date(e.at).toLocaleString()}</small> <b>{e.actor}</b> {auditLine(e)}
          </li>
        ))}
      </ul>
    </details>
  );
}
