// The canvas: derived from the document on every change; each gesture is an edit of the document.
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  applyNodeChanges,
  useReactFlow,
  type Edge,
  type Node,
  type NodeChange,
} from "@xyflow/react";
import { useCallback, useMemo, useRef, useState, type DragEvent } from "react";
import { decorateEdges, decorateNodes, keepUnchanged, sized } from "../canvasView";
import { importDropped } from "../importFile";
import { addNode, connect, disconnect, moveNodes, removeNode, specToGraph, type DpNodeData } from "../mapping";
import { designerStore, useDesigner } from "../store";
import { DpNode } from "./DpNode";
import { DRAG_TYPE } from "./Palette";

const NODE_TYPES = { dp: DpNode };

export function Canvas({ onSelect }: { onSelect: () => void }) {
  const doc = useDesigner((s) => s.doc)!;
  const types = useDesigner((s) => s.types);
  const check = useDesigner((s) => s.check);
  const run = useDesigner((s) => s.run);
  const selected = useDesigner((s) => s.selected);
  const { screenToFlowPosition, fitView } = useReactFlow();
  // While a node is dragged its position lives here; the document gets it when the drag ends.
  const [dragging, setDragging] = useState<Node<DpNodeData>[] | null>(null);
  // An opened flow is fitted into view once; an empty canvas keeps zoom 1 while nodes are dropped.
  const [fitOnOpen] = useState(doc.nodes.length > 0);

  const graph = useMemo(() => specToGraph(doc, types), [doc, types]);
  // What was drawn last: an edit hands xyflow the same objects for what it did not change.
  const drawn = useRef<{ nodes: Node<DpNodeData>[]; edges: Edge[] }>({ nodes: [], edges: [] });
  const nodes = useMemo(() => {
    const next = decorateNodes(graph.nodes, check, run).map((n) => sized({ ...n, selected: n.id === selected }));
    return (drawn.current.nodes = keepUnchanged(drawn.current.nodes, next));
  }, [graph, check, run, selected]);
  const edges = useMemo(
    () => (drawn.current.edges = keepUnchanged(drawn.current.edges, decorateEdges(graph.edges, check))),
    [graph, check],
  );
  const edit = designerStore.getState().edit;

  const onNodesChange = useCallback(
    (changes: NodeChange[]) => {
      const moving = changes.filter((c) => c.type === "position");
      if (moving.length === 0) return;
      setDragging((current) => applyNodeChanges(moving, current ?? nodes) as Node<DpNodeData>[]);
    },
    [nodes],
  );

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file && !event.dataTransfer.getData(DRAG_TYPE)) {
      const state = designerStore.getState();
      importDropped(file, doc.id, types).then(
        (imported) => {
          state.edit(() => imported);
          state.select(null);
          state.setStatus(`imported ${file.name}`);
          setTimeout(() => void fitView({ maxZoom: 1 }), 0); // once the imported nodes are drawn
        },
        (e: Error) => state.setStatus(`not imported: ${e.message}`),
      );
      return;
    }
    const type = event.dataTransfer.getData(DRAG_TYPE);
    const info = types[type];
    if (!info) return;
    const position = screenToFlowPosition({ x: event.clientX, y: event.clientY });
    let added = "";
    edit((d) => {
      const [next, id] = addNode(d, info, { x: Math.round(position.x), y: Math.round(position.y) });
      added = id;
      return next;
    });
    designerStore.getState().select(added);
    onSelect();
  };

  return (
    <div className="canvas" onDragOver={(e) => e.preventDefault()} onDrop={onDrop}>
      <ReactFlow
        nodes={dragging ?? nodes}
        edges={edges}
        nodeTypes={NODE_TYPES}
        onNodesChange={onNodesChange}
        onNodeDragStop={(_, __, moved) => {
          const positions = Object.fromEntries(moved.map((n) => [n.id, { x: Math.round(n.position.x), y: Math.round(n.position.y) }]));
          edit((d) => moveNodes(d, positions));
          setDragging(null);
        }}
        onConnect={(c) => edit((d) => connect(d, types, c))}
        onEdgesDelete={(gone: Edge[]) => edit((d) => gone.reduce((acc, e) => disconnect(acc, types, e), d))}
        onNodesDelete={(gone) => {
          edit((d) => gone.reduce((acc, n) => removeNode(acc, types, n.id), d));
          designerStore.getState().select(null);
        }}
        onNodeClick={(_, node) => {
          designerStore.getState().select(node.id);
          onSelect();
        }}
        onPaneClick={() => designerStore.getState().select(null)}
        onlyRenderVisibleElements
        fitView={fitOnOpen}
        fitViewOptions={{ maxZoom: 1 }}
        deleteKeyCode={["Delete", "Backspace"]}
      >
        <Background />
        <Controls />
        <MiniMap pannable zoomable />
      </ReactFlow>
    </div>
  );
}
