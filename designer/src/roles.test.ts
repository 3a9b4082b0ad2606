import { describe, expect, it } from "vitest";
import {
  type GrantForm,
  type GrantRow,
  type Me,
  administers,
  auditLine,
  grantBody,
  grantFormErrors,
  newestFirst,
  placeOf,
  sortGrants,
} from "./roles";

const ME: Me = { label: "user:vic", user: "vic", groups: ["analysts"], token: null, local_admin: false, grants: [] };
const grant = (over: Partial<GrantRow>): GrantRow => ({
  kind: "user",
  name: "rita",
  workspace: "sales",
  flow: null,
  role: "runner",
  ...over,
});
const FORM: GrantForm = { kind: "user", name: "rita", workspace: "sales", flow: "", role: "runner" };

describe("who sees the grant form", () => {
  it("an admin of some place, or the local admin; not a viewer, runner or editor", () => {
    expect(administers(ME)).toBe(false);
    expect(administers({ ...ME, grants: [grant({ role: "editor" }), grant({ role: "runner" })] })).toBe(false);
    expect(administers({ ...ME, grants: [grant({ role: "viewer" }), grant({ role: "admin", flow: "f" })] })).toBe(true);
    expect(administers({ ...ME, local_admin: true })).toBe(true);
  });
});

describe("the grant form's own checks (dp_auth.access's patterns)", () => {
  it("a well-formed grant has none, and an empty flow means the whole workspace", () => {
    expect(grantFormErrors(FORM)).toEqual({});
    expect(grantFormErrors({ ...FORM, workspace: "*" })).toEqual({});
    expect(grantFormErrors({ ...FORM, flow: "daily_sales" })).toEqual({});
    expect(grantBody(FORM)).toEqual(grant({}));
    expect(grantBody({ ...FORM, flow: "daily_sales" }).flow).toBe("daily_sales");
  });

  it.each([
    [{ name: "" }, "name"],
    [{ name: "a\nb" }, "name"],
    [{ name: "x".repeat(257) }, "name"],
    [{ kind: "token" as const, name: "rita" }, "name"],
    [{ workspace: "" }, "workspace"],
    [{ workspace: "Sales" }, "workspace"],
    [{ workspace: "9lives" }, "workspace"],
    [{ flow: "Daily" }, "flow"],
    [{ flow: "daily-sales" }, "flow"],
    [{ workspace: "*", flow: "daily" }, "flow"],
  ])("%j is refused on its field %s", (change, field) => {
    expect(Object.keys(grantFormErrors({ ...FORM, ...change }))).toEqual([field]);
  });

  it("a token is named by its 16-hex-digit id", () => {
    expect(grantFormErrors({ ...FORM, kind: "token", name: "0123456789abcdef" })).toEqual({});
  });
});

describe("grants listed", () => {
  it("by workspace, the workspace's own grants before its flows', then by holder", () => {
    const rows = [
      grant({ workspace: "sales", flow: "b", name: "z" }),
      grant({ workspace: "hr", name: "y" }),
      grant({ workspace: "sales", name: "x" }),
      grant({ workspace: "*", name: "boss", role: "admin" }),
    ];
    expect(sortGrants(rows).map((g) => placeOf(g) + " " + g.name)).toEqual([
      "every workspace boss",
      "workspace hr y",
      "workspace sales x",
      "flow b (workspace sales) z",
    ]);
  });
});

describe("a flow's activity", () => {
  it("says what was done, with which version, run, role or params", () => {
    const at = "2026-12-06T21:00:00+00:00";
    expect(auditLine({ at, actor: "user:ed", action: "publish", detail: { version: "abcdef0123456789", published: true } })).toBe(
      "published version abcdef01",
    );
    expect(auditLine({ at, actor: "user:rita", action: "launch", detail: { run_id: "1234567890ab", params: ["min_amount"] } })).toBe(
      "launched run 12345678 params min_amount",
    );
    expect(auditLine({ at, actor: "user:ada", action: "grant", detail: { kind: "user", name: "vic", role: "editor" } })).toBe(
      "granted editor to user vic",
    );
    expect(auditLine({ at, actor: "user:ada", action: "delete", detail: {} })).toBe("deleted");
  });

  it("newest first", () => {
    const entries = ["2026-12-06T20:00:00", "2026-12-06T22:00:00", "2026-12-06T21:00:00"].map((at) => ({
      at,
      actor: "a",
      action: "publish",
      detail: {},
    }));
    expect(newestFirst(entries).map((e) => e.at.slice(11, 13))).toEqual(["22", "21", "20"]);
  });
});
