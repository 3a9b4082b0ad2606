// The flow's own settings (params, triggers, policies, notify, ...) as forms generated from the
// flow's JSON Schema (`dp schema`: the pydantic models), one form per top-level section, so a
// change to one section writes only that key of the document and never another's defaults.
import type { FlowDocument } from "./types";

export type Schema = Record<string, unknown>;

/** Keys of the flow schema that are not flow settings: the canvas and the node forms edit them. */
const NOT_SETTINGS = new Set(["id", "nodes", "edges", "layout"]);

/** The settings sections of the flow schema, in the schema's order. */
export function settingsSections(flowSchema: Schema): string[] {
  const properties = (flowSchema.properties ?? {}) as Record<string, Schema>;
  return Object.keys(properties).filter((key) => !NOT_SETTINGS.has(key));
}

/** The JSON Schema of one section, with the flow schema's `$defs` so that its `$ref`s resolve.
 *  A map keyed by a pattern (`params`) becomes `additionalProperties` with the pattern as
 *  `propertyNames`, which the form library renders as "add a key". */
export function sectionSchema(flowSchema: Schema, key: string): Schema {
  const properties = (flowSchema.properties ?? {}) as Record<string, Schema>;
  const section = rewritePatterns(properties[key] ?? {}) as Schema;
  const defs = rewritePatterns(flowSchema.$defs ?? {}) as Schema;
  return { ...section, title: section.title ?? key, $defs: defs };
}

function rewritePatterns(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewritePatterns);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = rewritePatterns(v);
  const patterns = out.patternProperties as Record<string, unknown> | undefined;
  if (patterns && Object.keys(patterns).length === 1 && out.additionalProperties === undefined) {
    const [pattern, schema] = Object.entries(patterns)[0];
    delete out.patternProperties;
    out.additionalProperties = schema;
    out.propertyNames = { ...((out.propertyNames as object) ?? {}), pattern };
  }
  return out;
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === "") return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === "object") return Object.keys(value as object).length === 0;
  return false;
}

function resolve(schema: Schema, root: Schema): Schema {
  const ref = schema.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/$defs/")) return schema;
  return ((root.$defs as Record<string, Schema> | undefined)?.[ref.slice("#/$defs/".length)] ?? schema) as Schema;
}

/** `value` without the fields the form filled in with their schema's default: what the user
 *  did not set stays unwritten, as in a spec written by hand. */
export function withoutDefaults(value: unknown, schema: Schema): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  const properties = (resolve(schema, schema).properties ?? {}) as Record<string, Schema>;
  const kept: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const declared = properties[k];
    const isDefault = declared && "default" in declared && JSON.stringify(declared.default) === JSON.stringify(v);
    if (!isDefault && v !== undefined) kept[k] = v;
  }
  return kept;
}

/** The document with section `key` set to `value`; an empty value removes the key, and a value
 *  equal to the current one returns the same document (no change, no new version). */
export function setSection(doc: FlowDocument, key: string, value: unknown): FlowDocument {
  if (NOT_SETTINGS.has(key)) throw new Error(`'${key}' is not a flow setting`);
  const current = doc[key];
  if (isEmpty(value)) {
    if (!(key in doc)) return doc;
    const { [key]: _gone, ...rest } = doc;
    return rest as FlowDocument;
  }
  if (JSON.stringify(current) === JSON.stringify(value)) return doc;
  return { ...doc, [key]: value };
}
