// The settings page (#/settings): who the designer takes you for and the roles you hold; for an
// admin of a place, its grants with revoke, and a form to give a role there.
import { useCallback, useEffect, useState } from "react";
import { api } from "../api";
import {
  type GrantForm,
  type GrantRow,
  KINDS,
  type Me,
  ROLES,
  administers,
  grantBody,
  grantFormErrors,
  placeOf,
  sortGrants,
} from "../roles";

function GrantTable({ grants, onRevoke }: { grants: GrantRow[]; onRevoke?: (g: GrantRow) => void }) {
  if (grants.length === 0) return <p>None.</p>;
  return (
    <table className="grants">
      <thead>
        <tr>
          <th>who</th>
          <th>role</th>
          <th>where</th>
          {onRevoke && <th />}
        </tr>
      </thead>
      <tbody>
        {sortGrants(grants).map((g) => (
          <tr key={`${g.kind}:${g.name}@${g.workspace}/${g.flow ?? ""}`} data-testid={`grant-${g.kind}-${g.name}`}>
            <td>
              {g.kind} <b>{g.name}</b>
            </td>
            <td>{g.role}</td>
            <td>{placeOf(g)}</td>
            {onRevoke && (
              <td>
                <button onClick={() => onRevoke(g)}>Revoke</button>
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const EMPTY_FORM: GrantForm = { kind: "user", name: "", workspace: "", flow: "", role: "viewer" };

function GrantFormView({ onGranted }: { onGranted: (g: GrantRow) => void }) {
  const [form, setForm] = useState<GrantForm>(EMPTY_FORM);
  const [tried, setTried] = useState(false);
  const [refused, setRefused] = useState<string | null>(null);
  const errors = grantFormErrors(form);
  const set = (field: keyof GrantForm) => (e: { target: { value: string } }) =>
    setForm({ ...form, [field]: e.target.value });
  const submit = async () => {
    setTried(true);
    setRefused(null);
    if (Object.keys(errors).length) return;
    try {
      onGranted(await api.grant(grantBody(form)));
      setForm({ ...EMPTY_FORM, workspace: form.workspace });
      setTried(false);
    } catch (e) {
      setRefused((e as Error).message); // the server's 4xx message, as it names the field
    }
  };
  const shown = (field: keyof GrantForm) =>
    tried && errors[field] ? <span className="error" data-testid={`grant-error-${field}`}>{errors[field]}</span> : null;
  const text = (field: "name" | "workspace" | "flow", placeholder?: string) => (
    <label>
      {field}{" "}
      <input aria-label={`grant ${field}`} placeholder={placeholder} value={form[field]} onChange={set(field)} />{" "}
      {shown(field)}
    </label>
  );
  const choice = (field: "kind" | "role", options: readonly string[]) => (
    <label>
      {field}{" "}
      <select aria-label={`grant ${field}`} value={form[field]} onChange={set(field)}>
        {options.map((option) => (
          <option key={option}>{option}</option>
        ))}
      </select>
    </label>
  );
  return (
    <form
      className="grant-form"
      data-testid="grant-form"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      {choice("kind", KINDS)}
      {text("name")}
      {text("workspace", "sales or *")}
      {text("flow", "(whole workspace)")}
      {choice("role", ROLES)}
      <button type="submit">Grant</button>
      {refused && (
        <p className="error" data-testid="grant-refused">
          {refused}
        </p>
      )}
    </form>
  );
}

export function Settings() {
  const [me, setMe] = useState<Me | null>(null);
  const [grants, setGrants] = useState<GrantRow[]>([]);
  const [error, setError] = useState<string | null>(null);
  const reload = useCallback(async () => {
    try {
      const who = await api.me();
      setMe(who);
      setGrants(administers(who) ? (await api.roles()).grants : []);
    } catch (e) {
      setError((e as Error).message);
    }
  }, []);
  useEffect(() => {
    void reload();
  }, [reload]);
  const revoke = async (g: GrantRow) => {
    setError(null);
    try {
      await api.revoke(g);
    } catch (e) {
      setError((e as Error).message);
    }
    await reload();
  };
  return (
    <div className="home settings">
      <p>
        <a href="#/">← Flows</a>
      </p>
      <h1>Settings</h1>
      {error && <p className="error">{error}</p>}
      {me === null ? (
        !error && <p>Loading…</p>
      ) : (
        <>
          <p data-testid="signed-in-as">
            Signed in as <b>{me.local_admin ? "the local admin (roles are off)" : me.label}</b>
            {me.groups.length > 0 && <> in groups {me.groups.join(", ")}</>}
          </p>
          <h2>Your roles</h2>
          <div data-testid="my-grants">
            {me.local_admin ? <p>Every role everywhere: this designer runs without roles.</p> : <GrantTable grants={me.grants} />}
          </div>
          {administers(me) && (
            <>
              <h2>Roles you administer</h2>
              <div data-testid="administered-grants">
                <GrantTable grants={grants} onRevoke={(g) => void revoke(g)} />
              </div>
              <h3>Give a role</h3>
              <GrantFormView onGranted={() => void reload()} />
            </>
          )}
        </>
      )}
    </div>
  );
}
