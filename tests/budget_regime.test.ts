/**
 * Which budget a pipeline gets: from a checkpoint (--model, or the shipped base of the default pipeline)
 * the fine-tuning defaults, counted in epochs over the training rows; from scratch the step budget as
 * before. The pipeline's settings (header and summary.json) say which applied and why.
 */
import { Effect, Option } from "effect";
import { type BudgetFlags, budgetFromFlags } from "../src/cli/budget_flags.ts";
import { build as buildSft } from "../pipelines/sft.ts";
import { build as buildSftkey, buildFineTune, SHIPPED_BASE } from "../pipelines/sftkey.ts";
import { pipelines } from "../pipelines/index.ts";
import { FINE_TUNING, stepsForEpochs } from "../pipelines/budget.ts";
import { countRows, fixture } from "../pipelines/data.ts";
import type { Pipeline, SourceNode, StepNode } from "../src/engine/pipeline.ts";
import type { TrainConfig } from "../src/steps/train.ts";
import { assert, assertEquals } from "./assert.ts";

const trainConfigs = (p: Pipeline) =>
  Object.fromEntries(
    p.nodes.filter((n): n is StepNode => n.kind === "step" && n.step.name === "train")
      .map((n) => [n.name, n.config as TrainConfig]),
  );

const words = fixture("word-tags/train.jsonl");
const ROWS = 1000;

Deno.test("a pipeline started from --model without budget flags uses the fine-tuning defaults", () => {
  assertEquals(countRows(words), ROWS);
  // What the command line passes for `--model fixtures/base --data ... --format tags`.
  const p = buildSft({ model: fixture("base"), tokenizer: fixture("base/tokenizer.json"), train: words });
  const sft = trainConfigs(p)["sft"];
  // Without --test, 10% of the rows (100) are held out for evaluation: training sees 900.
  const TRAINED = 900;
  const one = Math.ceil(FINE_TUNING.stageOneEpochs * TRAINED / FINE_TUNING.batchSize);
  const two = Math.ceil(FINE_TUNING.stageTwoEpochs * TRAINED / FINE_TUNING.batchSize);
  assertEquals(sft.steps, one + two);
  assertEquals(sft.lr, FINE_TUNING.lr);
  assertEquals(sft.batchSize, FINE_TUNING.batchSize);
  assertEquals(sft.warmupSteps, Math.round(FINE_TUNING.warmupRatio * one));
  assert(sft.model === undefined, "a fine-tuning run must not carry a from-scratch architecture");
  const budget = p.settings?.budget ?? "";
  assert(budget.startsWith("fine-tuning defaults: started from a checkpoint"), budget);
  assert(budget.includes(`over ${TRAINED} rows`), budget);
  // With a test file nothing is held out, so every row trains.
  const withTest = buildSft({
    model: fixture("base"),
    tokenizer: fixture("base/tokenizer.json"),
    train: words,
    test: fixture("word-tags/test.jsonl"),
  });
  assert(withTest.settings?.budget?.includes(`over ${ROWS} rows`), withTest.settings?.budget);
});

Deno.test("from scratch keeps its step budget and says so", () => {
  const p = buildSftkey({});
  const t = trainConfigs(p);
  assertEquals([t["sftkey-stage-one"].steps, t["sftkey-stage-two"].steps, t["sft"].steps], [400, 150, 550]);
  assertEquals([t["sft"].lr, t["sft"].batchSize, t["sft"].warmupSteps], [3e-3, 32, 20]);
  assertEquals(t["sftkey-stage-two"].warmupSteps, 0);
  assert(p.settings?.budget?.startsWith("from-scratch defaults: no starting checkpoint"), p.settings?.budget);
  assertEquals(p.name, "sftkey");
  assertEquals(pipelines["sftkey"]({}).nodes.map((n) => n.name), p.nodes.map((n) => n.name));
});

Deno.test("sftkey-finetune fine-tunes the shipped base on the word problems", () => {
  const p = pipelines["sftkey-finetune"]({});
  assertEquals(p.name, "sftkey-finetune");
  const source = (name: string) => (p.nodes.find((n) => n.name === name) as SourceNode).path;
  assertEquals(source("base-model"), SHIPPED_BASE.model);
  assertEquals(source("train-data"), SHIPPED_BASE.train);
  assertEquals(source("test-data"), SHIPPED_BASE.test);
  assertEquals(source("tokenizer"), SHIPPED_BASE.tokenizer);
  const t = trainConfigs(p);
  const one = stepsForEpochs(FINE_TUNING.stageOneEpochs, ROWS, FINE_TUNING.batchSize);
  assertEquals(t["sftkey-stage-one"].steps, one);
  assertEquals(t["sftkey-stage-two"].lr, FINE_TUNING.stageTwoLr);
  assertEquals(
    t["sftkey-stage-two"].warmupSteps,
    Math.round(FINE_TUNING.warmupRatio * t["sftkey-stage-two"].steps),
  );
  assert(p.settings?.budget?.startsWith("fine-tuning defaults"), p.settings?.budget);
  // A user's own model brings its own tokenizer (the command line fills it in), not the base's.
  const ownTokenizer = fixture("arith/tokenizer.json");
  const own = buildFineTune({ model: "/m", tokenizer: ownTokenizer, train: words });
  assertEquals((own.nodes.find((n) => n.name === "tokenizer") as SourceNode).path, ownTokenizer);
  assertEquals((own.nodes.find((n) => n.name === "base-model") as SourceNode).path, "/m");
});

Deno.test("--epochs, --stage-two-epochs and --warmup-ratio set the fine-tuning budget; step flags win", async () => {
  const none = Option.none<number>();
  const flags = (given: Partial<Record<keyof BudgetFlags, number>>): BudgetFlags => ({
    stageOneSteps: none,
    stageTwoSteps: none,
    lr: none,
    stageTwoLr: none,
    batchSize: none,
    microBatchSize: none,
    checkpointEvery: none,
    epochs: none,
    stageTwoEpochs: none,
    warmupRatio: none,
    ...Object.fromEntries(Object.entries(given).map(([k, v]) => [k, Option.some(v)])),
  });
  const budget = await Effect.runPromise(
    budgetFromFlags(flags({ epochs: 2, stageTwoEpochs: 0.5, warmupRatio: 0.2 })),
  );
  const t = trainConfigs(pipelines["sftkey-finetune"]({ budget }));
  assertEquals(t["sftkey-stage-one"].steps, 125);
  assertEquals(t["sftkey-stage-two"].steps, 32);
  assertEquals(t["sft"].steps, 157);
  assertEquals(t["sftkey-stage-one"].warmupSteps, 25);
  const stepped = await Effect.runPromise(budgetFromFlags(flags({ epochs: 2, stageOneSteps: 7 })));
  assertEquals(trainConfigs(pipelines["sftkey-finetune"]({ budget: stepped }))["sftkey-stage-one"].steps, 7);
  const refused = await Effect.runPromiseExit(budgetFromFlags(flags({ warmupRatio: 1.5 })));
  assert(refused._tag === "Failure" && JSON.stringify(refused.cause).includes("--warmup-ratio"));
});

Deno.test("compare-finetune: every method fine-tunes the base with the same budget over 5 seeds, plus the base's row", () => {
  const p = pipelines["compare-finetune"]({});
  assertEquals(p.name, "compare-finetune");
  const t = trainConfigs(p);
  const one = stepsForEpochs(FINE_TUNING.stageOneEpochs, ROWS, FINE_TUNING.batchSize);
  for (const d of ["word-tags", "word-gsm8k"]) {
    for (const seed of [0, 1, 2, 3, 4]) {
      assertEquals(t[`${d}/s${seed}/sftkey/sftkey-stage-one`].steps, one);
      assertEquals(t[`${d}/s${seed}/sftkey/sftkey-stage-one`].lr, FINE_TUNING.lr);
      const evalBase = p.nodes.find((n) => n.name === `${d}/s${seed}/base/eval-base`) as StepNode;
      assertEquals(evalBase.inputs.model, `${d}/base-model`);
    }
  }
  assert(!Object.keys(t).some((n) => n.includes("/s5/")), "five seeds, not more");
  assert(p.settings?.budget?.startsWith("fine-tuning defaults"), p.settings?.budget);
});

Deno.test("compare-finetune --quick: 2 seeds on word-tags at the quick budget, within its 10 minutes", () => {
  const t = trainConfigs(pipelines["compare-finetune"]({ quick: true }));
  const stageOnes = Object.keys(t).filter((n) => n.endsWith("/sftkey/sftkey-stage-one")).sort();
  assertEquals(stageOnes, ["word-tags/s0/sftkey/sftkey-stage-one", "word-tags/s1/sftkey/sftkey-stage-one"]);
  assertEquals(t[stageOnes[0]].steps, 4);
});
