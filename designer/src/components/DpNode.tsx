// A node on the canvas: its id and type, one target handle per named input (JoinMerge's left and
// right are two handles), one source handle per output; coloured by errors and by the run.
import { Handle, Position, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import type { DpNodeData } from "../mapping";

type Data = DpNodeData & { state?: string; errors?: string[] };

function offsets(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${((i + 1) * 100) / (count + 1)}%`);
}

// Memoised: an edit re-renders the nodes it changed (Canvas hands xyflow the others' objects as before).
export const DpNode = memo(function DpNode({ id, data, selected }: NodeProps) {
  const d = data as Data;
  const inTops = offsets(d.inputHandles.length);
  const outTops = offsets(d.outputHandles.length);
  return (
    <div
      className={`dp-node state-${d.state ?? "ok"}${selected ? " selected" : ""}`}
      data-testid={`node-${id}`}
      data-state={d.state ?? "ok"}
      title={(d.errors ?? []).join("\n")}
    >
      {d.inputHandles.map((h, i) => (
        <Handle key={h} type="target" position={Position.Left} id={h} style={{ top: inTops[i] }}>
          {d.inputHandles.length > 1 && <span className="handle-label in">{h}</span>}
        </Handle>
      ))}
      <div className="dp-node-id">{d.label}</div>
      <div className="dp-node-type">{d.nodeType}</div>
      {(d.errors ?? []).length > 0 && <div className="dp-node-errors">{d.errors!.length} error(s)</div>}
      {d.outputHandles.map((h, i) => (
        <Handle key={h} type="source" position={Position.Right} id={h} style={{ top: outTops[i] }}>
          {d.outputHandles.length > 1 && <span className="handle-label out">{h}</span>}
        </Handle>
      ))}
    </div>
  );
});
