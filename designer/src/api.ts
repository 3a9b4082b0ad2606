// The designer's server API (dp_designer): every call answers JSON, errors as {error: message}.
import type { AuditEntry, GrantRow, Me } from "./roles";
import type { CatalogInfo, CheckResult, FlowDocument, FlowRow, RunState, VersionInfo } from "./types";

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public body: Record<string, unknown>,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, String(data.error ?? response.statusText), data);
  return data as T;
}

const flow = (id: string) => `/api/flows/${encodeURIComponent(id)}`;

export interface OpenedFlow {
  id: string;
  stored: { version: string; document: FlowDocument } | null;
  draft: { document: FlowDocument; base_version: string | null; updated_at: string } | null;
}

export interface NodeDiff {
  added: string[];
  removed: string[];
  changed: { id: string; fields: string[] }[];
}

export interface NodeOutput {
  kind: string;
  row_count?: number;
  columns?: { name: string; dtype: string }[];
  rows?: Record<string, unknown>[];
  value?: unknown;
}

export interface PreviewResult {
  flow: string;
  node: string;
  ok: boolean;
  sample_rows: number | null;
  seconds: number;
  stand_ins: string[];
  problems: string[];
  outputs: Record<string, NodeOutput>;
  sources: Record<string, NodeOutput>;
}

export interface PreviewRequest {
  node: string;
  document: FlowDocument;
  sample_rows: number | null;
  params: Record<string, unknown>;
}

export interface KeptCase {
  case: Record<string, unknown>;
  yaml: string;
  file: string | null;
  command: string | null;
  note: string | null;
}

export interface RunRow {
  run_id: string;
  status: string;
  started: number | null;
  ended: number | null;
  launched_by: string | null;
  partition: string | null;
}

export const api = {
  catalog: () => call<CatalogInfo>("GET", "/api/catalog"),
  flows: () => call<{ flows: FlowRow[] }>("GET", "/api/flows"),
  open: (id: string) => call<OpenedFlow>("GET", flow(id)),
  openVersion: (id: string, version: string) => call<OpenedFlow>("GET", `${flow(id)}/versions/${version}`),
  /** `base_version`: the stored version the document started from (the server keeps its floats). */
  validate: (document: FlowDocument, base_version: string | null = null) =>
    call<CheckResult>("POST", "/api/validate", { document, base_version }),
  saveDraft: (id: string, document: FlowDocument, base_version: string | null) =>
    call<{ saved_at: string; check: CheckResult }>("PUT", `${flow(id)}/draft`, { document, base_version }),
  publish: (id: string, document: FlowDocument, message: string) =>
    call<{ version: string; created: boolean; published: boolean }>("POST", `${flow(id)}/publish`, {
      document,
      message,
    }),
  history: (id: string) => call<{ versions: VersionInfo[] }>("GET", `${flow(id)}/history`),
  /** Who published, deleted, restored, launched the flow and changed its roles (oldest first). */
  audit: (id: string) => call<{ entries: AuditEntry[] }>("GET", `${flow(id)}/audit`),
  diff: (id: string, from: string, to: string) =>
    call<{ from: string; to: string; nodes: NodeDiff; yaml: string }>(
      "GET",
      `${flow(id)}/diff?from=${from}&to=${to}`,
    ),
  restore: (id: string, version: string) =>
    call<{ document: FlowDocument; base_version: string }>("POST", `${flow(id)}/restore`, { version }),
  launch: (id: string, params: Record<string, unknown>, partition?: string) =>
    call<{ run_id: string }>("POST", `${flow(id)}/runs`, partition ? { params, partition } : { params }),
  run: (id: string, runId: string) => call<RunState>("GET", `${flow(id)}/runs/${runId}`),
  runs: (id: string) => call<{ runs: RunRow[] }>("GET", `${flow(id)}/runs`),
  preview: (id: string, request: PreviewRequest) => call<PreviewResult>("POST", `${flow(id)}/preview`, request),
  keepAsTestCase: (id: string, request: PreviewRequest & { name: string }) =>
    call<KeptCase>("POST", `${flow(id)}/preview/test-case`, request),
  importFile: (text: string, filename: string) =>
    call<{ document: FlowDocument; positions: boolean }>("POST", "/api/import", { text, filename }),
  me: () => call<Me>("GET", "/api/me"),
  /** The grants of the places the caller administers. */
  roles: () => call<{ grants: GrantRow[] }>("GET", "/api/roles"),
  grant: (grant: GrantRow) => call<GrantRow>("POST", "/api/roles", grant),
  revoke: (grant: GrantRow) =>
    call<{ removed: boolean }>("POST", "/api/roles/revoke", {
      kind: grant.kind,
      name: grant.name,
      workspace: grant.workspace,
      flow: grant.flow,
    }),
  output: (id: string, runId: string, node: string) =>
    call<NodeOutput>("GET", `${flow(id)}/runs/${runId}/nodes/${encodeURIComponent(node)}`),
};
