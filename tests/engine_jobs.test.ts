/**
 * The scheduler (src/engine/runner.ts; `--jobs N`): nodes start as soon as their inputs are
 * done, never more than N at once; two nodes that are the same work (the same key) compute once; after a
 * failure nothing new starts, what was running finishes and stays cached, and the failure is reported.
 * (Worker threads and their bit-identical results: tests/cli_jobs.test.ts.)
 */
import { Effect, Exit, Schema } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { runPipeline, StepFailed } from "../src/engine/runner.ts";
import { defineStep } from "../src/engine/step.ts";
import { ArtifactStore } from "../src/engine/store.ts";
import { silentReporter } from "../src/engine/progress.ts";
import { InvalidConfig } from "../src/errors.ts";

/** What the toy step saw: how many ran at once, at most, and which ids computed, in start order. */
const seen = { active: 0, maxActive: 0, started: [] as string[], ended: [] as string[] };
const reset = () => Object.assign(seen, { active: 0, maxActive: 0, started: [], ended: [] });

/**
 * Sleeps `ms`, writes its id and its input's text; fails when told to (after `ms`). With `company` it first
 * waits (up to 5 s) until that many naps run at once, with `outlive` until the nap of that id has ended:
 * order asserted without racing the clock of a loaded machine (a scheduler that never runs them together
 * makes the test slow and fail, not pass).
 */
const nap = defineStep({
  name: "nap",
  version: 1,
  description: "sleeps, then writes its id after its input's",
  config: Schema.Struct({
    id: Schema.String,
    ms: Schema.Number,
    fail: Schema.optional(Schema.Boolean),
    company: Schema.optional(Schema.Number),
    outlive: Schema.optional(Schema.String),
  }),
  inputs: ["after"] as const,
  optionalInputs: ["after"],
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      seen.active++;
      seen.maxActive = Math.max(seen.maxActive, seen.active);
      seen.started.push(config.id);
      const until = Date.now() + 5000;
      const waiting = () =>
        (config.company !== undefined && seen.active < config.company) ||
        (config.outlive !== undefined && !seen.ended.includes(config.outlive));
      while (waiting() && Date.now() < until) {
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)));
      }
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, config.ms)));
      seen.active--;
      seen.ended.push(config.id);
      if (config.fail) return yield* new InvalidConfig({ where: config.id, reason: "told to fail" });
      const before = inputs.after
        ? yield* Effect.promise(() => Deno.readTextFile(`${inputs.after}/out.txt`))
        : "";
      yield* Effect.promise(() => Deno.writeTextFile(`${ctx.dir}/out.txt`, `${before}${config.id};`));
    }),
});

const run = (dir: string, p: ReturnType<PipelineBuilder["build"]>, jobs: number, lines: string[] = []) =>
  Effect.runPromiseExit(runPipeline(p, {
    store: new ArtifactStore(`${dir}/artifacts`),
    reporter: silentReporter(lines),
    backend: "none",
    jobs,
  }));

Deno.test("jobs: one job runs the nodes strictly in pipeline order, cached ones included", async () => {
  const dir = await Deno.makeTempDir();
  const build = (slowId: string) => {
    const p = new PipelineBuilder("line");
    p.add("slow", nap, { id: slowId, ms: 40 }, {});
    p.add("quick", nap, { id: "quick", ms: 1 }, {});
    return p.build();
  };
  reset();
  assert(Exit.isSuccess(await run(dir, build("slow"), 1)));
  // "quick" is cached now; "slow" gets a new key. With free cores the cached node could be taken while
  // "slow" computes; with one job nothing is taken ahead of a node waiting to run.
  reset();
  const lines: string[] = [];
  const again = await run(dir, build("slow2"), 1, lines);
  assert(Exit.isSuccess(again));
  assertEquals(seen.started, ["slow2"]);
  assertEquals(lines.map((l) => l.replace(/ (in|\().*$/, "")), [
    "[slow] running nap",
    "[slow] done",
    "[quick] cached",
  ]);
  assertEquals(again.value.records.map((r) => `${r.name}:${r.status}`), ["slow:ran", "quick:cached"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("jobs: independent nodes run side by side, never more than --jobs at once, then are cached", async () => {
  const dir = await Deno.makeTempDir();
  const build = (company?: number) => {
    const p = new PipelineBuilder("fan");
    const a = p.add("a", nap, { id: "a", ms: 60, company }, {});
    const b = p.add("b", nap, { id: "b", ms: 60, company }, {});
    p.add("c", nap, { id: "c", ms: 60, ...(company === 4 ? { company } : {}) }, {});
    p.add("d", nap, { id: "d", ms: 60, ...(company === 4 ? { company } : {}) }, {});
    p.add("ab", nap, { id: "ab", ms: 10 }, { after: a });
    p.add("bb", nap, { id: "bb", ms: 10 }, { after: b });
    return p.build();
  };
  reset();
  const first = await run(dir, build(2), 2);
  assert(Exit.isSuccess(first));
  assertEquals(seen.maxActive, 2);
  assertEquals(seen.started.length, 6);
  // Records come in pipeline order, whatever order the nodes finished in.
  assertEquals(first.value.records.map((r) => `${r.name}:${r.status}`), [
    "a:ran",
    "b:ran",
    "c:ran",
    "d:ran",
    "ab:ran",
    "bb:ran",
  ]);
  assertEquals(await Deno.readTextFile(`${first.value.outputs.get("bb")}/out.txt`), "b;bb;");
  reset();
  const again = await run(dir, build(2), 3);
  assert(Exit.isSuccess(again));
  assertEquals(again.value.records.map((r) => r.status), Array(6).fill("cached"));
  assertEquals(seen.started, []);
  // Four independent nodes with 4 jobs: all four run at once.
  reset();
  const wide = await run(await Deno.makeTempDir(), build(4), 4);
  assert(Exit.isSuccess(wide));
  assertEquals(seen.maxActive, 4);
});

Deno.test("jobs: two nodes that are the same work compute once; the second finds the first's artifact", async () => {
  const p = new PipelineBuilder("twins");
  const one = p.add("one", nap, { id: "same", ms: 50 }, {});
  const two = p.add("two", nap, { id: "same", ms: 50 }, {});
  p.add("after-two", nap, { id: "next", ms: 1 }, { after: two });
  p.add("after-one", nap, { id: "next2", ms: 1 }, { after: one });
  reset();
  const r = await run(await Deno.makeTempDir(), p.build(), 4);
  assert(Exit.isSuccess(r));
  assertEquals(seen.started.filter((id) => id === "same").length, 1);
  assertEquals(r.value.records.map((x) => `${x.name}:${x.status}`), [
    "one:ran",
    "two:cached",
    "after-two:ran",
    "after-one:ran",
  ]);
});

Deno.test("jobs: after a failure nothing new starts, the running node finishes and stays cached", async () => {
  const dir = await Deno.makeTempDir();
  const build = (fail: boolean) => {
    const p = new PipelineBuilder("fails");
    const bad = p.add("bad", nap, { id: "bad", ms: 5, fail }, {});
    p.add("slow", nap, { id: "slow", ms: 20, outlive: "bad" }, {});
    p.add("later", nap, { id: "later", ms: 5 }, {});
    p.add("below-bad", nap, { id: "below-bad", ms: 5 }, { after: bad });
    return p.build();
  };
  reset();
  const r = await run(dir, build(true), 2);
  assert(Exit.isFailure(r));
  const error = r.cause._tag === "Fail" ? r.cause.error : undefined;
  assert(error instanceof StepFailed, String(r.cause));
  assertEquals(error.node, "bad");
  // "later" waited for a free job and never got one; "below-bad" never had its input.
  assertEquals(seen.started.sort(), ["bad", "slow"]);
  // The fixed pipeline reuses what finished: "slow" is cached.
  reset();
  const fixed = await run(dir, build(false), 2);
  assert(Exit.isSuccess(fixed));
  assertEquals(fixed.value.records.map((x) => `${x.name}:${x.status}`), [
    "bad:ran",
    "slow:cached",
    "later:ran",
    "below-bad:ran",
  ]);
});

Deno.test("jobs: every failure is said, the one the run ends with once (by its error)", async () => {
  const dir = await Deno.makeTempDir();
  const p = new PipelineBuilder("two-fail");
  p.add("first", nap, { id: "first", ms: 5, fail: true }, {});
  p.add("second", nap, { id: "second", ms: 20, fail: true, outlive: "first" }, {});
  reset();
  const lines: string[] = [];
  const r = await run(dir, p.build(), 2, lines);
  assert(Exit.isFailure(r));
  const error = r.cause._tag === "Fail" ? r.cause.error : undefined;
  assert(error instanceof StepFailed, String(r.cause));
  assertEquals(error.node, "first");
  assertEquals(lines.filter((l) => l.includes("failed")), [
    "[first] failed: invalid configuration at first: told to fail; waiting for the 1 step(s) still running, then stopping",
    "[second] failed: invalid configuration at second: told to fail",
  ]);
  await Deno.remove(dir, { recursive: true });
});
