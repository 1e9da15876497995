/**
 * --lora across pipelines (pipelines/method_context.ts trainOn): how each method's second stage starts
 * (stage one's adapter continued by default, a new adapter on stage one's merged model with
 * `loraStageTwo: "new"`), that full fine-tuning pipelines are wired as before (no adapter input, no lora
 * field: their cache keys are unchanged), and the comparison run with --lora from a checkpoint and a
 * starting adapter (--adapter), every method, every train node writing adapter/.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { assert, assertEquals } from "./assert.ts";
import type { Pipeline, StepNode } from "../src/engine/pipeline.ts";
import { runAndSummarise } from "../src/cli/run.ts";
import { explainFailure } from "../src/cli/explain.ts";
import { useBackend } from "../src/backend/backend.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { attachFreshAdapter } from "../src/model/lora.ts";
import { disposeParams, initParams, paramShapes } from "../src/model/model.ts";
import { readAdapter, saveAdapter } from "../src/model/peft.ts";
import { Rng } from "../src/util/rng.ts";
import { build as buildCompare, type DatasetSpec } from "../pipelines/compare.ts";
import { fixture, type PipelineOptions, tinyModel, tokenizerVocabSize } from "../pipelines/data.ts";
import { pipelines } from "../pipelines/index.ts";
import { methods, RFTT_METHODS } from "../pipelines/methods.ts";

const LORA = { r: 4, alpha: 8, dropout: 0 };
const tokenizer = fixture("arith/tokenizer.json");
/** The comparison on the arithmetic set only. */
const ARITH: ReadonlyArray<DatasetSpec> = [
  { name: "arith", train: fixture("arith/train.jsonl"), test: fixture("arith/test.jsonl"), format: "tags" },
];

const trainNodes = (p: Pipeline) =>
  p.nodes.filter((n): n is StepNode => n.kind === "step" && n.step.name === "train");

const node = (p: Pipeline, name: string) => p.nodes.find((n) => n.name === name) as StepNode;

Deno.test("sftkey --lora: stage two continues stage one's adapter on the base by default, or trains a new one on stage one", () => {
  const opts = (o: Partial<PipelineOptions>): PipelineOptions => ({
    model: fixture("base"),
    tokenizer: fixture("base/tokenizer.json"),
    train: fixture("arith/train.jsonl"),
    format: "tags",
    budget: { train: { lora: LORA } },
    ...o,
  });
  const continued = pipelines.sftkey(opts({}));
  assertEquals(node(continued, "sftkey-stage-two").inputs.init, "base-model");
  assertEquals(node(continued, "sftkey-stage-two").inputs.adapter, "sftkey-stage-one");
  assertEquals(node(continued, "sftkey-stage-one").inputs.adapter, undefined);
  assertEquals(
    continued.settings?.lora,
    "r 4, alpha 8, dropout 0, targets every block projection; second stages continue the first stage's adapter",
  );
  const fresh = pipelines.sftkey(opts({ loraStageTwo: "new" }));
  assert(fresh.settings?.lora?.endsWith("train a new adapter on the first stage's merged model"));
  assertEquals(node(fresh, "sftkey-stage-two").inputs.init, "sftkey-stage-one");
  assertEquals(node(fresh, "sftkey-stage-two").inputs.adapter, undefined);
  // From scratch the stage-two base is the same seeded fresh model as stage one's.
  const scratch = pipelines.sftkey({ budget: { train: { lora: LORA } } });
  const two = node(scratch, "sftkey-stage-two");
  assertEquals([two.inputs.init, two.inputs.adapter], [undefined, "sftkey-stage-one"]);
  const model = (n: StepNode) => (n.config as { model?: unknown }).model;
  assert(model(two) !== undefined);
  assertEquals(model(two), model(node(scratch, "sftkey-stage-one")));
  // --adapter as the start: every node that starts from the base carries it.
  const started = pipelines.sftkey(opts({ adapter: "/some/adapter" }));
  assertEquals(node(started, "sftkey-stage-one").inputs.adapter, "base-adapter");
  assertEquals(node(started, "sftkey-stage-two").inputs.adapter, "sftkey-stage-one");
  assertEquals(node(started, "eval-sftkey-stage-one").inputs.adapter, undefined);
});

Deno.test("every method's second stage continues its first stage's adapter under --lora", () => {
  const p = buildCompare({ budget: { train: { lora: LORA } } }, {
    seeds: [0],
    datasets: ARITH,
  });
  const train = trainNodes(p);
  const names = new Set(train.map((n) => n.name));
  for (const n of train) {
    assertEquals((n.config as { lora?: unknown }).lora, LORA, n.name);
    // A node never starts from another train node's merged model; it continues that node's adapter.
    assert(!names.has(n.inputs.init ?? ""), `${n.name} starts from ${n.inputs.init}`);
  }
  const continuing = train.filter((n) => n.inputs.adapter !== undefined).map((n) => n.name.split("/")[2]);
  for (const m of ["sftkey", "mix", "upft", "upft-self", "cft", "s3ft"]) assert(continuing.includes(m), m);
});

Deno.test("without --lora the shipped pipelines are wired as before: no adapter input, no lora field", () => {
  for (const [name, build] of Object.entries(pipelines)) {
    if (name === "pretrain" || name.includes("finetune")) continue;
    for (const n of build({ loraStageTwo: "continue" }).nodes) {
      if (n.kind !== "step") continue;
      assertEquals(n.inputs.adapter, undefined, `${name}: ${n.name}`);
      assert(!("lora" in (n.config as object)), `${name}: ${n.name}`);
    }
    assertEquals(build({}).settings?.lora, undefined, name);
  }
});

Deno.test("compare --lora from --model with --adapter: every method trains adapters, the base row is evaluated with it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "compare-lora-" });
  try {
    await tf.setBackend("cpu");
    const c = { ...tinyModel(tokenizerVocabSize(tokenizer), 272), hiddenSize: 32, intermediateSize: 64 };
    const params = initParams(c, Rng.seeded(3));
    await Effect.runPromise(saveCheckpoint(`${dir}/base`, c, params));
    attachFreshAdapter(params, c, paramShapes(c), LORA, Rng.seeded(4));
    const rng = Rng.seeded(5);
    for (const [name, v] of params) {
      if (name.includes("lora_B")) {
        v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal() * 0.05), v.shape));
      }
    }
    await Effect.runPromise(
      saveAdapter(`${dir}/adapter`, c, params, LORA, [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
      ], `${dir}/base`),
    );
    disposeParams(params);

    const pipeline = buildCompare({
      model: `${dir}/base`,
      adapter: `${dir}/adapter`,
      tokenizer,
      // UPFT's instruction (140 tokens with a base model) needs the room.
      maxLength: 256,
      maxNewTokens: 16,
      limit: { train: 8, test: 4 },
      budget: {
        stageOneSteps: 1,
        stageTwoSteps: 1,
        train: { batchSize: 4, microBatchSize: 4, warmupSteps: 0, checkpointEvery: 10, lora: LORA },
      },
    }, {
      seeds: [0],
      datasets: ARITH,
      maskExamples: 1,
    });
    assertEquals(node(pipeline, "arith/s0/base/eval-base").inputs.adapter, "arith/base-adapter");
    const log = console.log;
    console.log = () => {};
    const backend = await Effect.runPromise(useBackend("cpu"));
    const exit = await Effect.runPromiseExit(
      runAndSummarise(pipeline, { runDir: `${dir}/run`, force: [], backend }),
    ).finally(() => (console.log = log));
    if (exit._tag === "Failure") throw new Error(explainFailure(exit.cause));
    const summary = JSON.parse(await Deno.readTextFile(`${dir}/run/summary.json`)) as {
      steps: Array<{ name: string; step: string; key: string }>;
    };
    const report = JSON.parse(await Deno.readTextFile(`${dir}/run/report.json`)) as {
      models: Array<{ method: string }>;
    };
    // The RFTT arms are not part of a comparison from --model (their warm-up search reads arithmetic only).
    for (const m of [...Object.keys(methods).filter((m) => !RFTT_METHODS.includes(m)), "base"]) {
      assert(report.models.some((r) => r.method === m), `report lacks ${m}`);
    }
    assert(!report.models.some((r) => RFTT_METHODS.includes(r.method)), "an RFTT arm ran from --model");
    for (const s of summary.steps.filter((s) => s.step === "train")) {
      const a = await Effect.runPromise(readAdapter(`${dir}/run/artifacts/train/${s.key}/adapter`));
      assertEquals(a.settings.r, LORA.r, s.name);
      const config = JSON.parse(
        await Deno.readTextFile(`${dir}/run/artifacts/train/${s.key}/adapter/adapter_config.json`),
      );
      // Every adapter is on the base (first stages continue --adapter, second stages their first's).
      assertEquals(config.base_model_name_or_path, `${dir}/base`, s.name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
