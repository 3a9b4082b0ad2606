// A node's value as a table (first rows, columns with their dtype) or as JSON.
import type { NodeOutput } from "../api";

export function ValueView({ value, caption, testId }: { value: NodeOutput; caption: string; testId?: string }) {
  if (value.kind === "skipped") return <p data-testid={testId}>Skipped ({caption}).</p>;
  if (value.kind !== "table")
    return (
      <div data-testid={testId}>
        <p>{caption}</p>
        <pre>{JSON.stringify(value.value, null, 2)}</pre>
      </div>
    );
  const columns = value.columns ?? [];
  return (
    <div className="preview" data-testid={testId}>
      <p>
        {value.row_count} rows, {columns.length} columns ({caption})
      </p>
      <table>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.name} title={c.dtype}>
                {c.name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {(value.rows ?? []).map((row, i) => (
            <tr key={i}>
              {columns.map((c) => (
                <td key={c.name}>{String(row[c.name] ?? "")}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
