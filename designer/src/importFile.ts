// A file dropped on the canvas: a spec file, a React Flow export or a MAX DP designer JSON. The
// server reads it with the platform's spec loader (designer nodes unwrapped, edges folded into
// inputs, positions kept); the result becomes this flow's document, laid out when it has no
// positions. It is an ordinary edit: undo brings the canvas back, the autosave keeps the draft.
import { api } from "./api";
import { autoLayout } from "./autolayout";
import { moveNodes, type TypeMap } from "./mapping";
import type { FlowDocument } from "./types";

/** The 3 MB the server reads of a dropped file. */
export const MAX_IMPORT_BYTES = 3_000_000;

export function adoptImported(imported: FlowDocument, flowId: string, types: TypeMap): FlowDocument {
  const document: FlowDocument = { ...imported, id: flowId, nodes: imported.nodes ?? [] };
  const placed = Object.keys(document.layout ?? {}).length > 0;
  return placed || document.nodes.length === 0 ? document : moveNodes(document, autoLayout(document, types));
}

export async function importDropped(file: File, flowId: string, types: TypeMap): Promise<FlowDocument> {
  if (file.size > MAX_IMPORT_BYTES) throw new Error(`${file.name} is larger than ${MAX_IMPORT_BYTES} bytes`);
  const { document } = await api.importFile(await file.text(), file.name);
  return adoptImported(document, flowId, types);
}
