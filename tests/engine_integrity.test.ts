/**
 * Artifact integrity: every cached artifact is checked against its manifest before it is reused. A
 * truncated, altered, missing or extra file (or an unreadable manifest) is detected, reported with the
 * file it concerns, moved aside for inspection and recomputed; the recomputed artifact is correct.
 * Working directories: a non-resumable step never reuses what a crashed attempt left; a resumable one
 * keeps its files but drops the temporary files of interrupted writes.
 */
import { Effect } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { runPipeline } from "../src/engine/runner.ts";
import { ArtifactStore, MANIFEST, verify } from "../src/engine/store.ts";
import { silentReporter } from "../src/engine/progress.ts";
import { listFiles } from "../src/io/fs.ts";
import { count, upper } from "./engine_test_helpers.ts";

const build = (file: string) => {
  const p = new PipelineBuilder("toy");
  const text = p.source("text", file);
  const up = p.add("up", upper, { suffix: "!" }, { text });
  p.add("count", count, { scale: 1 }, { upper: up });
  return p.build();
};

const run = async (dir: string, file: string) => {
  const lines: string[] = [];
  const result = await Effect.runPromise(runPipeline(build(file), {
    store: new ArtifactStore(`${dir}/artifacts`),
    reporter: silentReporter(lines),
    backend: "none",
  }));
  return { result, lines, statuses: result.records.map((r) => `${r.name}:${r.status}`) };
};

const setup = async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/in.txt`;
  await Deno.writeTextFile(file, "hello world");
  const first = await run(dir, file);
  return { dir, file, up: first.result.outputs.get("up")! };
};

const damages: Array<{ name: string; damage: (artifact: string) => Promise<void>; reason: RegExp }> = [
  {
    name: "truncated file",
    damage: async (a) => await Deno.truncate(`${a}/out.txt`, 3),
    reason: /file out\.txt does not match its digest/,
  },
  {
    name: "flipped byte",
    damage: async (a) => {
      const bytes = await Deno.readFile(`${a}/out.txt`);
      bytes[4] ^= 0x01;
      await Deno.writeFile(`${a}/out.txt`, bytes);
    },
    reason: /file out\.txt does not match its digest/,
  },
  {
    name: "missing file",
    damage: async (a) => await Deno.remove(`${a}/out.txt`),
    reason: /file out\.txt is missing/,
  },
  {
    name: "extra file",
    damage: async (a) => await Deno.writeTextFile(`${a}/stray.txt`, "?"),
    reason: /unexpected file stray\.txt/,
  },
  {
    name: "manifest cut short",
    damage: async (a) => await Deno.truncate(`${a}/${MANIFEST}`, 20),
    reason: /manifest unreadable/,
  },
];

for (const { name, damage, reason } of damages) {
  Deno.test(`integrity: ${name} is detected, reported, kept aside and recomputed`, async () => {
    const { dir, file, up } = await setup();
    await damage(up);
    const check = await verify(up);
    assert(typeof check === "string" && reason.test(check), `verify said: ${JSON.stringify(check)}`);

    const again = await run(dir, file);
    // Only the damaged node reruns; its output is byte-identical, so what depends on it stays cached.
    assertEquals(again.statuses, ["up:ran", "count:cached"]);
    assert(again.lines.some((l) => l.includes("corrupt") && reason.test(l)), again.lines.join("\n"));
    assertEquals(await Deno.readTextFile(`${up}/out.txt`), "HELLO WORLD!");
    assertEquals(typeof await verify(up), "object");
    const aside = (await Array.fromAsync(Deno.readDir(`${dir}/artifacts/upper`))).map((e) => e.name);
    assertEquals(aside.filter((n) => n.includes(".corrupt-")).length, 1, aside.join(", "));
  });
}

Deno.test("integrity: a non-resumable step's leftover working directory is wiped, not reused", async () => {
  const { dir, file, up } = await setup();
  // As if a run had been killed while recomputing `up`: a half-filled working directory.
  await Deno.remove(up, { recursive: true });
  await Deno.mkdir(`${up}.partial`);
  await Deno.writeTextFile(`${up}.partial/out.txt`, "HALF");
  await Deno.writeTextFile(`${up}.partial/junk.bin`, "x");
  const again = await run(dir, file);
  assertEquals(again.statuses, ["up:ran", "count:cached"]);
  const files = await listFiles(up);
  assert(!files.includes("junk.bin") && files.includes("out.txt"), files.join(", "));
  assertEquals(await Deno.readTextFile(`${up}/out.txt`), "HELLO WORLD!");
});

Deno.test("integrity: a resumable working directory keeps its files, minus interrupted writes", async () => {
  const dir = await Deno.makeTempDir();
  const store = new ArtifactStore(dir);
  const partial = store.partialDir("train", "k1");
  await Deno.mkdir(`${partial}/checkpoints`, { recursive: true });
  await Deno.writeTextFile(`${partial}/checkpoints/LATEST`, "step-0000002");
  await Deno.writeTextFile(`${partial}/train_log.jsonl.4242.0a1b2c3d.tmp`, "half");
  await Deno.writeTextFile(`${partial}/${MANIFEST}`, "{");
  const work = await Effect.runPromise(store.begin("train", "k1", true));
  assertEquals(work.resumed, true);
  assertEquals(await listFiles(partial), ["checkpoints/LATEST"]);

  // Nothing but interrupted writes: nothing to resume from.
  const only = store.partialDir("train", "k2");
  await Deno.mkdir(only, { recursive: true });
  await Deno.writeTextFile(`${only}/model.safetensors.4242.0a1b2c3d.tmp`, "half");
  assertEquals((await Effect.runPromise(store.begin("train", "k2", true))).resumed, false);
  assertEquals(await listFiles(only), []);
});

Deno.test("integrity: committing over an existing artifact replaces it whole and leaves nothing aside", async () => {
  const dir = await Deno.makeTempDir();
  const store = new ArtifactStore(dir);
  const meta = { step: "s", version: 1, key: "k", node: "n", seconds: 0 };
  for (const text of ["first", "second"]) {
    const work = await Effect.runPromise(store.begin("s", "k", false));
    await Deno.writeTextFile(`${work.dir}/out.txt`, text);
    await Effect.runPromise(store.commit(meta));
  }
  assertEquals(await Deno.readTextFile(`${store.dir("s", "k")}/out.txt`), "second");
  assertEquals((await Array.fromAsync(Deno.readDir(`${dir}/s`))).map((e) => e.name), ["k"]);
});
