// "Run up to this node" on the draft as drawn: on the flow's data or a row sample of each source,
// with the platform's own nodes and sandbox; sinks and tools are stand-ins that send nothing.
// A preview can be kept as a `dp test` case beside the flow's spec file.
import Form from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import { useState } from "react";
import { api, type KeptCase, type PreviewResult } from "../api";
import { useDesigner } from "../store";
import { paramsSchema } from "./RunPanel";
import { ValueView } from "./Table";

export const DEFAULT_SAMPLE_ROWS = 100;

export function PreviewView({ nodeId }: { nodeId: string }) {
  const flowId = useDesigner((s) => s.flowId)!;
  const doc = useDesigner((s) => s.doc)!;
  const [sample, setSample] = useState<number | null>(DEFAULT_SAMPLE_ROWS);
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<PreviewResult | null>(null);
  const [kept, setKept] = useState<KeptCase | null>(null);
  const [caseName, setCaseName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [params, setParams] = useState<Record<string, unknown>>({});
  const schema = paramsSchema(doc);
  const hasParams = Object.keys(schema.properties ?? {}).length > 0;
  const request = () => ({ node: nodeId, document: doc, sample_rows: sample, params });
  const run = async () => {
    setBusy(true);
    setError(null);
    setKept(null);
    try {
      setPreview(await api.preview(flowId, request()));
    } catch (e) {
      setPreview(null);
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const keep = async () => {
    setError(null);
    try {
      setKept(await api.keepAsTestCase(flowId, { ...request(), name: caseName.trim() }));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const shown = preview && preview.node === nodeId ? preview : null;
  return (
    <section className="preview-box" data-testid="preview">
      <h3>Preview</h3>
      <label>
        <input type="checkbox" checked={sample !== null} onChange={(e) => setSample(e.target.checked ? DEFAULT_SAMPLE_ROWS : null)} />{" "}
        first{" "}
        <input
          type="number"
          min={1}
          aria-label="sample rows"
          disabled={sample === null}
          value={sample ?? DEFAULT_SAMPLE_ROWS}
          onChange={(e) => setSample(Math.max(1, Number(e.target.value) || 1))}
          style={{ width: "6em" }}
        />{" "}
        rows of each source (else all the flow's data)
      </label>
      {hasParams && (
        <details data-testid="preview-params">
          <summary>params (else their defaults)</summary>
          <Form
            schema={schema}
            formData={params}
            validator={validator}
            idPrefix="preview_params"
            noHtml5Validate
            showErrorList={false}
            onChange={(e) => setParams(e.formData ?? {})}
            uiSchema={{ "ui:submitButtonOptions": { norender: true } }}
          />
        </details>
      )}
      <button onClick={() => void run()} disabled={busy}>
        {busy ? "Running…" : "Run up to this node"}
      </button>
      {error && <p className="error">{error}</p>}
      {shown && (
        <>
          {shown.problems.length > 0 && (
            <ul className="errors" data-testid="preview-problems">
              {shown.problems.map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
          )}
          {shown.stand_ins.length > 0 && <p>Stand-ins (nothing sent): {shown.stand_ins.join(", ")}</p>}
          {Object.entries(shown.outputs).map(([name, value]) => (
            <ValueView
              key={name}
              value={value}
              caption={`preview${name === "result" ? "" : ` of ${name}`}, ${shown.seconds}s`}
              testId="preview-output"
            />
          ))}
          {shown.ok && (
            <div className="keep-case">
              <input placeholder="test case name" value={caseName} onChange={(e) => setCaseName(e.target.value)} />
              <button onClick={() => void keep()} disabled={!caseName.trim()}>
                Keep as test case
              </button>
            </div>
          )}
        </>
      )}
      {kept && (
        <div data-testid="kept-case">
          {kept.file ? (
            <p>
              Added to <code>{kept.file}</code>: <code>{kept.command}</code>
            </p>
          ) : (
            <p>{kept.note}</p>
          )}
          <pre>{kept.yaml}</pre>
        </div>
      )}
    </section>
  );
}
