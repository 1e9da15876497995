/**
 * The import graph of src/ and pipelines/ runs one way: cli > pipelines > steps >
 * report/train/data/model/engine > backend/io/util > errors. A module never imports one from a higher
 * layer, and a step (a module of src/steps that defines one) never imports another step: what steps share
 * lives in src/steps/ modules that define no step (shared.ts, self_generation.ts).
 */
import { assert, assertEquals } from "./assert.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

const LAYERS: ReadonlyArray<[prefix: string, rank: number]> = [
  ["src/cli/", 6],
  ["pipelines/", 5],
  ["src/steps/", 4],
  ["src/report/", 3],
  ["src/train/", 3],
  ["src/data/", 3],
  ["src/model/", 3],
  ["src/engine/", 3],
  ["src/backend/", 2],
  ["src/io/", 2],
  ["src/util/", 2],
  ["src/errors.ts", 1],
];

const layerOf = (file: string): number | undefined => LAYERS.find(([p]) => file.startsWith(p))?.[1];

const walk = async (dir: string, out: string[] = []): Promise<string[]> => {
  for await (const e of Deno.readDir(`${root}/${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) await walk(path, out);
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out;
};

/** Relative specifiers of static imports, re-exports and dynamic imports. */
const importsOf = (source: string): string[] => {
  const found: string[] = [];
  for (const m of source.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) found.push(m[1]);
  return found;
};

const resolve = (from: string, spec: string): string => {
  const parts = from.split("/").slice(0, -1);
  for (const p of spec.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== ".") parts.push(p);
  }
  return parts.join("/");
};

const isStep = (source: string) => /\bdefineStep\s*\(/.test(source);

/** Every offending edge, as "importer -> imported (why)". */
const violations = async (): Promise<string[]> => {
  const files = [...await walk("src"), ...await walk("pipelines")];
  const sources = new Map(
    await Promise.all(files.map(async (f) => [f, await Deno.readTextFile(`${root}/${f}`)] as const)),
  );
  const bad: string[] = [];
  for (const [file, source] of sources) {
    const from = layerOf(file);
    assert(
      from !== undefined,
      `${file} belongs to no layer: add its folder to LAYERS and docs/architecture.md`,
    );
    for (const spec of importsOf(source)) {
      const target = resolve(file, spec);
      const to = layerOf(target);
      if (to === undefined) continue; // outside src/ and pipelines/ (fixtures' URLs, not code)
      if (to > from) bad.push(`${file} -> ${target} (layer ${from} imports layer ${to})`);
      if (
        file.startsWith("src/steps/") && target.startsWith("src/steps/") && isStep(source) &&
        isStep(sources.get(target) ?? "")
      ) bad.push(`${file} -> ${target} (a step imports another step)`);
    }
  }
  return bad;
};

Deno.test("architecture: no import runs up the layers and no step imports another step", async () => {
  assertEquals(await violations(), []);
});

Deno.test("architecture: the check sees an upward import and a step importing a step", () => {
  // The parser the check relies on, on the shapes of import it must catch.
  assertEquals(
    importsOf(
      `import { a } from "../cli/run.ts";\nexport * from "./x.ts";\nconst m = await import("../steps/train.ts");`,
    ),
    ["../cli/run.ts", "./x.ts", "../steps/train.ts"],
  );
  assertEquals(resolve("src/model/generate.ts", "../cli/run.ts"), "src/cli/run.ts");
  assert(layerOf(resolve("src/model/generate.ts", "../cli/run.ts"))! > layerOf("src/model/generate.ts")!);
  assert(isStep("export const s = defineStep({"));
  assert(!isStep("export const modelDirOf = 1;"));
});
