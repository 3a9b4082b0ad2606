// Roles as the settings page shows them: who administers what, a grant form's own checks (the
// same patterns as dp_auth.access, so most mistakes are named before a round trip; the server
// still decides), and a flow's audit entries as lines of its history.

export type RoleName = "viewer" | "runner" | "editor" | "admin";
export type GrantKind = "user" | "group" | "token";

export const ROLES: RoleName[] = ["viewer", "runner", "editor", "admin"];
export const KINDS: GrantKind[] = ["user", "group", "token"];

export interface GrantRow {
  kind: GrantKind;
  name: string;
  workspace: string;
  flow: string | null;
  role: RoleName;
}

export interface Me {
  label: string;
  user: string | null;
  groups: string[];
  token: string | null;
  local_admin: boolean;
  grants: GrantRow[];
}

export interface GrantForm {
  kind: GrantKind;
  name: string;
  workspace: string;
  flow: string;
  role: RoleName;
}

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  detail: Record<string, unknown>;
}

// dp_auth/access.py: NAME_RE, WORKSPACE_RE, FLOW_RE, and a token's id (16 hex digits).
const NAME = /^[^\x00-\x1f\x7f]{1,256}$/;
const WORKSPACE = /^(\*|[a-z][a-z0-9_-]{0,63})$/;
const FLOW = /^[a-z][a-z0-9_]{0,63}$/;
const TOKEN_ID = /^[0-9a-f]{16}$/;

/** Whether the caller administers some place: the settings page then offers the grant form. */
export function administers(me: Me): boolean {
  return me.local_admin || me.grants.some((g) => g.role === "admin");
}

/** The form's mistakes by field (empty: it may be sent). */
export function grantFormErrors(form: GrantForm): Partial<Record<keyof GrantForm, string>> {
  const errors: Partial<Record<keyof GrantForm, string>> = {};
  if (form.kind === "token" ? !TOKEN_ID.test(form.name) : !NAME.test(form.name))
    errors.name =
      form.kind === "token"
        ? "a token's id: 16 hex digits (dp roles tokens lists them)"
        : "a name of 1 to 256 characters, no control characters";
  if (!WORKSPACE.test(form.workspace))
    errors.workspace = "a workspace: lower-case letters, digits, _ or -, starting with a letter; or * for every one";
  if (form.flow !== "" && !FLOW.test(form.flow))
    errors.flow = "a flow id: lower-case letters, digits and _, starting with a letter; empty for the whole workspace";
  if (form.flow !== "" && form.workspace === "*") errors.flow = "a flow belongs to one workspace, not *";
  if (!ROLES.includes(form.role)) errors.role = "viewer, runner, editor or admin";
  return errors;
}

/** The request body of a grant: an empty flow means the whole workspace. */
export function grantBody(form: GrantForm): GrantRow {
  return { kind: form.kind, name: form.name, workspace: form.workspace, flow: form.flow || null, role: form.role };
}

export function placeOf(grant: GrantRow): string {
  if (grant.workspace === "*") return "every workspace";
  return grant.flow ? `flow ${grant.flow} (workspace ${grant.workspace})` : `workspace ${grant.workspace}`;
}

/** Grants by place (workspace, then the workspace before its flows), then by holder. */
export function sortGrants(grants: GrantRow[]): GrantRow[] {
  const key = (g: GrantRow) => [g.workspace, g.flow ?? "", g.kind, g.name].join("\u0000");
  return [...grants].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

const ACTIONS: Record<string, string> = {
  publish: "published",
  delete: "deleted",
  restore: "restored",
  unpublish: "unpublished",
  launch: "launched",
  grant: "granted",
  ungrant: "revoked",
};

/** One audit entry as a sentence of the flow's history: what was done, with what. */
export function auditLine(entry: AuditEntry): string {
  const d = entry.detail;
  const verb = ACTIONS[entry.action] ?? entry.action;
  const parts: string[] = [verb];
  if (typeof d.version === "string") parts.push(`version ${d.version.slice(0, 8)}`);
  if (entry.action === "grant" || entry.action === "ungrant") {
    const role = typeof d.role === "string" ? `${d.role} ` : "";
    parts.push(`${role}to ${String(d.kind ?? "")} ${String(d.name ?? "")}`.replace("  ", " "));
  }
  if (entry.action === "launch" && typeof d.run_id === "string") parts.push(`run ${d.run_id.slice(0, 8)}`);
  if (entry.action === "launch" && Array.isArray(d.params) && d.params.length) parts.push(`params ${d.params.join(", ")}`);
  return parts.join(" ");
}

/** Newest first: the history reads from what happened last. */
export function newestFirst(entries: AuditEntry[]): AuditEntry[] {
  return [...entries].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
}
