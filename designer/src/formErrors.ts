// The server's errors of one node as the form's extra errors: "params.agg.total" is shown on the
// field agg.total of the params form.
import type { ErrorSchema } from "@rjsf/utils";
import type { CheckResult } from "./types";

export function paramErrors(check: CheckResult | null, nodeId: string): ErrorSchema {
  const root: Record<string, unknown> = {};
  for (const error of check?.errors ?? []) {
    if (error.node !== nodeId || !error.field.startsWith("params")) continue;
    const path = error.field.replace(/^params\.?/, "").split(/[.[\]]+/).filter(Boolean);
    let at = root;
    for (const part of path) at = (at[part] ??= {}) as Record<string, unknown>;
    ((at.__errors ??= []) as string[]).push(error.message);
  }
  return root as ErrorSchema;
}
