// Launch the published flow with a params form, follow the run (nodes change colour), and read
// each node's output of the run from the kept per-run outputs.
import Form from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import type { RJSFSchema } from "@rjsf/utils";
import { useEffect, useState } from "react";
import { api, type NodeOutput, type RunRow } from "../api";
import { designerStore, useDesigner } from "../store";
import { followRun } from "../sync";
import type { FlowDocument } from "../types";
import { ValueView } from "./Table";

const PARAM_TYPES: Record<string, string> = { integer: "integer", number: "number", boolean: "boolean", list: "array", object: "object" };

/** The flow's declared params as a JSON Schema for the launch form. */
export function paramsSchema(doc: FlowDocument): RJSFSchema {
  const declared = (doc.params ?? {}) as Record<string, { type?: string; default?: unknown; description?: string }>;
  const properties: Record<string, RJSFSchema> = {};
  for (const [name, p] of Object.entries(declared)) {
    properties[name] = { type: (PARAM_TYPES[p.type ?? "string"] ?? "string") as never, default: p.default as never, description: p.description };
  }
  return { type: "object", properties };
}

export function RunPanel() {
  const doc = useDesigner((s) => s.doc)!;
  const flowId = useDesigner((s) => s.flowId)!;
  const run = useDesigner((s) => s.run);
  const [params, setParams] = useState<Record<string, unknown>>({});
  const [partition, setPartition] = useState("");
  const [error, setError] = useState<string | null>(null);
  const partitioned = Boolean(doc.partitions);
  const launch = async () => {
    setError(null);
    try {
      const { run_id } = await api.launch(flowId, params, partitioned ? partition.trim() || undefined : undefined);
      designerStore.getState().setRun({ run_id, status: "STARTING", succeeded: [], links: {} });
      await followRun(designerStore, flowId, run_id);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <div className="run-panel">
      <p>Runs the published version through Dagster.</p>
      {partitioned && (
        <label className="partition">
          Partition{" "}
          <input
            data-testid="run-partition"
            value={partition}
            placeholder="e.g. 2024-06-01-12:00"
            onChange={(e) => setPartition(e.target.value)}
          />
        </label>
      )}
      <Form
        schema={paramsSchema(doc)}
        formData={params}
        validator={validator}
        onChange={(e) => setParams(e.formData ?? {})}
        onSubmit={() => void launch()}
        uiSchema={{ "ui:submitButtonOptions": { submitText: "Launch" } }}
      />
      {error && <p className="error">{error}</p>}
      <PastRuns current={run?.run_id ?? null} />
      {run && (
        <p data-testid="run-status">
          Run <code>{run.run_id.slice(0, 8)}</code>: <b>{run.status}</b>
          {run.links.run && (
            <>
              {" "}
              — <a href={run.links.run} target="_blank" rel="noreferrer">open in Dagster</a>
            </>
          )}
        </p>
      )}
    </div>
  );
}

/** Opens a run: its node colours on the canvas and each node's output of it in the node panel. */
export async function openRun(flowId: string, runId: string, status: string): Promise<void> {
  designerStore.getState().setRun({ run_id: runId, status, succeeded: [], links: {} });
  await followRun(designerStore, flowId, runId);
}

function PastRuns({ current }: { current: string | null }) {
  const flowId = useDesigner((s) => s.flowId)!;
  const [runs, setRuns] = useState<RunRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.runs(flowId).then(
      (r) => setRuns(r.runs),
      (e) => setError(e.message),
    );
  }, [flowId, current]);
  if (error) return <p className="error">Past runs: {error}</p>;
  if (!runs) return <p>Reading past runs…</p>;
  if (runs.length === 0) return <p>No runs yet.</p>;
  return (
    <table className="runs" data-testid="past-runs">
      <thead>
        <tr>
          <th>run</th>
          <th>status</th>
          <th>started</th>
          <th>by</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.run_id} className={r.run_id === current ? "current" : ""}>
            <td>
              <code>{r.run_id.slice(0, 8)}</code>
            </td>
            <td>{r.status}</td>
            <td>{r.started ? new Date(r.started * 1000).toLocaleString() : ""}</td>
            <td>{r.launched_by ?? ""}</td>
            <td>
              <button onClick={() => void openRun(flowId, r.run_id, r.status).catch((e) => setError(e.message))}>
                Open
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function NodeOutputView({ nodeId }: { nodeId: string }) {
  const flowId = useDesigner((s) => s.flowId)!;
  const run = useDesigner((s) => s.run)!;
  const done = run.succeeded.includes(nodeId);
  const [output, setOutput] = useState<NodeOutput | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setOutput(null);
    if (!done) return;
    api.output(flowId, run.run_id, nodeId).then(setOutput, (e) => setError(e.message));
  }, [flowId, run.run_id, nodeId, done]);
  if (!done) return <p>No output of run {run.run_id.slice(0, 8)} yet.</p>;
  if (error) return <p className="error">{error}</p>;
  if (!output) return <p>Reading the output…</p>;
  return <ValueView value={output} caption={`run ${run.run_id.slice(0, 8)}`} testId="node-output" />;
}
