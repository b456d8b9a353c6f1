// Bundles one entry per console page plus the chunks they share into
// lumina/ui/static/console/, and writes manifest.json: per page, every file it loads.
import { writeFileSync, rmSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(here, "../lumina/ui/static/console");
export const PAGES = ["login", "dashboard", "playground", "providers", "tokens", "tools", "memory", "documents"];

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

const result = await esbuild.build({
  entryPoints: [...PAGES.map((page) => `src/${page}.js`), "src/console.css"],
  absWorkingDir: here,
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  target: ["es2022"],
  minify: true,
  legalComments: "linked",
  chunkNames: "chunks/[name]-[hash]",
  metafile: true,
  logLevel: "warning",
});

// Which files a page loads: its entry and, transitively, the chunks it imports.
const outputs = result.metafile.outputs;
const loads = (file, seen = new Set()) => {
  if (seen.has(file)) return seen;
  seen.add(file);
  for (const imported of outputs[file].imports) {
    if (imported.kind === "import-statement") loads(imported.path, seen);
  }
  return seen;
};
const manifest = {};
for (const [file, output] of Object.entries(outputs)) {
  if (!output.entryPoint || !output.entryPoint.endsWith(".js")) continue;
  const page = path.basename(output.entryPoint, ".js");
  manifest[page] = [...loads(file)].map((f) => path.relative(outdir, path.resolve(here, f)));
}
writeFileSync(path.join(outdir, "manifest.json"), JSON.stringify(manifest, null, 2));
