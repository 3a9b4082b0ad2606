// The flow's settings (params, triggers, policies, notify, retention, partitions, ...): one form
// per section of the flow's JSON Schema (the pydantic models; no form is written by hand).
import Form from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import type { RJSFSchema } from "@rjsf/utils";
import { sectionSchema, setSection, settingsSections, withoutDefaults } from "../flowForms";
import { designerStore, useDesigner } from "../store";

export function FlowSettings() {
  const catalog = useDesigner((s) => s.catalog);
  const doc = useDesigner((s) => s.doc)!;
  const check = useDesigner((s) => s.check);
  if (!catalog) return <p>Reading the flow schema…</p>;
  const flowSchema = catalog.flow_schema;
  return (
    <div className="flow-settings" data-testid="flow-settings">
      {settingsSections(flowSchema).map((key) => {
        const schema = sectionSchema(flowSchema, key);
        const errors = (check?.errors ?? []).filter((e) => e.node === null && e.field.split(".")[0] === key);
        return (
          <details key={key} open={key in doc || errors.length > 0} data-testid={`flow-section-${key}`}>
            <summary>
              {key}
              {errors.length > 0 && <span className="error"> ({errors.length} error(s))</span>}
            </summary>
            <ul className="errors">
              {errors.map((e) => (
                <li key={e.field + e.message}>
                  {e.field}: {e.message}
                </li>
              ))}
            </ul>
            <Form
              schema={schema as RJSFSchema}
              idPrefix={key}
              formData={doc[key]}
              validator={validator}
              noHtml5Validate
              showErrorList={false}
              onChange={(e) => designerStore.getState().edit((d) => setSection(d, key, withoutDefaults(e.formData, schema)))}
              uiSchema={{ "ui:submitButtonOptions": { norender: true } }}
            />
          </details>
        );
      })}
    </div>
  );
}
