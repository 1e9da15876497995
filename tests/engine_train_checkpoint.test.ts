/**
 * A damaged training checkpoint inside an interrupted training stage's working directory (a flipped
 * byte, a truncated or missing file, LATEST naming nothing) must not crash the rerun, nor resume from
 * wrong weights: the train step reports it, restarts the stage from its beginning and ends with the
 * weights of an uninterrupted run. An intact checkpoint is resumed (the control).
 *
 * The interruption is simulated in-process: a reporter whose progress callback throws at optimizer step
 * 3 stops training after the checkpoint of step 2, as a crash would.
 */
import { Effect } from "effect";
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
import { trainStep } from "../src/steps/train.ts";
import { tinyModel, tokenizerVocabSize } from "../pipelines/data.ts";

const root = new URL("..", import.meta.url).pathname;
const tokenizer = `${root}/fixtures/arith/tokenizer.json`;

const pipeline = (data: string) => {
  const p = new PipelineBuilder("train-only");
  const src = p.source("data", data);
  const tok = p.source("tokenizer", tokenizer);
  const examples = p.add("keys", locateKeyStep, { format: "tags", onMissingKey: "fail" }, { data: src });
  const tokens = p.add("tokens", tokeniseStep, {
    template: "{prompt}\n",
    maxLength: 64,
    onTruncatedKey: "fail",
  }, {
    examples,
    tokenizer: tok,
  });
  const masks = p.add("masks", buildMasksStep, { mask: { kind: "response" } }, { tokens });
  p.add("stage", trainStep, {
    steps: 4,
    batchSize: 4,
    microBatchSize: 4,
    lr: 3e-3,
    warmupSteps: 1,
    minLrRatio: 0.1,
    weightDecay: 0.01,
    clipNorm: 1,
    checkpointEvery: 2,
    seed: 0,
    model: { ...tinyModel(tokenizerVocabSize(tokenizer)), hiddenSize: 32, intermediateSize: 64 },
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

const weights = (result: Awaited<ReturnType<typeof run>>) =>
  Deno.readFile(`${result.outputs.get("stage")}/model/model.safetensors`);

let referenceWeights: Uint8Array | undefined;
const reference = async () => {
  if (!referenceWeights) {
    const { dir, data } = await setup();
    referenceWeights = await weights(await run(dir, data, silentReporter()));
  }
  return referenceWeights;
};

/** Interrupts a run after the step-2 checkpoint, damages it, reruns; returns the rerun's lines and status. */
const interruptDamageRerun = async (damage: (checkpoints: string) => Promise<void>) => {
  const { dir, data } = await setup();
  let crashed = false;
  await run(dir, data, crashingAt(3)).catch(() => (crashed = true));
  assert(crashed, "the simulated crash did not happen");
  const partials = (await Array.fromAsync(Deno.readDir(`${dir}/artifacts/train`))).map((e) => e.name);
  assertEquals(partials.length, 1);
  const checkpoints = `${dir}/artifacts/train/${partials[0]}/checkpoints`;
  assertEquals((await Deno.readTextFile(`${checkpoints}/LATEST`)).trim(), "step-0000002");
  await damage(checkpoints);
  const lines: string[] = [];
  const result = await run(dir, data, silentReporter(lines));
  const stage = result.records.find((r) => r.name === "stage")!;
  assert(bytesEqual(await weights(result), await reference()), "weights differ from an uninterrupted run");
  return { lines, status: stage.status };
};

const bytesEqual = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

Deno.test("train checkpoint: an intact checkpoint is resumed and ends with the uninterrupted weights", async () => {
  const { lines, status } = await interruptDamageRerun(async () => {});
  assertEquals(status, "resumed");
  assert(lines.some((l) => l.includes("resuming at optimizer step 2/4")), lines.join("\n"));
});

const flip = async (path: string, at: number) => {
  const bytes = await Deno.readFile(path);
  bytes[at] ^= 0x10;
  await Deno.writeFile(path, bytes);
};

const damages: Array<[string, (c: string) => Promise<void>, RegExp]> = [
  // A flipped weight byte still parses: only the seal can tell.
  [
    "a flipped byte in the weights",
    (c) => flip(`${c}/step-0000002/model.safetensors`, 5000),
    /does not match/,
  ],
  [
    "a truncated optimizer state",
    (c) => Deno.truncate(`${c}/step-0000002/optimizer.safetensors`, 100),
    /optimizer/,
  ],
  ["a missing state.json", (c) => Deno.remove(`${c}/step-0000002/state.json`), /state\.json is missing/],
  ["a missing seal", (c) => Deno.remove(`${c}/step-0000002/seal.json`), /seal\.json is missing/],
  [
    "LATEST naming a deleted checkpoint",
    (c) => Deno.remove(`${c}/step-0000002`, { recursive: true }),
    /seal\.json is missing/,
  ],
  [
    "LATEST naming something outside",
    (c) => Deno.writeTextFile(`${c}/LATEST`, "../../elsewhere"),
    /LATEST names/,
  ],
];

for (const [name, damage, reason] of damages) {
  Deno.test(`train checkpoint: ${name} restarts the stage cleanly, same final weights`, async () => {
    const { lines, status } = await interruptDamageRerun(damage);
    assertEquals(status, "ran");
    const said = lines.find((l) => l.includes("cannot be used"));
    assert(said !== undefined && reason.test(said) && said.includes("restarting"), lines.join("\n"));
  });
}
