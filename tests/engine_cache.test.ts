import { assert, assertEquals, assertRejects, assertThrows } from "./assert.ts";
import { Effect } from "effect";
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { pipelineStatus, runPipeline, sourceDigest } from "../src/engine/runner.ts";
import { TOKENIZER_COMPANIONS } from "../src/data/tokenizer.ts";
import { ArtifactStore } from "../src/engine/store.ts";
import { silentReporter } from "../src/engine/progress.ts";
import { PipelineInvalid } from "../src/errors.ts";
import { count, runs, upper } from "./engine_test_helpers.ts";

const build = (file: string, suffix: string, scale: number) => {
  const p = new PipelineBuilder("toy");
  const text = p.source("text", file);
  const up = p.add("up", upper, { suffix }, { text });
  p.add("count", count, { scale }, { upper: up });
  return p.build();
};

const run = (dir: string, pipeline: ReturnType<typeof build>, force: string[] = []) =>
  Effect.runPromise(runPipeline(pipeline, {
    store: new ArtifactStore(`${dir}/artifacts`),
    reporter: silentReporter(),
    backend: "none",
    force,
  }));

const statuses = (r: Awaited<ReturnType<typeof run>>) => r.records.map((x) => `${x.name}:${x.status}`);

Deno.test("cache: rerun is cached; a config change reruns only that node and what depends on it", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/in.txt`;
  await Deno.writeTextFile(file, "hello");
  runs.upper = 0;
  runs.count = 0;
  assertEquals(statuses(await run(dir, build(file, "!", 1))), ["up:ran", "count:ran"]);
  assertEquals(statuses(await run(dir, build(file, "!", 1))), ["up:cached", "count:cached"]);
  // Only the downstream config changes: upstream stays cached.
  assertEquals(statuses(await run(dir, build(file, "!", 2))), ["up:cached", "count:ran"]);
  // Upstream config changes: both rerun.
  assertEquals(statuses(await run(dir, build(file, "?", 2))), ["up:ran", "count:ran"]);
  // Input data changes: both rerun.
  await Deno.writeTextFile(file, "hello world");
  assertEquals(statuses(await run(dir, build(file, "?", 2))), ["up:ran", "count:ran"]);
  assertEquals(runs, { upper: 3, count: 4 });
  // Forcing a node whose output is identical does not invalidate what follows (content addressing).
  assertEquals(statuses(await run(dir, build(file, "?", 2), ["up"])), ["up:ran", "count:cached"]);
});

const root = new URL("..", import.meta.url).pathname;

/**
 * Runs the toy pipeline in a separate deno process on store `storeDir` and input `file`; returns each
 * node's name, status and key as that process saw them.
 */
const runInProcess = async (storeDir: string, file: string) => {
  const code = `import { Effect } from "effect";
import { PipelineBuilder } from "${root}/src/engine/pipeline.ts";
import { runPipeline } from "${root}/src/engine/runner.ts";
import { ArtifactStore } from "${root}/src/engine/store.ts";
import { silentReporter } from "${root}/src/engine/progress.ts";
import { count, upper } from "${root}/tests/engine_test_helpers.ts";
const p = new PipelineBuilder("toy");
const text = p.source("text", ${JSON.stringify(file)});
const up = p.add("up", upper, { suffix: "!" }, { text });
p.add("count", count, { scale: 1 }, { upper: up });
const r = await Effect.runPromise(runPipeline(p.build(), {
  store: new ArtifactStore(${JSON.stringify(`${storeDir}/artifacts`)}),
  reporter: silentReporter(),
  backend: "none",
}));
console.log(JSON.stringify({ pid: Deno.pid, records: r.records.map((x) => ({ name: x.name, status: x.status, key: x.key })) }));`;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code], cwd: root, stdout: "piped" })
    .output();
  assert(out.success, `child process exited with ${out.code}`);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as {
    pid: number;
    records: Array<{ name: string; status: string; key: string }>;
  };
};

Deno.test("cache: keys are stable across processes (canonical config, content digests)", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/in.txt`, "abc");
  // Two processes on one store: the second finds everything the first computed.
  const first = await runInProcess(dir, `${dir}/in.txt`);
  const second = await runInProcess(dir, `${dir}/in.txt`);
  assert(first.pid !== second.pid && first.pid !== Deno.pid);
  assertEquals(first.records.map((r) => `${r.name}:${r.status}`), ["up:ran", "count:ran"]);
  assertEquals(second.records.map((r) => `${r.name}:${r.status}`), ["up:cached", "count:cached"]);
  assertEquals(second.records.map((r) => r.key), first.records.map((r) => r.key));
  // A third process, another store, the same content at another path: the same keys (content digests).
  const dir2 = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir2}/other-name.txt`, "abc");
  const elsewhere = await runInProcess(dir2, `${dir2}/other-name.txt`);
  assertEquals(elsewhere.records.map((r) => `${r.name}:${r.status}`), ["up:ran", "count:ran"]);
  assertEquals(elsewhere.records.map((r) => r.key), first.records.map((r) => r.key));
  // And this process, on the first store: cached under the same keys.
  const here = await run(dir, build(`${dir}/in.txt`, "!", 1));
  assertEquals(statuses(here), ["up:cached", "count:cached"]);
  await Promise.all([dir, dir2].map((d) => Deno.remove(d, { recursive: true })));
});

Deno.test("cache: a corrupted artifact is detected, reported and recomputed", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/in.txt`;
  await Deno.writeTextFile(file, "hello");
  const first = await run(dir, build(file, "!", 1));
  const upDir = first.outputs.get("up")!;
  await Deno.writeTextFile(`${upDir}/out.txt`, "HELLO?"); // flipped content
  const lines: string[] = [];
  const again = await Effect.runPromise(runPipeline(build(file, "!", 1), {
    store: new ArtifactStore(`${dir}/artifacts`),
    reporter: silentReporter(lines),
    backend: "none",
  }));
  assertEquals(again.records[0].status, "ran");
  assertEquals(lines.some((l) => l.includes("corrupt") && l.includes("out.txt")), true);
  assertEquals(await Deno.readTextFile(`${again.outputs.get("up")}/out.txt`), "HELLO!");
});

Deno.test("status: reports cached and pending nodes without running anything", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/in.txt`;
  await Deno.writeTextFile(file, "x");
  const store = new ArtifactStore(`${dir}/artifacts`);
  const before = await Effect.runPromise(pipelineStatus(build(file, "!", 1), store));
  assertEquals(before.map((s) => s.state), ["pending", "blocked"]);
  await run(dir, build(file, "!", 1));
  const after = await Effect.runPromise(pipelineStatus(build(file, "!", 1), store));
  assertEquals(after.map((s) => s.state), ["cached", "cached"]);
});

Deno.test("pipeline: cycles, unknown inputs and duplicate names are rejected", () => {
  const p = new PipelineBuilder("bad");
  const t = p.source("text", "/nonexistent");
  p.add("up", upper, { suffix: "" }, { text: t });
  p.add("up", upper, { suffix: "" }, { text: t });
  assertThrows(() => p.build(), PipelineInvalid, "defined twice");
  const q = new PipelineBuilder("missing");
  q.add("count", count, { scale: 1 }, { upper: { node: "nowhere" } });
  assertThrows(() => q.build(), PipelineInvalid, "unknown node");
});

Deno.test("runner: a missing source file is a FileUnreadable naming the path", async () => {
  const dir = await Deno.makeTempDir();
  await assertRejects(() => run(dir, build(`${dir}/missing.txt`, "!", 1)), Error, "missing.txt");
});

Deno.test("cache: a source's companions (a tokenizer's config beside it) are part of its digest", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/tokenizer.json`, '{"model": {}}');
  const digest = () => Effect.runPromise(sourceDigest(`${dir}/tokenizer.json`, TOKENIZER_COMPANIONS));
  const alone = await digest();
  // Without companions named, the digest is the file's own sha256 (data files keep their keys).
  const bytes = await Deno.readFile(`${dir}/tokenizer.json`);
  const hex = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "{}");
  assertEquals(await Effect.runPromise(sourceDigest(`${dir}/tokenizer.json`)), hex);
  await Deno.remove(`${dir}/tokenizer_config.json`);
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, '{"eos_token": "<a>"}');
  const withConfig = await digest();
  assert(withConfig !== alone, "adding tokenizer_config.json must change the digest");
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, '{"eos_token": "<b>"}');
  assert((await digest()) !== withConfig, "editing tokenizer_config.json must change the digest");
  await Deno.writeTextFile(`${dir}/chat_template.jinja`, "{{ messages }}");
  const withTemplate = await digest();
  assert(withTemplate !== withConfig);
  // Files the loader never reads do not matter.
  await Deno.writeTextFile(`${dir}/notes.txt`, "x");
  assertEquals(await digest(), withTemplate);
  await Deno.remove(dir, { recursive: true });
});
