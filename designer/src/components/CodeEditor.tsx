// The spec as YAML beside the canvas (CodeMirror 6, completion and errors from the flow's JSON
// Schema): typing edits the document; a change made on the canvas replaces the text.
import { EditorView, basicSetup } from "codemirror";
import { yaml } from "@codemirror/lang-yaml";
import { Annotation } from "@codemirror/state";
import { yamlSchema } from "codemirror-json-schema/yaml";
import { useEffect, useRef, useState } from "react";
import { parseSpecText, specText } from "../yamlSync";
import { designerStore, useDesigner } from "../store";

/** Marks the editor's own replacements of its text, which are not edits of the user's. */
const external = Annotation.define<boolean>();

export function CodeEditor() {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const doc = useDesigner((s) => s.doc)!;
  const schema = useDesigner((s) => s.catalog!.flow_schema);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    const editor = new EditorView({
      parent: host.current!,
      doc: specText(designerStore.getState().doc!),
      extensions: [
        basicSetup,
        yaml(),
        yamlSchema(schema as never),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged || update.transactions.every((t) => t.annotation(external) === true)) return;
          const parsed = parseSpecText(update.state.doc.toString());
          setProblem(parsed.error);
          if (parsed.spec) designerStore.getState().edit((d) => ({ ...parsed.spec!, layout: d.layout }) as typeof d);
        }),
      ],
    });
    view.current = editor;
    return () => editor.destroy();
  }, [schema]);

  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    const shown = parseSpecText(editor.state.doc.toString()).spec;
    const text = specText(doc);
    if (shown && specText({ ...shown, layout: doc.layout } as typeof doc) === text) return; // same spec
    if (!shown && editor.hasFocus) return; // being typed: leave the half-written text alone
    editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: text }, annotations: external.of(true) });
  }, [doc]);

  return (
    <div className="code">
      {problem && <p className="error">{problem}</p>}
      <div ref={host} data-testid="code-editor" />
    </div>
  );
}
