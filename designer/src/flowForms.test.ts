import { describe, expect, it } from "vitest";
import { sectionSchema, setSection, settingsSections, withoutDefaults } from "./flowForms";
import type { FlowDocument } from "./types";

// A slice of the flow JSON Schema as the server gives it (dp schema).
const FLOW_SCHEMA = {
  type: "object",
  properties: {
    id: { type: "string" },
    params: {
      type: "object",
      patternProperties: { "^[A-Za-z][A-Za-z0-9_]*$": { $ref: "#/$defs/FlowParam" } },
      propertyNames: { maxLength: 64 },
    },
    triggers: { type: "array", items: { oneOf: [{ $ref: "#/$defs/ScheduleTrigger" }] } },
    policies: { $ref: "#/$defs/RunPolicy" },
    nodes: { type: "array" },
  },
  $defs: {
    FlowParam: { type: "object", properties: { type: { type: "string" } } },
    ScheduleTrigger: { type: "object", properties: { cron: { type: "string" } } },
    RunPolicy: {
      type: "object",
      properties: {
        max_retries: { type: "integer" },
        when_running: { type: "string", default: "queue" },
        timeout_seconds: { anyOf: [{ type: "number" }, { type: "null" }], default: null },
      },
    },
  },
};

const DOC: FlowDocument = { id: "f", nodes: [{ id: "a", type: "StaticData" }], params: { x: { type: "number" } } };

describe("flow settings forms", () => {
  it("lists every section of the flow schema but id and nodes", () => {
    expect(settingsSections(FLOW_SCHEMA)).toEqual(["params", "triggers", "policies"]);
  });

  it("gives a section its schema with the $defs its $refs name", () => {
    const policies = sectionSchema(FLOW_SCHEMA, "policies");
    expect(policies.$ref).toBe("#/$defs/RunPolicy");
    expect((policies.$defs as Record<string, unknown>).RunPolicy).toBeDefined();
  });

  it("turns a map keyed by a pattern into additionalProperties that keep the pattern", () => {
    const params = sectionSchema(FLOW_SCHEMA, "params");
    expect(params.patternProperties).toBeUndefined();
    expect(params.additionalProperties).toEqual({ $ref: "#/$defs/FlowParam" });
    expect(params.propertyNames).toEqual({ maxLength: 64, pattern: "^[A-Za-z][A-Za-z0-9_]*$" });
  });

  it("writes only the edited section and nothing for an unchanged value", () => {
    expect(setSection(DOC, "params", { x: { type: "number" } })).toBe(DOC);
    const changed = setSection(DOC, "policies", { max_retries: 2 });
    expect(changed).toEqual({ ...DOC, policies: { max_retries: 2 } });
    expect(changed.nodes).toBe(DOC.nodes);
  });

  it("removes a section emptied in its form, and leaves an absent one absent", () => {
    expect("params" in setSection(DOC, "params", {})).toBe(false);
    expect(setSection(DOC, "triggers", [])).toBe(DOC);
    expect(() => setSection(DOC, "nodes", [])).toThrow();
  });

  it("leaves out the fields a form filled in with their defaults", () => {
    const policies = sectionSchema(FLOW_SCHEMA, "policies");
    const filled = { max_retries: 2, when_running: "queue", timeout_seconds: null };
    expect(withoutDefaults(filled, policies)).toEqual({ max_retries: 2 });
    expect(withoutDefaults({ when_running: "skip" }, policies)).toEqual({ when_running: "skip" });
    expect(withoutDefaults([1], policies)).toEqual([1]);
  });
});
