// The selected node: its params as a form generated from the node type's JSON Schema (the
// pydantic model; no form is written by hand), its errors, its docs and its output of the run.
import Form from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import type { RJSFSchema } from "@rjsf/utils";
import { paramErrors } from "../formErrors";
import { nodeErrors, sourceColumnsNote } from "../canvasView";
import { setParams } from "../mapping";
import { designerStore, useDesigner } from "../store";
import { PreviewView } from "./PreviewView";
import { NodeOutputView } from "./RunPanel";

export function NodePanel() {
  const selected = useDesigner((s) => s.selected);
  const doc = useDesigner((s) => s.doc)!;
  const types = useDesigner((s) => s.types);
  const check = useDesigner((s) => s.check);
  const run = useDesigner((s) => s.run);
  const node = doc.nodes.find((n) => n.id === selected);
  if (!node) return <FlowSummary />;
  const info = types[node.type];
  const errors = nodeErrors(check, node.id);
  const columnsNote = sourceColumnsNote(check, node.id);
  return (
    <div className="node-panel" data-testid="node-panel">
      <h2>
        {node.id} <small>{node.type}</small>
      </h2>
      {errors.length > 0 && (
        <ul className="errors" data-testid="node-errors">
          {errors.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      )}
      {columnsNote && (
        <p className="note" data-testid="node-columns-note">
          {columnsNote}
        </p>
      )}
      {info ? (
        <Form
          key={node.id}
          schema={info.params_schema as RJSFSchema}
          formData={node.params ?? {}}
          validator={validator}
          extraErrors={paramErrors(check, node.id)}
          noHtml5Validate
          showErrorList={false}
          onChange={(e) => designerStore.getState().edit((d) => setParams(d, node.id, e.formData ?? {}))}
          uiSchema={{ "ui:submitButtonOptions": { norender: true } }}
        />
      ) : (
        <p className="error">Unknown node type {node.type}.</p>
      )}
      {run && <NodeOutputView nodeId={node.id} />}
      <PreviewView nodeId={node.id} />
      {info && (
        <details>
          <summary>Docs</summary>
          <pre className="docs">{info.docs}</pre>
        </details>
      )}
    </div>
  );
}

function FlowSummary() {
  const check = useDesigner((s) => s.check);
  const flowErrors = (check?.errors ?? []).filter((e) => e.node === null);
  return (
    <div>
      <p>Select a node to edit its params; drag a node type from the palette onto the canvas.</p>
      <p>
        {check === null ? "Not checked yet." : check.valid ? `Valid: version ${check.version}.` : `${check.errors.length} error(s).`}
      </p>
      <ul className="errors">
        {flowErrors.map((e) => (
          <li key={e.field + e.message}>
            {e.field}: {e.message}
          </li>
        ))}
      </ul>
    </div>
  );
}
