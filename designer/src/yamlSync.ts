// The code editor's text <-> the document: YAML of the spec (without the layout section).
import YAML from "yaml";
import type { FlowDocument } from "./types";
import { specOf } from "./mapping";

export function specText(doc: FlowDocument): string {
  return YAML.stringify(specOf(doc), { lineWidth: 0 });
}

export function parseSpecText(text: string): { spec: FlowDocument | null; error: string | null } {
  try {
    const value = YAML.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return { spec: null, error: "a flow spec is a mapping (id:, nodes:, ...)" };
    }
    const { layout: _ignored, ...spec } = value as Record<string, unknown>;
    if (!Array.isArray(spec.nodes)) spec.nodes = [];
    return { spec: spec as FlowDocument, error: null };
  } catch (error) {
    return { spec: null, error: (error as Error).message };
  }
}
