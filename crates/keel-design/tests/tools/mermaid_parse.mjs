// Parse every ```mermaid block of the Markdown files given as arguments with the
// real Mermaid parser (in a jsdom window, since Mermaid expects a browser).
// Exit 1 with the failing block when one does not parse.
import { JSDOM } from "jsdom";
import { readFileSync } from "node:fs";

const dom = new JSDOM("<!doctype html><html><body></body></html>", { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
for (const k of ["Element", "HTMLElement", "SVGElement", "Node", "DOMParser", "navigator", "getComputedStyle"]) {
  if (!(k in globalThis)) globalThis[k] = dom.window[k];
}
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

let count = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf8");
  const blocks = [...text.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1]);
  if (blocks.length === 0) {
    console.error(`${file}: no mermaid blocks`);
    failed++;
  }
  for (const block of blocks) {
    count++;
    try {
      const r = await mermaid.parse(block);
      if (!r) throw new Error("not recognised");
    } catch (e) {
      failed++;
      console.error(`${file}: mermaid block does not parse: ${e?.message ?? e}\n${block}`);
    }
  }
}
console.log(`mermaid: ${count} blocks, ${failed} failures`);
process.exit(failed ? 1 : 0);
