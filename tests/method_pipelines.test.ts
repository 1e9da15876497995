/**
 * The method pipelines as a user (or the comparison) builds them.
 *
 * - Every shipped method pipeline builds (wiring and configs valid) and evaluates its models and SFT.
 * - Every registered method can be added twice to one pipeline under other prefixes (as a comparison over
 *   seeds does): each node it adds goes through ctx.name, so nothing collides, and every seed-dependent
 *   node carries the context's seed.
 * - SFTKEY_SLOW=1: all methods run end to end together on a slice of the fixtures with a tiny budget; the
 *   shared stage one is trained once and reused from the cache by the other methods.
 */
import { Effect } from "effect";
import { PipelineBuilder, type StepNode } from "../src/engine/pipeline.ts";
import { useBackend } from "../src/backend/backend.ts";
import { runAndSummarise } from "../src/cli/run.ts";
import { prepareData } from "../pipelines/data.ts";
import { evaluate, type MethodContext, methodContext, modelNode } from "../pipelines/method_context.ts";
import { pipelines } from "../pipelines/index.ts";
import { methods } from "../pipelines/methods.ts";
import { assert, assertEquals } from "./assert.ts";

const root = new URL("..", import.meta.url).pathname;
const SLOW = Deno.env.get("SFTKEY_SLOW") === "1";

Deno.test("method pipelines: each builds and evaluates its models and the SFT baseline", () => {
  const expected: Record<string, string[]> = {
    dft: ["dft", "sft"],
    fdiv: ["fdiv-tv", "fdiv-chi2", "fdiv-hellinger", "fdiv-js", "sft-lowlr", "sft"],
    mix: ["mix0.5", "sftkey-stage-one", "sftkey-stage-two", "sft"],
    upft: ["upft", "upft-self", "sft"],
    cft: ["cft", "sft"],
    s3ft: ["s3ft", "sft"],
    rftt: ["rftt-sft", "rftt", "rftt-prm", "rftt-sampling", "cot-sft", "cot-rl"],
  };
  for (const [name, models] of Object.entries(expected)) {
    const evals = pipelines[name]({}).nodes.filter((n) => n.name.startsWith("eval-")).map((n) => n.name);
    assertEquals(evals.sort(), models.map((m) => `eval-${m}`).sort(), name);
  }
});

Deno.test("method pipelines: every method adds prefixed, seeded nodes that never collide", () => {
  const p = new PipelineBuilder("all");
  const data = prepareData(p, {});
  const before = new Set(p.build().nodes.map((n) => n.name));
  for (const seed of [1, 2]) {
    const ctx: MethodContext = { ...methodContext(p, data, seed), name: (l) => `s${seed}/${l}` };
    for (const method of Object.values(methods)) {
      for (const [label, model] of Object.entries(method(ctx))) {
        const node = modelNode(model).node;
        assert(node.startsWith(`s${seed}/`), `${label}: ${node}`);
        evaluate(ctx, label, model);
      }
    }
  }
  const added = (p.build().nodes as StepNode[]).filter((n) =>
    !before.has(n.name) && !n.name.startsWith("mask-")
  );
  for (const n of added) {
    assert(/^s[12]\//.test(n.name), `node ${n.name} is not prefixed`);
    const seed = (n.config as { seed?: number }).seed;
    if (seed !== undefined) assertEquals(seed, Number(n.name[1]), n.name);
  }
});

Deno.test("method pipelines: --locator, --max-length and --max-new-tokens reach every step that uses them", () => {
  const judged = ["locateKey", "evaluate", "sampleResponses", "criticalTokens", "s3ftSelect"];
  const build = (opts: Parameters<typeof prepareData>[1]) => {
    const p = new PipelineBuilder("all");
    const data = prepareData(p, opts);
    const ctx = methodContext(p, data);
    for (const method of Object.values(methods)) {
      for (const [label, model] of Object.entries(method(ctx))) evaluate(ctx, label, model);
    }
    return (p.build().nodes as StepNode[]).filter((n) => n.kind === "step");
  };
  const locator = { kind: "regex", pattern: "= (\\d+)" } as const;
  const chosen = build({ locator, maxLength: 96, maxNewTokens: 40 });
  for (const stepName of judged) {
    const nodes = chosen.filter((n) => n.step.name === stepName);
    assert(nodes.length > 0, `no ${stepName} node`);
    // RFTT's models are judged on their `<output>` segment, whatever the data's locator.
    for (const n of nodes.filter((n) => !n.name.startsWith("eval-rftt"))) {
      assertEquals((n.config as { locator?: unknown }).locator, locator, n.name);
      if (stepName !== "locateKey") {
        assertEquals((n.config as { maxNewTokens?: number }).maxNewTokens, 40, n.name);
      }
    }
  }
  // RFTT's trace tokens have the traces' own bound (pipelines/rftt.ts: RFTT_MAX_LENGTH).
  for (
    const n of chosen.filter((n) =>
      ["tokenise", "upftData"].includes(n.step.name) && n.name !== "rftt-trace-tokens"
    )
  ) {
    assertEquals((n.config as { maxLength: number }).maxLength, 96, n.name);
  }
  assert(chosen.some((n) => n.step.name === "upftData"), "no upftData node");
  // A model trained from scratch has room for the longest sequence plus the generated tokens.
  // (RFTT's warm-up model has room for the longest trace instead.)
  for (const n of chosen.filter((n) => n.step.name === "train" && n.name !== "rftt-sft")) {
    const model = (n.config as { model?: { maxPositions: number } }).model;
    if (model) assertEquals(model.maxPositions, 96 + 40, n.name);
  }
  // Without the options no config names a locator, so cache keys of default runs do not change.
  for (const n of build({}).filter((n) => judged.includes(n.step.name) && !n.name.startsWith("eval-rftt"))) {
    assert(!("locator" in (n.config as object)), n.name);
  }
});

const slice = async (dir: string, from: string, n: number) => {
  const lines = (await Deno.readTextFile(`${root}/fixtures/arith/${from}`)).split("\n").slice(0, n);
  await Deno.writeTextFile(`${dir}/${from}`, lines.join("\n") + "\n");
  return `${dir}/${from}`;
};

Deno.test({
  name: "method pipelines (slow): every method runs end to end; the shared stage one trains once",
  ignore: !SLOW,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const p = new PipelineBuilder("all");
    const data = prepareData(p, {
      train: await slice(dir, "train.jsonl", 64),
      test: await slice(dir, "test.jsonl", 8),
      format: "tags",
      quick: true,
      budget: { stageOneSteps: 4, stageTwoSteps: 3, train: { batchSize: 8, microBatchSize: 8 } },
    });
    const ctx = methodContext(p, data);
    for (const method of Object.values(methods)) {
      for (const [label, model] of Object.entries(method(ctx))) evaluate(ctx, label, model);
    }
    const log = console.log;
    console.log = () => {};
    const summary = await Effect.runPromise(
      Effect.flatMap(
        useBackend("cpu"),
        (backend) => runAndSummarise(p.build(), { runDir: `${dir}/run`, force: [], backend }),
      ),
    ).finally(() => (console.log = log));
    const status = Object.fromEntries(summary.steps.map((s) => [s.name, s.status]));
    assertEquals(status["sftkey-stage-one"], "ran");
    for (
      const shared of [
        "mix-stage-one",
        "upft-stage-one",
        "upft-self-stage-one",
        "cft-stage-one",
        "s3ft-stage-one",
      ]
    ) {
      assertEquals(status[shared], "cached", shared);
    }
    for (
      const label of [
        "sft",
        "sftkey-stage-two",
        "mix0.5",
        "upft",
        "upft-self",
        "cft",
        "dft",
        "s3ft",
        "fdiv-js",
        "sft-lowlr",
      ]
    ) {
      assertEquals(summary.models[label]?.n, 8, label);
    }
    await Deno.remove(dir, { recursive: true });
  },
});
