/**
 * The train step with `lora` (src/steps/train.ts, src/model/lora.ts): it writes a PEFT adapter and the
 * merged checkpoint, its training checkpoints hold only the adapter and the adapter's AdamW moments, and a
 * run interrupted after a checkpoint resumes to exactly the adapter of an uninterrupted run (LoRA dropout
 * on, so the per-step masks must be reproduced too). With an `adapter` input (a stage two continuing stage
 * one's adapter, `--adapter` as a training start) training continues that adapter under `lora`, on the same
 * base (and resumes as exactly), and refuses one whose rank is not the config's; without `lora` the adapter
 * is merged into the start.
 */
import * as tf from "@tensorflow/tfjs";
import { Cause, Effect, Option } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { runPipeline } from "../src/engine/runner.ts";
import { ArtifactStore } from "../src/engine/store.ts";
import { type Reporter, silentReporter } from "../src/engine/progress.ts";
import { crashingAt } from "./engine_test_helpers.ts";
import { useBackend } from "../src/backend/backend.ts";
import { locateKeyStep } from "../src/steps/locate_key.ts";
import { tokeniseStep } from "../src/steps/tokenise.ts";
import { buildMasksStep } from "../src/steps/build_masks.ts";
import { type TrainConfig, trainStep } from "../src/steps/train.ts";
import { tinyModel, tokenizerVocabSize } from "../pipelines/data.ts";
import { loadCheckpoint } from "../src/model/checkpoint.ts";
import { disposeParams, forward, initParams } from "../src/model/model.ts";
import { loadAdapter, readAdapter } from "../src/model/peft.ts";
import { readSafetensorsFile } from "../src/model/safetensors.ts";
import { Rng } from "../src/util/rng.ts";

const root = new URL("..", import.meta.url).pathname;
const tokenizer = `${root}/fixtures/arith/tokenizer.json`;
const MODEL = { ...tinyModel(tokenizerVocabSize(tokenizer)), hiddenSize: 32, intermediateSize: 64 };
const LORA = { r: 4, alpha: 8, dropout: 0.1 };

/** A builder with the data nodes: `data` located, tokenised and masked (every response token). */
const withMasks = (name: string, data: string) => {
  const p = new PipelineBuilder(name);
  const src = p.source("data", data);
  const tok = p.source("tokenizer", tokenizer);
  const examples = p.add("keys", locateKeyStep, { format: "tags", onMissingKey: "fail" }, { data: src });
  const tokens = p.add("tokens", tokeniseStep, {
    template: "{prompt}\n",
    maxLength: 64,
    onTruncatedKey: "fail",
  }, { examples, tokenizer: tok });
  return { p, tok, masks: p.add("masks", buildMasksStep, { mask: { kind: "response" } }, { tokens }) };
};

const pipeline = (data: string) => {
  const { p, tok, masks } = withMasks("train-lora", data);
  p.add("stage", trainStep, {
    steps: 4,
    batchSize: 4,
    microBatchSize: 2,
    lr: 1e-2,
    warmupSteps: 1,
    minLrRatio: 0.1,
    weightDecay: 0.01,
    clipNorm: 1,
    checkpointEvery: 2,
    seed: 0,
    model: MODEL,
    lora: LORA,
  }, { data: masks, tokenizer: tok });
  return p.build();
};

const run = async (dir: string, data: string, reporter: Reporter) => {
  const backend = await Effect.runPromise(useBackend("cpu"));
  return await Effect.runPromise(runPipeline(pipeline(data), {
    store: new ArtifactStore(`${dir}/artifacts`),
    reporter,
    backend,
  }));
};

const setup = async () => {
  const dir = await Deno.makeTempDir();
  const lines = (await Deno.readTextFile(`${root}/fixtures/arith/train.jsonl`)).split("\n").slice(0, 16);
  await Deno.writeTextFile(`${dir}/train.jsonl`, lines.join("\n") + "\n");
  return { dir, data: `${dir}/train.jsonl` };
};

const bytesEqual = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

Deno.test("train lora: adapter/ in PEFT layout, model/ is the merge, and an interrupted run resumes bit-exactly", async () => {
  const first = await setup();
  const uninterrupted = await run(first.dir, first.data, silentReporter());
  const out = uninterrupted.outputs.get("stage")!;
  const adapterBytes = await Deno.readFile(`${out}/adapter/adapter_model.safetensors`);

  // The adapter: PEFT names, trained (B moved off zero).
  const adapter = await Effect.runPromise(readAdapter(`${out}/adapter`));
  assertEquals(adapter.tensors.size, MODEL.numLayers * 7 * 2);
  const b = adapter.tensors.get("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")!;
  assertEquals(b.shape, [MODEL.hiddenSize, 4]);
  assert(b.data.some((x) => x !== 0), "lora_B was trained");

  // model/ equals the fresh base (the step's seed) with the adapter applied.
  await tf.setBackend("cpu");
  const merged = await Effect.runPromise(loadCheckpoint(`${out}/model`));
  const base = initParams(merged.config, Rng.seeded(0));
  await Effect.runPromise(loadAdapter(`${out}/adapter`, merged.config, base));
  const ids = tf.tensor2d([[1, 5, 9, 3, 7, 2]], undefined, "int32");
  const a = forward(merged.params, merged.config, ids).dataSync() as Float32Array,
    c = forward(base, merged.config, ids).dataSync() as Float32Array;
  const diff = a.reduce((m, x, i) => Math.max(m, Math.abs(x - c[i])), 0);
  assert(diff <= 1e-5, `merged vs adapted logits differ by ${diff}`);
  disposeParams(merged.params);
  disposeParams(base);

  // Interrupted after the step-2 checkpoint: the checkpoint holds the adapter and its moments only.
  const second = await setup();
  let crashed = false;
  await run(second.dir, second.data, crashingAt(3)).catch(() => (crashed = true));
  assert(crashed);
  const partial = (await Array.fromAsync(Deno.readDir(`${second.dir}/artifacts/train`)))[0].name;
  const ckpt = `${second.dir}/artifacts/train/${partial}/checkpoints/step-0000002`;
  const files = (await Array.fromAsync(Deno.readDir(ckpt))).map((e) => e.name).sort();
  assert(
    files.includes("adapter_model.safetensors") && !files.includes("model.safetensors"),
    files.join(","),
  );
  const moments = await Effect.runPromise(readSafetensorsFile(`${ckpt}/optimizer.safetensors`));
  assertEquals(moments.tensors.size, 2 * adapter.tensors.size);
  const lines: string[] = [];
  const resumed = await run(second.dir, second.data, silentReporter(lines));
  assert(lines.some((l) => l.includes("resuming at optimizer step 2/4")), lines.join("\n"));
  const resumedBytes = await Deno.readFile(
    `${resumed.outputs.get("stage")}/adapter/adapter_model.safetensors`,
  );
  assert(bytesEqual(resumedBytes, adapterBytes), "the resumed adapter differs from the uninterrupted one");
});

/** Stage one with LoRA, then `next` nodes started from its adapter (the `adapter` input). */
const continuing = (data: string, next: Record<string, Partial<TrainConfig>>) => {
  const { p, tok, masks } = withMasks("train-lora-continue", data);
  const common = {
    batchSize: 4,
    microBatchSize: 4,
    warmupSteps: 0,
    minLrRatio: 1,
    weightDecay: 0,
    clipNorm: 1,
    checkpointEvery: 10,
    seed: 0,
    model: MODEL,
  };
  const stage = p.add("stage", trainStep, { ...common, steps: 2, lr: 1e-2, lora: { ...LORA, dropout: 0 } }, {
    data: masks,
    tokenizer: tok,
  });
  // A learning rate of 1e-9: what a node ends with is, to 1e-6, where it started.
  for (const [name, extra] of Object.entries(next)) {
    p.add(name, trainStep, { ...common, steps: 1, lr: 1e-9, ...extra }, {
      data: masks,
      tokenizer: tok,
      adapter: stage,
    });
  }
  return p.build();
};

const runPipelineIn = async (
  dir: string,
  pipeline: ReturnType<typeof continuing>,
  reporter: Reporter = silentReporter(),
) => {
  const backend = await Effect.runPromise(useBackend("cpu"));
  return await Effect.runPromiseExit(runPipeline(pipeline, {
    store: new ArtifactStore(`${dir}/artifacts`),
    reporter,
    backend,
  }));
};

const tensorsOf = async (path: string) => (await Effect.runPromise(readSafetensorsFile(path))).tensors;

const maxDiffOf = (a: ReadonlyMap<string, { data: Float32Array }>, b: typeof a) => {
  let m = 0;
  for (const [name, t] of a) {
    const u = b.get(name)!;
    for (let i = 0; i < t.data.length; i++) m = Math.max(m, Math.abs(t.data[i] - u.data[i]));
  }
  return m;
};

Deno.test("train lora: an adapter input is continued under lora (same base, its values as the start), merged without", async () => {
  const { dir, data } = await setup();
  const exit = await runPipelineIn(
    dir,
    continuing(data, { continued: { lora: { ...LORA, dropout: 0 } }, full: {} }),
  );
  assert(exit._tag === "Success", String(exit));
  const out = exit.value.outputs;
  const stage = out.get("stage")!, continued = out.get("continued")!, full = out.get("full")!;
  const before = await tensorsOf(`${stage}/adapter/adapter_model.safetensors`);
  const after = await tensorsOf(`${continued}/adapter/adapter_model.safetensors`);
  assertEquals([...after.keys()].sort(), [...before.keys()].sort());
  assert(
    [...before.values()].some((t) => t.data.some((x) => Math.abs(x) > 1e-4)),
    "stage one's adapter moved off its init",
  );
  const d = maxDiffOf(before, after);
  assert(d <= 1e-6, `the continued adapter starts from stage one's: ${d}`);
  const config = JSON.parse(await Deno.readTextFile(`${continued}/adapter/adapter_config.json`));
  assertEquals(config.base_model_name_or_path, "(a fresh model drawn from the train step's seed)");
  // Without lora the adapter is merged into the start and every weight trains: model/ is stage one's.
  const merged = await tensorsOf(`${stage}/model/model.safetensors`);
  const fullWeights = await tensorsOf(`${full}/model/model.safetensors`);
  const dm = maxDiffOf(merged, fullWeights);
  assert(dm <= 1e-6, `full fine-tuning starts from the merge: ${dm}`);
  assertEquals(await Deno.stat(`${full}/adapter`).then(() => true, () => false), false);
});

Deno.test("train lora: an adapter input whose rank is not the config's is an InvalidConfig naming the node", async () => {
  const { dir, data } = await setup();
  const exit = await runPipelineIn(dir, continuing(data, { other: { lora: { ...LORA, r: 2, dropout: 0 } } }));
  assert(exit._tag === "Failure");
  const failure = Cause.failureOption(exit.cause);
  assert(Option.isSome(failure), String(exit.cause));
  const e = (failure.value as { error: { _tag: string; where: string; reason: string } }).error;
  assertEquals([e._tag, e.where], ["InvalidConfig", "other.config.lora"]);
  assert(e.reason.includes("r 4, the config 2"), e.reason);
});

Deno.test("train lora: a node continuing an adapter, interrupted after a checkpoint, resumes to the same adapter bytes", async () => {
  // LoRA dropout on: the resumed node must rebuild the base, take the checkpoint's adapter (not the
  // adapter input it started from) and reproduce the per-step masks.
  const next = { continued: { lora: LORA, steps: 4, lr: 1e-2, checkpointEvery: 2 } };
  const first = await setup();
  const whole = await runPipelineIn(first.dir, continuing(first.data, next));
  assert(whole._tag === "Success", String(whole));
  const bytes = await Deno.readFile(
    `${whole.value.outputs.get("continued")}/adapter/adapter_model.safetensors`,
  );
  const second = await setup();
  // Stage one has 2 steps, so only the continuing node reaches step 3.
  const crashed = await runPipelineIn(second.dir, continuing(second.data, next), crashingAt(3));
  assert(crashed._tag === "Failure");
  const lines: string[] = [];
  const resumed = await runPipelineIn(second.dir, continuing(second.data, next), silentReporter(lines));
  assert(resumed._tag === "Success", String(resumed));
  assert(lines.some((l) => l.includes("[continued] resuming at optimizer step 2/4")), lines.join("\n"));
  const again = await Deno.readFile(
    `${resumed.value.outputs.get("continued")}/adapter/adapter_model.safetensors`,
  );
  assert(bytesEqual(again, bytes), "the resumed adapter differs from the uninterrupted one");
});
