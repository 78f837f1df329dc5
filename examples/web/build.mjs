// Builds the app into dist/: one bundled, minified ES module plus the page and its stylesheet.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";

const out = new URL("./dist/", import.meta.url);
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [new URL("./src/main.ts", import.meta.url).pathname],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  outfile: new URL("app.js", out).pathname,
  logLevel: "warning",
});
for (const file of ["index.html", "styles.css"]) {
  await copyFile(new URL(`./src/${file}`, import.meta.url), new URL(file, out));
}
console.log(`built ${out.pathname}`);
