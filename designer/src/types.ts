// The shapes the designer's API (dp_designer) answers with; a spec is the platform's flow spec.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface NodeSpec {
  id: string;
  type: string;
  inputs?: string | string[] | Record<string, string>;
  params?: Record<string, Json>;
  [key: string]: unknown;
}

export interface Position {
  x: number;
  y: number;
}

/** A flow spec plus the designer's `layout` section (node positions, not part of the version). */
export interface FlowDocument {
  id: string;
  nodes: NodeSpec[];
  layout?: Record<string, Position>;
  [key: string]: unknown;
}

export interface NodeTypeInfo {
  name: string;
  category: string;
  description: string;
  docs: string;
  inputs: { names: string[]; variadic: boolean; min_count: number };
  outputs: string[];
  side_effects: boolean;
  params_schema: Record<string, unknown>;
  example: NodeSpec | null;
}

export interface CatalogInfo {
  groups: { name: string; label: string; types: NodeTypeInfo[] }[];
  flow_schema: Record<string, unknown>;
}

export interface SpecError {
  node: string | null;
  field: string;
  message: string;
  edges?: { source: string; target: string }[];
  text?: string;
}

export interface CheckResult {
  valid: boolean;
  version: string | null;
  errors: SpecError[];
  schemas: Record<string, Record<string, string>>;
  /** File sources whose columns were read from their files (no `columns` declared). */
  read_from_files?: string[];
  /** Why a file source's columns could not be read (a missing file while drawing). */
  notes?: { node: string; message: string }[];
}

export interface VersionInfo {
  version: string;
  message: string;
  author: string | null;
  created_at: string;
  published: boolean;
}

export interface FlowRow {
  id: string;
  state: string;
  published_version: string | null;
  latest_version: string | null;
  versions: number;
  draft: boolean;
  last_run_status: string | null;
  errors: string[];
}

export interface RunState {
  run_id: string;
  status: string;
  succeeded: string[];
  links: Record<string, string>;
}
