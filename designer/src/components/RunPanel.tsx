// Launch the published flow with a params form, follow the run (nodes change colour), and read
// each node's output of the run from the kept per-run outputs.
import Form from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import type { RJSFSchema } from "@rjsf/utils";
import { useEffect, useState } from "react";
import { api, type NodeOutput } from "../api";
import { designerStore, useDesigner } from "../store";
import { followRun } from "../sync";
import type { FlowDocument } from "../types";

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
  const [error, setError] = useState<string | null>(null);
  const launch = async () => {
    setError(null);
    try {
      const { run_id } = await api.launch(flowId, params);
      designerStore.getState().setRun({ run_id, status: "STARTING", succeeded: [], links: {} });
      await followRun(designerStore, flowId, run_id);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <div className="run-panel">
      <p>Runs the published version through Dagster.</p>
      <Form
        schema={paramsSchema(doc)}
        formData={params}
        validator={validator}
        onChange={(e) => setParams(e.formData ?? {})}
        onSubmit={() => void launch()}
        uiSchema={{ "ui:submitButtonOptions": { submitText: "Launch" } }}
      />
      {error && <p className="error">{error}</p>}
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
  if (output.kind !== "table") return <pre>{JSON.stringify(output.value, null, 2)}</pre>;
  const columns = output.columns ?? [];
  return (
    <div className="preview" data-testid="node-output">
      <p>
        {output.row_count} rows, {columns.length} columns (run {run.run_id.slice(0, 8)})
      </p>
      <table>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.name} title={c.dtype}>
                {c.name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {(output.rows ?? []).map((row, i) => (
            <tr key={i}>
              {columns.map((c) => (
                <td key={c.name}>{String(row[c.name] ?? "")}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
